"""What :mod:`subinterp_rs.futures` runs inside its worker interpreters.

Imported by name in each worker interpreter (on its first task), so it imports nothing but
the standard library's builtins. A worker interpreter runs one task at a time, from one
thread, so the module global below is that worker's alone.

A task's exception object cannot leave its interpreter with the ``ExecutionFailed`` that
reports it. As the 3.14 stdlib does (through a queue), the wrappers keep it here; the executor
then fetches it with :func:`take_exception` (it crosses by pickle) and raises it ``from`` the
``ExecutionFailed``.

An executor made with ``reuse=True`` hands its workers' interpreters to the next executor of
the same config (``subinterp_rs._idle``): :func:`release` then resets what the next one must
not see, to what :func:`keep_fresh_main` saw when the interpreter was new.
"""

from __future__ import annotations

import _thread
import sys
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "call",
    "call_chunk",
    "keep_fresh_main",
    "release",
    "set_path",
    "take_exception",
    "take_partial",
]

_failed: BaseException | None = None
_partial: tuple[Any, ...] = ()
_fresh_main: dict[str, Any] = {}
"""``__main__``'s namespace when the worker's interpreter was new (for :func:`release`)."""
_fresh_main_id = 0
"""The ``id()`` of that namespace (not the module: holding ``__main__`` here would keep it
alive into the interpreter's finalization)."""


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


def keep_fresh_main() -> None:
    """Remember ``__main__``'s namespace as the new interpreter has it, for :func:`release`."""
    global _fresh_main, _fresh_main_id
    ns = sys.modules["__main__"].__dict__
    _fresh_main = dict(ns)
    _fresh_main_id = id(ns)


def release() -> bool:
    """The worker is gone: reset what the next executor must not see (the namespace of
    ``__main__``, the script run here as ``__mp_main__``, the state of this module). Whether
    the interpreter can be reused: not if threads it started still run, or if its ``__main__``
    is not the module it started with."""
    global _failed, _partial
    _failed = None
    _partial = ()
    main = sys.modules.get("__main__")
    ns = getattr(main, "__dict__", None)
    if _thread._count() or not _fresh_main or ns is None or id(ns) != _fresh_main_id:
        return False
    ns.clear()
    ns.update(_fresh_main)
    # The script of main's __main__, run here for the functions it defines: the next executor
    # runs it again, with fresh globals.
    sys.modules.pop("__mp_main__", None)
    return True


def set_path(path: tuple[str, ...]) -> None:
    """``sys.path[:] = path``: a reused interpreter starts with its new executor's path, as a
    new one does."""
    sys.path[:] = path
