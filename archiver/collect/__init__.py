"""POP3 collection: the protocol client and the lose-nothing collection pass.

``pop3`` speaks the protocol (imports nothing of ours but ``errors``);
``policy`` decides (pure); ``collector`` runs one pass, the only code that
sends DELE; ``writer`` commits batches on a thread; ``runner`` runs passes
for several accounts and ``check --connect``.
"""

__all__ = ["collector", "policy", "pop3", "runner", "writer"]
