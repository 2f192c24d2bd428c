"""The helpers of the test suite: one module, imported by name (pytest puts tests/ on sys.path).

* Child processes: ``run_python(*args)`` runs this Python in a child process, the one way to
  run a case that could crash, abort or hang, so that it fails one test instead of the run;
  ``run_snippet(code)`` is its ``-c`` form, checked by default (``assert_clean``: exit status,
  no ``Fatal Python error``, no Rust panic), and ``assert_ok(code)`` a snippet that prints
  ``OK`` last.
* Threads: ``start_threads(*targets)`` and ``join_all(threads)``, or ``run_threads(*targets)``
  for both, the one way to drive interpreters from several threads of the test process: a
  thread that does not end fails the test, an exception raised in one is raised again.
* Interpreters: ``running_in_thread`` (one busy in another thread), ``run_output``, ``pipe``,
  ``interp_exists``, the ``clean_interpreters``
  fixture, ``stdlib_interpreters``; waiting: ``wait_for``.
* Scale: ``SOAK`` (``SUBINTERP_SOAK=1`` or ``pytest --soak``), ``scaled``, ``soak_seconds``.

Task modules that interpreters import by name (support_futures.py, support_dask*.py) are not
helpers and stay apart.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from subinterp_rs import Subinterpreter, interpreters

SOAK = os.environ.get("SUBINTERP_SOAK", "") not in ("", "0")
"""``SUBINTERP_SOAK=1`` (or ``pytest --soak``): the stress tests run for minutes."""

FATAL = "Fatal Python error"
RUST_PANIC = "panicked at"
FORCED_EXIT = "still running at exit; exiting without finalization"
"""What ``subinterp_rs._shutdown`` prints when it ends the process with ``os._exit``."""

JOIN_TIMEOUT = 300.0 if SOAK else 60.0
"""How long ``join_all`` waits for each thread by default."""


def scaled(small: int, soak: int) -> int:
    """``small`` normally, ``soak`` with ``SUBINTERP_SOAK=1``."""
    return soak if SOAK else small


def soak_seconds(small: float, soak: float) -> float:
    """A duration: ``small`` normally; with soak, ``SUBINTERP_SOAK_SECONDS`` or ``soak``."""
    if not SOAK:
        return small
    return float(os.environ.get("SUBINTERP_SOAK_SECONDS", soak))


def stable_id(value: object) -> str:
    """A parametrized test's id from ``repr(value)`` without object addresses (``at 0x...``),
    which differ between pytest-xdist's workers (they must collect the same ids)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


# -- child processes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """A finished child process."""

    returncode: int  # -9 if it hung and was killed
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    @property
    def forced_exit(self) -> bool:
        """Whether the package ended the process with ``os._exit`` at exit."""
        return FORCED_EXIT in self.stderr

    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def detail(self) -> str:
        hung = " (hung: killed at its timeout)" if self.timed_out else ""
        return (
            f"rc={self.returncode}{hung} after {self.seconds:.1f}s\n--- stdout\n{self.stdout}"
            f"\n--- stderr\n{self.stderr}"
        )


def run_python(
    *args: str,
    rc: int = 0,
    check: bool = False,
    timeout: float = 120.0,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str | None] | None = None,
    input: str | None = None,
) -> Ran:
    """Run ``sys.executable ARGS...`` in a child process and wait for it (at most ``timeout``
    seconds: then it is killed, and the result says so).

    The child gets this environment, less ``PYTHONWARNINGS``, with ``PYTHONFAULTHANDLER=1``
    and ``RUST_BACKTRACE=1`` (unless set), then ``env`` (a ``None`` value removes the
    variable). With ``check`` the test fails unless ``assert_clean(ran, rc)`` holds.
    """
    full_env = dict(os.environ)
    full_env.pop("PYTHONWARNINGS", None)
    full_env["PYTHONFAULTHANDLER"] = "1"
    full_env.setdefault("RUST_BACKTRACE", "1")
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=full_env,
            input=input,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        ran = Ran(-9, out, err, time.monotonic() - t0, timed_out=True)
    else:
        ran = Ran(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)
    if check:
        assert_clean(ran, rc)
    return ran


def run_snippet(
    code: str,
    *,
    rc: int = 0,
    check: bool = True,
    timeout: float = 120.0,
    args: tuple[str, ...] = (),
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str | None] | None = None,
) -> Ran:
    """``run_python("-c", code, *args)`` with ``code`` dedented, checked by default: the test
    fails unless the process exited with ``rc``, printed no ``Fatal Python error`` and no Rust
    panic, and ended within ``timeout`` seconds."""
    return run_python(
        "-c", textwrap.dedent(code), *args, rc=rc, check=check, timeout=timeout, cwd=cwd, env=env
    )


def assert_clean(ran: Ran, rc: int = 0) -> None:
    """No hang, no crash, no fatal error, no Rust panic, and exit status ``rc``."""
    if ran.timed_out:
        pytest.fail(f"hung: no exit within its timeout\n{ran.detail()}")
    assert FATAL not in ran.stderr, ran.detail()
    assert RUST_PANIC not in ran.stderr, ran.detail()
    assert ran.returncode == rc, ran.detail()


def assert_ok(
    code: str,
    *,
    timeout: float = 120.0,
    env: dict[str, str | None] | None = None,
    args: tuple[str, ...] = (),
) -> Ran:
    """Run a snippet that prints ``OK`` as its last line when every check inside passed."""
    ran = run_snippet(code, timeout=timeout, env=env, args=args)
    assert ran.lines()[-1:] == ["OK"], ran.detail()
    return ran


# -- threads ------------------------------------------------------------------------------------


def start_threads(*targets: Callable[[], object], daemon: bool = False) -> list[threading.Thread]:
    """A started thread for each target; ``join_all`` raises again what one of them raised."""
    threads: list[threading.Thread] = []
    for target in targets:
        thread = _Thread(target, daemon)
        thread.start()
        threads.append(thread)
    return threads


def join_all(threads: Iterable[threading.Thread], timeout: float = JOIN_TIMEOUT) -> None:
    """Join each thread within ``timeout`` seconds: one still running fails the test; then the
    first exception raised in a thread of ``start_threads`` is raised again."""
    threads = list(threads)
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), f"{t.name} still running after {timeout}s (hang?)"
    for t in threads:
        if isinstance(t, _Thread) and t.error is not None:
            raise t.error


def run_threads(*targets: Callable[[], object], timeout: float = JOIN_TIMEOUT) -> None:
    """``join_all(start_threads(*targets), timeout)``."""
    join_all(start_threads(*targets), timeout)


class _Thread(threading.Thread):
    """A thread that keeps what its target raised (for ``join_all``)."""

    def __init__(self, target: Callable[[], object], daemon: bool) -> None:
        super().__init__(daemon=daemon)
        self._call = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._call()
        except BaseException as exc:
            self.error = exc


@contextlib.contextmanager
def captured_thread_exceptions() -> Iterator[list[BaseException]]:
    """Collect exceptions that escape threads (``threading.excepthook``)."""
    caught: list[BaseException] = []
    old = threading.excepthook

    def hook(args: Any) -> None:
        caught.append(args.exc_value)

    threading.excepthook = hook
    try:
        yield caught
    finally:
        threading.excepthook = old


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` (test code only) until true or ``timeout``; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


# -- interpreters -------------------------------------------------------------------------------


def stdlib_interpreters() -> types.ModuleType | None:
    """The stdlib's PEP 734 module of this Python: ``concurrent.interpreters`` (3.14+), the
    3.13 draft ``test.support.interpreters``, or ``None`` (3.12)."""
    name: str  # declared: mypy skips the branches of the other Python versions
    if sys.version_info >= (3, 14):
        name = "concurrent.interpreters"
    elif sys.version_info >= (3, 13):
        name = "test.support.interpreters"
    else:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def run_output(interp: interpreters.Interpreter | Subinterpreter, script: str) -> str:
    """Run ``script`` in ``interp``'s ``__main__`` and return what it printed."""
    r, w = os.pipe()
    try:
        wrapper = (
            "import contextlib as _c, io as _io, os as _os\n"
            "_captured = _io.StringIO()\n"
            "try:\n"
            "    with _c.redirect_stdout(_captured):\n"
            f"        exec({textwrap.dedent(script)!r}, globals())\n"
            "finally:\n"
            f"    _os.write({w}, _captured.getvalue().encode('utf-8'))\n"
        )
        interp.exec(wrapper)
        os.close(w)
        w = -1
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8")
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


@contextlib.contextmanager
def pipe() -> Iterator[tuple[int, int]]:
    """An ``os.pipe()`` closed afterwards (file descriptors are process-wide, so both ends
    work in every interpreter)."""
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        for fd in (r, w):
            with contextlib.suppress(OSError):
                os.close(fd)


@contextlib.contextmanager
def running_in_thread(
    interp: interpreters.Interpreter | Subinterpreter,
) -> Iterator[threading.Thread]:
    """``interp`` running in another thread for the ``with`` block: an ``exec`` blocked on a
    pipe, started and seen running (``is_running()``) on entry, released and joined on exit."""
    with pipe() as (r, w):
        t = threading.Thread(target=interp.exec, args=(f"import os; os.read({r}, 1)",))
        t.start()
        try:
            assert wait_for(interp.is_running)
            yield t
        finally:
            os.write(w, b"x")
            t.join(JOIN_TIMEOUT)
            assert not t.is_alive(), "the exec did not end"


def interp_exists(id: int) -> bool:
    return any(i.id == id for i in interpreters.list_all())


def close_new_interpreters(before: set[int]) -> None:
    """Close the interpreters this facade made since ``before`` (best effort)."""
    gc.collect()
    for interp in interpreters.list_all():
        if interp.id in before or interp.whence != "_interpreters module":
            continue
        with contextlib.suppress(interpreters.InterpreterError):
            interp.close()


@pytest.fixture
def clean_interpreters() -> Iterator[None]:
    """Each test starts and ends with the interpreters it found."""
    before = {i.id for i in interpreters.list_all()}
    yield
    close_new_interpreters(before)
