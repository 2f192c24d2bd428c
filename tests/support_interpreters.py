"""Helpers shared by the tests of the PEP 734 facade (tests/test_interpreters_*.py).

Not a test module; imported by name (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from subinterp_rs import Subinterpreter, interpreters

SOAK = os.environ.get("SUBINTERP_SOAK", "") not in ("", "0")
"""``SUBINTERP_SOAK=1`` scales the stress tests up (minutes instead of seconds)."""


def scaled(small: int, soak: int) -> int:
    """``small`` normally, ``soak`` with ``SUBINTERP_SOAK=1``."""
    return soak if SOAK else small


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


def run_python(
    *args: str, timeout: float = 60, cwd: str | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run this Python in a subprocess (a crash there fails one test, not the run)."""
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONFAULTHANDLER"] = "1"
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        input=input,
    )


def run_script(
    code: str, *, timeout: float = 60, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -c code`` (dedented) in a subprocess."""
    return run_python("-c", textwrap.dedent(code), timeout=timeout, cwd=cwd)


def assert_clean_exit(proc: subprocess.CompletedProcess[str], rc: int = 0) -> None:
    """The subprocess exited with ``rc``: no crash (negative rc), no fatal error."""
    detail = f"rc={proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert "Fatal Python error" not in proc.stderr, detail
    assert proc.returncode == rc, detail


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


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` (test code only) until true or ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()
