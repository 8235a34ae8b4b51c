"""archiver: a mail archiving and retention pipeline.

Importing the package is cheap on purpose: `archiver collect` runs every few
minutes from cron-like schedulers, so start-up time is part of every pass.
Modules import their heavy dependencies lazily.
"""

__version__ = "0.1.0"
