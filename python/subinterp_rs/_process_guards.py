"""Process guards, the Python side (the Rust side is the binding crate's ``runtime::guards``).

Installed once, in the main interpreter, when the package is first imported:

* the exit hook (``atexit``): closes every interpreter the package created before the runtime
  finalizes, and ends the process with ``os._exit`` (after flushing stdio, with the status a
  normal exit would have had) if one still runs in C code and cannot be stopped;
* ``sys.exit`` and ``sys.excepthook`` wrappers that remember that status;
* fork refusal: ``os.fork``, ``os.forkpty`` and ``subprocess``'s ``preexec_fn`` raise
  ``InterpreterError`` while subinterpreters are alive (CPython's after-fork cleanup of
  subinterpreters kills the child).

And in every interpreter that imports the package, main included:

* ``sys._current_frames()`` and ``sys._current_exceptions()`` that walk only the calling
  interpreter's threads: CPython's walk every interpreter's and build frame objects for
  another interpreter's running code, which corrupts memory and aborts the process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import sysconfig
import threading
import warnings
from collections.abc import Callable
from typing import Any

from . import _native_api
from ._errors import InterpreterError

__all__: list[str] = []

_exit_status = 0


def _note_uncaught(hook: Callable[..., Any]) -> Callable[..., Any]:
    def excepthook(*args: Any) -> Any:
        global _exit_status
        _exit_status = 1
        return hook(*args)

    return excepthook


def _note_exit(exit: Callable[..., Any]) -> Callable[..., Any]:
    """``sys.exit`` that remembers its status, for the rare exit through ``os._exit``."""

    def recording_exit(status: object = None, /) -> Any:
        global _exit_status
        if status is None:
            _exit_status = 0
        elif isinstance(status, int):
            _exit_status = status & 0xFF
        else:
            _exit_status = 1
        return exit(status)

    recording_exit.__doc__ = exit.__doc__
    recording_exit.__wrapped__ = exit  # type: ignore[attr-defined]
    # It is `sys.exit` now: it pickles (and crosses) by that name.
    recording_exit.__module__ = "sys"
    recording_exit.__name__ = recording_exit.__qualname__ = "exit"
    return recording_exit


def _shutdown() -> None:
    """Close every interpreter we created before the runtime finalizes.

    A subinterpreter left alive at exit makes CPython abort (3.12) or crash while finalizing.
    Idle ones are closed; running ones get ``SystemExit`` raised inside and a moment to stop.
    One that still runs (blocked in C code) cannot be ended safely: the process then exits
    with ``os._exit`` after flushing stdio, instead of aborting.
    """
    _warn_remaining()
    alive = _native_api.exit_hook()
    if alive:
        sys.stderr.write(
            f"subinterp_rs: interpreter(s) {alive} still running at exit; "
            "exiting without finalization to avoid an abort\n"
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(_exit_status)


REMAINING = "remaining subinterpreters; close them with Interpreter.close()"
"""The 3.14 stdlib's warning at exit when subinterpreters are left open."""


def _warn_remaining() -> None:
    """Warn, as the 3.14 stdlib's finalization does (``<sys>:0: RuntimeWarning: ...``), when
    interpreters this package made are still open at exit (the hook closes them, so CPython
    never sees them). Disarmed ones (leaked on purpose) do not count."""
    if any(_native_api.is_owned(i) for i, _ in _native_api.list_all()):
        with contextlib.suppress(Exception):  # -W error: the hook must still close them
            warnings.warn_explicit(REMAINING, RuntimeWarning, "<sys>", 0)


def _refuse_fork_while_subinterpreters_live() -> None:
    main = _native_api.get_main()[0]
    others = [i for i, _ in _native_api.list_all() if i != main]
    if others:
        raise InterpreterError(
            f"cannot fork while {len(others)} subinterpreter(s) are alive "
            f"(ids {others}): CPython's after-fork cleanup crashes the child. "
            "Close them first, or use the 'spawn' or 'forkserver' start methods."
        )


def _guard(fork: Callable[..., Any]) -> Callable[..., Any]:
    """``fork`` (``os.fork``, ``os.forkpty``) that refuses while subinterpreters exist.

    CPython cannot fork then: its after-fork cleanup of subinterpreters in the child hangs
    (3.12), aborts (3.13) or segfaults (3.14) it, with the stdlib's interpreters as with
    ours. A clear error beats a dead child.
    """

    def guarded_fork(*args: Any) -> Any:
        _refuse_fork_while_subinterpreters_live()
        return fork(*args)

    guarded_fork.__doc__ = fork.__doc__
    guarded_fork.__wrapped__ = fork  # type: ignore[attr-defined]
    return guarded_fork


def _guard_preexec(fork_exec: Callable[..., Any]) -> Callable[..., Any]:
    """``_posixsubprocess.fork_exec`` that refuses a ``preexec_fn`` (the only callable argument,
    which makes the child run CPython's after-fork cleanup) while subinterpreters exist."""

    def guarded_fork_exec(*args: Any) -> Any:
        if any(callable(a) for a in args):
            _refuse_fork_while_subinterpreters_live()
        return fork_exec(*args)

    guarded_fork_exec.__wrapped__ = fork_exec  # type: ignore[attr-defined]
    return guarded_fork_exec


def _this_interpreter_only(
    original: Callable[[], dict[int, Any]], native: Callable[[], dict[int, Any]]
) -> Callable[[], dict[int, Any]]:
    """``sys._current_frames`` / ``sys._current_exceptions`` over this interpreter's threads.

    CPython's (3.12 to 3.15) walk the threads of every interpreter of the process and make
    frame objects for a running subinterpreter's frames without its GIL, from the caller's
    allocator: the process aborts (``free(): invalid pointer``) when a subinterpreter runs
    code meanwhile. This one lists the calling interpreter's threads only; a thread of this
    interpreter that is inside another one shows the frame it entered from.
    """

    frames = original.__name__ == "_current_frames"

    def current() -> dict[int, Any]:
        found = native()
        if frames:  # the caller's frame, not this wrapper's
            found[threading.get_ident()] = sys._getframe(1)
        return found

    current.__doc__ = original.__doc__
    current.__name__ = current.__qualname__ = original.__name__
    current.__module__ = "sys"
    current.__wrapped__ = original  # type: ignore[attr-defined]
    return current


def _install_frames_guard() -> None:
    """Replaces ``sys._current_frames`` and ``sys._current_exceptions`` (see
    :func:`_this_interpreter_only`), once per interpreter."""
    for name, native in (
        ("_current_frames", _native_api.current_frames),
        ("_current_exceptions", _native_api.current_exceptions),
    ):
        original = getattr(sys, name, None)
        if original is not None and not hasattr(original, "__wrapped__"):
            setattr(sys, name, _this_interpreter_only(original, native))


def _install() -> None:
    """Wraps ``sys.excepthook``, ``sys.exit``, ``os.fork``/``os.forkpty`` and
    ``_posixsubprocess.fork_exec``, and registers the exit hook: once, in the main interpreter
    (a subinterpreter's exit is its closer's business)."""
    sys.excepthook = _note_uncaught(sys.excepthook)
    sys.exit = _note_exit(sys.exit)
    atexit.register(_shutdown)
    for name in ("fork", "forkpty"):
        if hasattr(os, name):
            setattr(os, name, _guard(getattr(os, name)))
    try:
        import _posixsubprocess
        import subprocess
    except ImportError:
        pass
    else:
        _posixsubprocess.fork_exec = _guard_preexec(_posixsubprocess.fork_exec)
        if hasattr(subprocess, "_fork_exec"):
            subprocess._fork_exec = _posixsubprocess.fork_exec


if not sysconfig.get_config_var("Py_GIL_DISABLED"):
    # Free-threaded builds: other threads run while ours walks them; CPython's own stops the
    # world for that. Not replaced there (untested: no free-threaded build to test on).
    _install_frames_guard()
if _native_api.get_current()[0] == _native_api.get_main()[0]:
    _install()
