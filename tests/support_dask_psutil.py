"""A task module that does not load in a subinterpreter (for tests/test_dask.py): it imports
psutil, whose extension module refuses isolated interpreters."""

from __future__ import annotations

import psutil


def pid() -> int:
    """The worker's process id, by psutil."""
    return int(psutil.Process().pid)


def _square(x: int) -> int:
    return x * x


def square_and_where(x: int) -> tuple[int, int]:
    """``(x * x, interpreter id)``, by a helper of this module: needs no psutil, so it runs in
    a subinterpreter, sent by value."""
    from subinterp_rs import Subinterpreter

    return _square(x), Subinterpreter.current().id
