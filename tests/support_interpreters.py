"""Kept for branches that still import it: the helpers are in tests/_helpers.py."""

from __future__ import annotations

from _helpers import (
    SOAK,
    Ran,
    captured_thread_exceptions,
    clean_interpreters,
    close_new_interpreters,
    interp_exists,
    pipe,
    run_output,
    run_python,
    scaled,
    stdlib_interpreters,
    wait_for,
)
from _helpers import assert_clean as assert_clean_exit
from _helpers import run_snippet as _run_snippet


def run_script(code: str, *, timeout: float = 60, cwd: str | None = None) -> Ran:
    """``run_snippet(code, check=False)``."""
    return _run_snippet(code, check=False, timeout=timeout, cwd=cwd)


__all__ = [
    "SOAK",
    "assert_clean_exit",
    "captured_thread_exceptions",
    "clean_interpreters",
    "close_new_interpreters",
    "interp_exists",
    "pipe",
    "run_output",
    "run_python",
    "run_script",
    "scaled",
    "stdlib_interpreters",
    "wait_for",
]
