"""A task module that does not load in a subinterpreter (for tests/test_dask.py): it imports
psutil, whose extension module refuses isolated interpreters."""

from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Point:
    """A class of a module that does not load in a subinterpreter."""

    x: int
    y: int


class PointError(Exception):
    """An exception class of a module that does not load in a subinterpreter."""


def make_point(x: int) -> Point:
    """A :class:`Point`, made in a subinterpreter (raises :class:`PointError` for x < 0)."""
    if x < 0:
        raise PointError(x)
    return Point(x, _square(x))


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
