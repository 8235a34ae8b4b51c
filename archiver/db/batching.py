"""Splitting long key lists for ``IN (...)`` queries."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

#: Keys per IN (...) list: well below every backend's bound-parameter limit.
IN_BATCH = 500


def in_batches(keys: Sequence[T], size: int = IN_BATCH) -> Iterator[Sequence[T]]:
    """``keys`` in consecutive slices of at most ``size``."""
    for i in range(0, len(keys), size):
        yield keys[i : i + size]


__all__ = [
    "IN_BATCH",
    "in_batches",
]
