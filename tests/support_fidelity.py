"""Functions the drop-in fidelity tests (tests/test_fidelity.py) run inside interpreters.

Imported by name inside subinterpreters (pytest puts tests/ on sys.path, and subinterpreters
inherit it): the standard library only.
"""

from __future__ import annotations

import time
from typing import Any


def cannot_rebuild() -> object:
    """What rebuilding a :class:`Unrebuildable` calls: it raises."""
    raise ValueError("cannot rebuild here")


class Unrebuildable:
    """Pickles (by reference to :func:`cannot_rebuild`), but cannot be unpickled anywhere."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (cannot_rebuild, ())


def record(queue: Any, value: int, seconds: float) -> int:
    """Sleep, then put ``value`` in ``queue`` (an interpreters queue) and return it."""
    time.sleep(seconds)
    queue.put(value)
    return value
