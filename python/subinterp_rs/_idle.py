"""Idle worker interpreters kept for reuse across executors (``reuse=True``): the one owner of
them on the Python side.

An :class:`~subinterp_rs.futures.InterpreterPoolExecutor` made with ``reuse=True`` gives its
workers' interpreters here when they exit (:func:`give`) instead of closing them, and its new
workers take one here (:func:`take`) before creating one. What a reused interpreter keeps and
what it loses is in ``docs/executor.md`` ("Reusing interpreters"); in short:

* kept: its imported modules and their state (the import cost is what reuse saves);
* reset when it is given back: its ``__main__`` namespace (to a new interpreter's, so the
  previous executor's globals and initializer script are gone), the script run there as
  ``__mp_main__`` (run afresh when needed) and the worker module's state;
  ``sys.path`` is made the taker's when it is taken;
* never kept (closed instead): one with threads of its own still running, one whose worker
  failed or whose initializer raised, one that forwards its logging, any beyond the bound
  (:func:`set_max_idle`), and any given after the exit hook or while a fork drains the pool.

Interpreters are matched by a key: the config's fields and the initializer (the same script,
or the same callable with equal arguments), so that the state one executor's initializer set
up is never seen by an executor with another.

Drained by :func:`clear_idle`, before a fork (the fork guard of ``_process_guards``), and at
exit (its exit hook, before it looks for interpreters left open), so that the pool itself
never causes the "remaining subinterpreters" warning.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Hashable
from concurrent.futures import _base as _futures_base
from typing import Final

from . import _native_api, _worker
from ._errors import InterpreterError
from ._subinterpreter import Subinterpreter

__all__ = ["clear_idle", "give", "idle_interpreters", "set_max_idle", "shut_down", "take"]

Key = tuple[Hashable, object]
"""What must match for an idle interpreter to be reused: the config's fields, the
initializer (``None``, its script, or ``(callable, initargs)``)."""

_LOGGER: Final = _futures_base.LOGGER
_lock = threading.Lock()
_idle: list[tuple[Key, Subinterpreter]] = []
"""The idle interpreters, the oldest first."""
_max_idle = min(32, (os.cpu_count() or 1) + 4)
"""The most idle interpreters kept, all keys together (the stdlib's default ``max_workers``)."""
_shut_down = False
"""Set by the exit hook: nothing is kept any more."""


def _same(a: Key, b: Key) -> bool:
    """Whether two keys match (``==``, which a user's ``initargs`` could make raise)."""
    try:
        return bool(a == b)
    except Exception:
        return False


def _close(interps: list[Subinterpreter]) -> None:
    """Close each (one that cannot be closed now is left to the exit hook, as a worker's)."""
    for interp in interps:
        id = interp.id
        try:
            interp.close()
        except InterpreterError as exc:
            _LOGGER.warning("could not close idle interpreter %d: %s", id, exc)


def take(key: Key) -> Subinterpreter | None:
    """An idle interpreter kept under ``key`` (the most recently given), its ``sys.path`` made
    the caller's; ``None`` if there is none."""
    path = tuple(p for p in sys.path if isinstance(p, str))
    while True:
        with _lock:
            found = next((i for i in range(len(_idle) - 1, -1, -1) if _same(_idle[i][0], key)), -1)
            if found < 0:
                return None
            _, interp = _idle.pop(found)
        try:
            _native_api.call(interp.id, _worker.set_path, (path,), None)
        except Exception:
            _close([interp])  # closed behind our back, or broken: try the next one
            continue
        return interp


def give(key: Key, interp: Subinterpreter) -> None:
    """Keep ``interp`` (idle, its worker gone) for reuse under ``key`` if it can be reused and
    the bound allows it; else close it."""
    try:
        reusable = _native_api.call(interp.id, _worker.release, (), None) is True
    except Exception:
        reusable = False
    with _lock:
        keep = reusable and not _shut_down and len(_idle) < _max_idle
        if keep:
            _idle.append((key, interp))
    if not keep:
        _close([interp])


def clear_idle() -> int:
    """Close every idle interpreter kept for reuse by executors made with ``reuse=True``;
    return how many were closed."""
    with _lock:
        interps = [interp for _, interp in _idle]
        _idle.clear()
    _close(interps)
    return len(interps)


def idle_interpreters() -> list[int]:
    """The ids of the idle interpreters kept for reuse (by executors made with
    ``reuse=True``), the oldest first."""
    with _lock:
        return [interp.id for _, interp in _idle]


def set_max_idle(n: int) -> int:
    """Keep at most ``n`` idle interpreters for reuse (all configs together; ``0``: none);
    close the oldest ones beyond it now. Return the previous bound.

    The default is the stdlib's default ``max_workers``, ``min(32, os.cpu_count() + 4)``.

    Raises:
        TypeError: ``n`` is not an ``int``.
        ValueError: ``n`` is negative.
    """
    global _max_idle
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"the bound must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"the bound must be >= 0, got {n}")
    with _lock:
        previous, _max_idle = _max_idle, n
        excess = len(_idle) - n
        dropped = [interp for _, interp in _idle[: max(0, excess)]]
        del _idle[: max(0, excess)]
    _close(dropped)
    return previous


def shut_down() -> None:
    """At exit, before the exit hook looks for interpreters left open: close the idle ones
    and keep none from now on."""
    global _shut_down
    with _lock:
        _shut_down = True
    clear_idle()
