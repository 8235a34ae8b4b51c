"""Column types shared by the tables, portable across SQLite, PostgreSQL and MariaDB/MySQL.

Each type is one decision made once: how a datetime is stored, how large a
blob may be, which strings compare byte-for-byte. Every table in
:mod:`archiver.db.schema` uses them, so all follow the same rules.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite and MySQL have no time zone type: values are stored as naive UTC
    and come back with ``tzinfo=UTC``. Naive datetimes are refused on the way
    in, because guessing their zone is how retention deadlines go wrong.
    MySQL keeps microseconds only when asked (``fsp=6``).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "sqlite":
            return dialect.type_descriptor(DateTime())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: archiver stores only UTC-aware datetimes")
        value = value.astimezone(timezone.utc)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect,
                             ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def ascii_bin(length: int) -> String:
    """A string compared byte-for-byte everywhere.

    MySQL's default collations fold case, which would make the UIDLs
    ``abc`` and ``ABC`` (distinct on a POP3 server) collide.
    """
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
    )


def utf8_bin(length: int) -> String:
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


#: MySQL's TEXT holds only 64 KiB; body text and subjects may be longer.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

#: A stored content chunk (about 1 MiB); MySQL's BLOB would cap it at 64 KiB.
Blob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

#: SQLite only auto-increments an ``INTEGER PRIMARY KEY``.
BigID = BigInteger().with_variant(Integer(), "sqlite")

__all__ = ["UTCDateTime", "LongText", "Blob", "BigID", "ascii_bin", "utf8_bin"]
