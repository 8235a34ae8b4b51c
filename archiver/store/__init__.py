"""Putting raw messages into the archive and reading them back byte-exact.

``spool`` holds one message in wire form; ``parse`` extracts what search and
display need; ``ingest`` stores (single-instance, one transaction per
batch); ``deliveries`` is the only writer of the delivery ledger;
``content`` is chunked, compressed storage; ``reading`` is the only way a
user sees a message, and audits first.
"""

__all__ = ["content", "deliveries", "ingest", "parse", "parsepool", "reading", "spool"]
