"""What :mod:`subinterp_rs.futures` runs inside its worker interpreters.

Imported by name in each worker interpreter (on its first task), so it imports nothing but
the standard library's builtins. A worker interpreter runs one task at a time, from one
thread, so the module global below is that worker's alone.

A task's exception object cannot leave its interpreter with the ``ExecutionFailed`` that
reports it. As the 3.14 stdlib does (through a queue), the wrappers keep it here; the executor
then fetches it with :func:`take_exception` (it crosses by pickle) and raises it ``from`` the
``ExecutionFailed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["call", "call_chunk", "take_exception", "take_partial"]

_failed: BaseException | None = None
_partial: tuple[Any, ...] = ()


def call(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, keeping the exception it raises for :func:`take_exception`."""
    global _failed
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        _failed = exc
        raise


def call_chunk(fn: Callable[..., Any], chunk: Iterable[tuple[Any, ...]], /) -> tuple[Any, ...]:
    """``fn(*args)`` for each ``args`` of ``chunk``, as a tuple (``map(chunksize=n)``). If a
    call raises, the results before it are kept for :func:`take_partial`."""
    global _failed, _partial
    results: list[Any] = []
    try:
        for args in chunk:
            results.append(fn(*args))
    except BaseException as exc:
        _failed = exc
        _partial = tuple(results)
        raise
    return tuple(results)


def take_exception() -> BaseException | None:
    """The exception the last failed task raised (once), without its traceback (the
    ``ExecutionFailed`` has that, as text)."""
    global _failed
    exc, _failed = _failed, None
    if exc is not None:
        exc.__traceback__ = None
        exc.__context__ = None
    return exc


def take_partial() -> tuple[Any, ...]:
    """The results a failed chunk had before its failing call (once)."""
    global _partial
    results, _partial = _partial, ()
    return results
