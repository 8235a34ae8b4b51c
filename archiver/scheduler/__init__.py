"""Scheduling (DESIGN.md §6): APScheduler wiring, leases and crontab expressions.

Only :mod:`archiver.scheduler.cron` exists so far. ``archiver.config``
validates ``schedule`` and ``retention_schedule`` with it, so importing this
package must stay cheap and must not import anything of archiver's: the
scheduler proper (jobs, leases; an entry point that imports services) goes
into its own modules, imported by ``archiver run`` only, never from here.
"""

__all__: list[str] = []
