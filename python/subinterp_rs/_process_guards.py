"""Process guards, the Python side (the Rust side is the binding crate's ``runtime::guards``).

Installed once, in the main interpreter, when the package is first imported:

* the exit hook (``atexit``): closes every interpreter the package created before the runtime
  finalizes (warning, as the stdlib does, when some were left open); one that still runs in C
  code and cannot be stopped is left to CPython's finalization where it copes (3.14+), else
  the process ends with ``os._exit`` (after flushing every buffered file and the logging
  handlers, with the status a normal exit would have had);
* ``sys.exit`` and ``sys.excepthook`` wrappers and a ``sys.monitoring`` watch on the
  program's outermost frame that remember that status;
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
"""The status a normal exit would have had (for the forced exit): sys.exit()'s, a SystemExit
that ended the program's outermost frame, 1 after an uncaught exception."""
_interrupted = False
"""An uncaught KeyboardInterrupt ended the program (CPython then dies by SIGINT: status 130)."""


def _status_of(code: object) -> int:
    """The process status of ``SystemExit(code)``, as CPython computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


def _note_uncaught(hook: Callable[..., Any]) -> Callable[..., Any]:
    def excepthook(*args: Any) -> Any:
        global _exit_status, _interrupted
        _exit_status = 1
        if isinstance(args[0], type) and issubclass(args[0], KeyboardInterrupt):
            _interrupted = True
        return hook(*args)

    return excepthook


def _note_exit(exit: Callable[..., Any]) -> Callable[..., Any]:
    """``sys.exit`` that remembers its status, for the rare exit through ``os._exit``."""

    def recording_exit(status: object = None, /) -> Any:
        global _exit_status
        _exit_status = _status_of(status)
        return exit(status)

    recording_exit.__doc__ = exit.__doc__
    recording_exit.__wrapped__ = exit  # type: ignore[attr-defined]
    # It is `sys.exit` now: it pickles (and crosses) by that name.
    recording_exit.__module__ = "sys"
    recording_exit.__name__ = recording_exit.__qualname__ = "exit"
    return recording_exit


def _watch_program_exit() -> None:
    """Remember the status of a ``SystemExit`` that ends the program (``raise SystemExit(n)``,
    ``exit(n)``, not only ``sys.exit(n)``): CPython reads its code and drops it before the
    ``atexit`` hooks run, so the forced exit would not know it. A ``sys.monitoring``
    callback on ``PY_UNWIND``, a tool id of its own (none free: only ``sys.exit`` is seen),
    noting a ``SystemExit`` leaving the program's outermost frame (the callback runs only
    when an exception leaves a frame)."""
    frame = sys._getframe()
    while frame.f_back is not None:
        frame = frame.f_back
    outermost = frame.f_code
    mon = sys.monitoring
    for tool in (4, 3):
        try:
            mon.use_tool_id(tool, "subinterp_rs exit status")
        except ValueError:
            continue
        break
    else:
        return

    def on_unwind(code: object, offset: int, exc: BaseException) -> None:
        global _exit_status
        if code is outermost and isinstance(exc, SystemExit):
            _exit_status = _status_of(exc.code)

    mon.register_callback(tool, mon.events.PY_UNWIND, on_unwind)
    mon.set_events(tool, mon.events.PY_UNWIND)


def _must_force(alive: list[int]) -> bool:
    """Whether CPython would abort, hang or crash finalizing the interpreters ``alive`` (ours,
    still there at exit after the hook: blocked in C code in a daemon thread of main, or idle
    with a thread of its own blocked so), measured per version (docs/limits.md): 3.12 aborts
    ("remaining subinterpreters"); 3.13 aborts ("Py_EndInterpreter: not the last thread") or
    hangs; 3.14 and 3.15 end one that runs while its thread is still there (a thread that
    runs Python code, or comes back from C code, then touches the freed interpreter: a
    segfault, seen under load), and wait forever for the blocked thread of an idle one; the
    debug build asserts that none runs. So: always, for any left."""
    return bool(alive)


def _flush_all() -> None:
    """Before the forced exit, what a normal exit would write: the logging handlers (flushed
    and closed, as logging's own exit hook does), then every buffered file object of this
    interpreter (text layers first, then their binary buffers), stdout and stderr."""
    import gc
    import io

    logging = sys.modules.get("logging")
    if logging is not None:
        with contextlib.suppress(Exception):
            logging.shutdown()
    texts: list[io.TextIOWrapper] = []
    buffered: list[io.BufferedWriter | io.BufferedRandom] = []
    for obj in gc.get_objects():
        if isinstance(obj, io.TextIOWrapper):
            texts.append(obj)
        elif isinstance(obj, (io.BufferedWriter, io.BufferedRandom)):
            buffered.append(obj)
    for stream in (*texts, *buffered, sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None and not stream.closed:
                stream.flush()


def _forced_exit() -> None:
    """End the process without finalization, with the status a normal exit would have had:
    killed by SIGINT after an uncaught KeyboardInterrupt (as CPython does: 130 in a shell),
    else :data:`_exit_status`."""
    if _interrupted:
        import signal

        with contextlib.suppress(Exception):
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(128 + 2)
    os._exit(_exit_status)


def _shutdown() -> None:
    """Close every interpreter we created before the runtime finalizes.

    Idle ones are closed; running ones get ``SystemExit`` raised inside and a moment to stop.
    If one still runs (blocked in C code), CPython's finalization would abort, hang or crash
    on it (:func:`_must_force`): the process ends with ``os._exit`` instead, after flushing
    every buffered file and the logging handlers, with the status a normal exit would have
    had.
    """
    _drain_idle(final=True)
    owned_left = _owned_left()
    alive = _native_api.exit_hook()
    forced = bool(alive) and _must_force(alive)
    # CPython warns itself (3.13+) for those it finalizes.
    if owned_left and (forced or not alive or sys.version_info < (3, 13)):
        with contextlib.suppress(Exception):  # -W error: the exit must go on
            warnings.warn_explicit(REMAINING, RuntimeWarning, "<sys>", 0)
    if forced:
        sys.stderr.write(
            f"subinterp_rs: interpreter(s) {alive} still running at exit; "
            "exiting without finalization to avoid an abort\n"
        )
        _flush_all()
        _forced_exit()


REMAINING = "remaining subinterpreters; close them with Interpreter.close()"
"""The 3.14 stdlib's warning at exit when subinterpreters are left open."""


def _owned_left() -> bool:
    """Whether interpreters this package made are still open (owned: disarmed ones, leaked on
    purpose, do not count). The hook closes them, so CPython never sees them: the package
    warns instead, as the 3.14 stdlib's finalization does (``<sys>:0: RuntimeWarning:``)."""
    return any(_native_api.is_owned(i) for i, _ in _native_api.list_all())


def _drain_idle(*, final: bool = False) -> None:
    """Close the idle interpreters executors keep for reuse (``subinterp_rs._idle``, loaded
    only by the executor): before a fork, and for good at exit (``final``), before looking for
    interpreters left open, so that the pool itself never causes the warning."""
    idle = sys.modules.get("subinterp_rs._idle")
    if idle is None:
        return
    with contextlib.suppress(Exception):
        if final:
            idle.shut_down()
        else:
            idle.clear_idle()


def _refuse_fork_while_subinterpreters_live() -> None:
    _drain_idle()
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
    _watch_program_exit()
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
