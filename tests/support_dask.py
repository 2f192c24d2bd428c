"""Task functions for tests/test_dask.py.

Not a test module. Its functions cross into a dask worker's subinterpreters by reference, so
the slots import this module (the workers have tests/ on sys.path): it must import only the
standard library and subinterp_rs, never pytest, dask or distributed.
"""

from __future__ import annotations

import os
import time

from subinterp_rs import Subinterpreter


class TaskFailed(Exception):
    """Raised by the failing tasks; importable in every interpreter."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(code, why)
        self.code = code
        self.why = why


def interp_id(*_: object) -> int:
    """The id of the interpreter that runs the task (0: main)."""
    return Subinterpreter.current().id


def where(x: int) -> tuple[int, int, int]:
    """``(x * x, interpreter id, process id)``."""
    return (x * x, interp_id(), os.getpid())


def burn(n: int) -> int:
    """Pure-Python CPU-bound work: the sum of i*i below n."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def _check(code: int) -> None:
    if code:
        raise TaskFailed(code, "the task failed") from KeyError(code)


def fail(code: int) -> None:
    """Raise :class:`TaskFailed` (two frames deep, with a cause)."""
    _check(code)


def flaky(path: str, fails: int) -> tuple[int, int]:
    """Fail the first ``fails`` calls (counted in the file ``path``), then return
    ``(calls, interpreter id)``."""
    calls = 1
    if os.path.exists(path):
        with open(path) as f:
            calls += int(f.read() or 0)
    with open(path, "w") as f:
        f.write(str(calls))
    if calls <= fails:
        raise TaskFailed(calls, "not yet")
    return (calls, interp_id())


def block(started: str, release: str, timeout: float = 60.0) -> int:
    """Create the file ``started``, wait (at most ``timeout`` s) for the file ``release``, and
    return the interpreter id."""
    with open(started, "w"):
        pass
    deadline = time.monotonic() + timeout
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear within {timeout}s")
        time.sleep(0.01)
    return interp_id()


def imports_psutil() -> int:
    """Import an extension module that refuses subinterpreters inside the task."""
    import psutil

    return int(psutil.Process().pid)


def asks_for_its_worker() -> str:
    """A task that needs distributed inside: its worker's address."""
    from distributed import get_worker

    return str(get_worker().address)


def returns_a_generator() -> object:
    """A result that cannot be pickled."""
    return (i for i in range(3))


def slot_ids(dask_worker: object) -> list[int]:
    """For ``client.run``: the ids of the worker's slot interpreters."""
    executor = dask_worker.executors["subinterp"]  # type: ignore[attr-defined]
    return list(executor.interpreter_ids)


def make_lock() -> object:
    """A value that cannot be pickled (run in main, kept in the worker's memory)."""
    import threading

    return threading.Lock()


def takes(arg: object) -> int:
    """Any argument; returns the interpreter id."""
    return interp_id()
