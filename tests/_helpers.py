"""Helpers of the misuse, exit and stress tests (tests/test_misuse.py, test_exit.py,
test_stress.py). Not a test module; imported by name (pytest puts tests/ on sys.path).

Every snippet runs in a fresh ``sys.executable -c`` process, so a crash, an abort or a hang
fails one test instead of killing the whole run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

import pytest

SOAK = os.environ.get("SUBINTERP_SOAK", "") not in ("", "0")
"""``SUBINTERP_SOAK=1`` (or ``pytest --soak``): the stress tests run for minutes."""

FATAL = "Fatal Python error"
RUST_PANIC = "panicked at"
FORCED_EXIT = "still running at exit; exiting without finalization"
"""What ``subinterp_rs._shutdown`` prints when it ends the process with ``os._exit``."""


def scaled(small: int, soak: int) -> int:
    """``small`` normally, ``soak`` with ``SUBINTERP_SOAK=1``."""
    return soak if SOAK else small


def soak_seconds(small: float, soak: float) -> float:
    """A duration: ``small`` normally; with soak, ``SUBINTERP_SOAK_SECONDS`` or ``soak``."""
    if not SOAK:
        return small
    return float(os.environ.get("SUBINTERP_SOAK_SECONDS", soak))


@dataclass(frozen=True)
class Ran:
    """A finished snippet."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def forced_exit(self) -> bool:
        """Whether the package ended the process with ``os._exit`` at exit."""
        return FORCED_EXIT in self.stderr

    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def detail(self) -> str:
        return (
            f"rc={self.returncode} after {self.seconds:.1f}s\n--- stdout\n{self.stdout}"
            f"\n--- stderr\n{self.stderr}"
        )


def run_snippet(
    code: str,
    *,
    rc: int = 0,
    timeout: float = 120.0,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    check: bool = True,
) -> Ran:
    """Run ``code`` (dedented) with ``sys.executable -c`` and wait for it.

    With ``check`` (the default) the test fails unless the process exited with ``rc``, printed
    no ``Fatal Python error`` and no Rust panic, and ended within ``timeout`` seconds (a hang
    fails the test with what the process printed so far).
    """
    full_env = dict(os.environ)
    full_env.pop("PYTHONWARNINGS", None)
    full_env["PYTHONFAULTHANDLER"] = "1"
    full_env.setdefault("RUST_BACKTRACE", "1")
    if env:
        full_env.update(env)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        if not check:
            return Ran(-9, out, err, time.monotonic() - t0)
        pytest.fail(f"hung: no exit within {timeout}s\n--- stdout\n{out}\n--- stderr\n{err}")
    ran = Ran(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)
    if check:
        assert_clean(ran, rc)
    return ran


def assert_clean(ran: Ran, rc: int = 0) -> None:
    """No crash, no fatal error, no Rust panic, and exit status ``rc``."""
    assert FATAL not in ran.stderr, ran.detail()
    assert RUST_PANIC not in ran.stderr, ran.detail()
    assert ran.returncode == rc, ran.detail()


def assert_ok(
    code: str,
    *,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Ran:
    """Run a snippet that prints ``OK`` as its last line when every check inside passed."""
    ran = run_snippet(code, timeout=timeout, env=env, args=args)
    assert ran.lines()[-1:] == ["OK"], ran.detail()
    return ran
