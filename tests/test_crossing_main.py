"""Functions of a script's ``__main__`` crossing into interpreters (issue #19, item 1): by
reference when the script runs inside as ``__mp_main__``, by value (code, defaults, closure,
the globals they use, recursively) when it does not, for instance because its top level imports
a module that refuses isolated interpreters (psutil). Each case is a real script run in a child
process (``python script.py``), so its ``__main__`` is a file, as in a user's program."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from _helpers import run_python

pytest.importorskip("psutil")

_PRELUDE = """\
import asyncio
import math
import threading

import psutil

from subinterp_rs import Subinterpreter, aio, interpreters
from subinterp_rs.futures import InterpreterPoolExecutor

def travelled(si, name):
    import subinterp_rs._pickling as p
    return si.call(p.travelled, "__main__", name)
"""


def run_script(tmp_path: Path, body: str, *, prelude: str = _PRELUDE) -> list[str]:
    """Run ``prelude + body`` as a script file; its stdout lines (it must exit 0 and print OK
    last)."""
    script = tmp_path / "prog.py"
    script.write_text(prelude + textwrap.dedent(body))
    ran = run_python(str(script), timeout=180, cwd=tmp_path, check=True)
    lines = ran.lines()
    assert lines[-1:] == ["OK"], ran.detail()
    return lines[:-1]


def test_task_of_a_script_importing_psutil_runs_everywhere(tmp_path: Path) -> None:
    # The program: the script imports psutil at its top level, which no isolated
    # interpreter can import; its tasks still run, through every entry point.
    run_script(
        tmp_path,
        """
        def task(x):
            return x * 2

        async def via_asyncio():
            async with aio.AsyncInterpreterPool(max_workers=2) as pool:
                assert await pool.run(task, 21) == 42
                assert [r async for r in pool.map(task, range(4))] == [0, 2, 4, 6]

        if __name__ == "__main__":
            with InterpreterPoolExecutor(max_workers=2) as pool:
                assert pool.submit(task, 21).result() == 42
                assert list(pool.map(task, range(5), chunksize=2)) == [0, 2, 4, 6, 8]
            interp = interpreters.create()
            assert interp.call(task, 21) == 42
            interp.close()
            with Subinterpreter.create() as si:
                assert si.call(task, 21) == 42
                assert travelled(si, "task") == "value"
                assert "psutil" not in si.call(eval, "list(__import__('sys').modules)")
            asyncio.run(via_asyncio())
            print("OK")
        """,
    )


def test_by_value_carries_globals_defaults_closures_and_recursion(tmp_path: Path) -> None:
    run_script(
        tmp_path,
        """
        SCALE = 3
        TABLE = {"a": [1, 2], "b": (3,)}

        def helper(x):
            return x * SCALE

        def task(x):
            return helper(x) + len(TABLE["a"])

        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)

        def even(n):
            return True if n == 0 else odd(n - 1)

        def odd(n):
            return False if n == 0 else even(n - 1)

        def with_defaults(x, y=10, *, z=100):
            return x + y + z

        def root(x):
            return math.sqrt(x)

        def make_counter(start):
            def count(step):
                return start + step + SCALE
            return count

        def bump():
            global HITS
            HITS = HITS + 1 if "HITS" in globals() else 1
            return HITS

        if __name__ == "__main__":
            def under_the_guard(x):  # never defined when the script runs as __mp_main__
                return -x

            with Subinterpreter.create() as si:
                assert si.call(task, 2) == 8
                assert si.call(fact, 6) == 720
                assert si.call(even, 10) is True and si.call(odd, 7) is True
                assert si.call(with_defaults, 1) == 111
                assert si.call(with_defaults, 1, 2, z=3) == 6
                assert si.call(root, 49) == 7.0
                assert si.call(make_counter(5), 1) == 9
                assert si.call(under_the_guard, 4) == -4
                # Globals land in the interpreter's __main__ and live on there.
                assert [si.call(bump) for _ in range(3)] == [1, 2, 3]
                # A changed global goes with the next call.
                SCALE = 10
                assert si.call(helper, 2) == 20
                # A function by value comes back as the sender's own.
                assert si.call(lambda: task)(2) == 22  # SCALE is 10 here
                for name in ("task", "fact", "with_defaults", "under_the_guard"):
                    assert travelled(si, name) == "value", name
            print("OK")
        """,
    )


def test_a_script_that_runs_inside_sends_by_reference(tmp_path: Path) -> None:
    # No psutil here: the script runs inside as __mp_main__, and its functions are its own
    # (module state shared between tasks, `if __name__ == "__main__"` not run there).
    run_script(
        tmp_path,
        """
        import itertools

        COUNTER = itertools.count()

        def task():
            return next(COUNTER), __name__

        def under():
            return 1

        if __name__ == "__main__":
            def guarded():
                return "by value"

            with Subinterpreter.create() as si:
                assert si.call(task) == (0, "__mp_main__")
                assert si.call(task) == (1, "__mp_main__")
                assert travelled(si, "task") == "reference"
                assert si.call(guarded) == "by value"
                assert travelled(si, "guarded") == "value"
            with InterpreterPoolExecutor(max_workers=1) as pool:
                assert pool.submit(task).result() == (0, "__mp_main__")
            print("OK")
        """,
        prelude=_PRELUDE.replace("import psutil\n", ""),
    )


def test_what_cannot_cross_either_way_says_why(tmp_path: Path) -> None:
    run_script(
        tmp_path,
        """
        from dataclasses import dataclass

        from subinterp_rs import ExecutionFailed, NotShareableError

        LOCK = threading.Lock()

        def uses_psutil():
            return psutil.cpu_count()

        def uses_a_lock():
            with LOCK:
                return 1

        @dataclass
        class Point:
            x: int

        def make_point():
            return Point(1)

        def failure(si, func):
            try:
                si.call(func)
            except (ExecutionFailed, NotShareableError) as exc:
                return str(exc)
            raise AssertionError(f"{func} crossed")

        if __name__ == "__main__":
            with Subinterpreter.create() as si:
                # By value, but the module it uses cannot be imported there: said on use.
                msg = failure(si, uses_psutil)
                assert "psutil" in msg and "cannot be imported" in msg, msg
                # Neither way: the script fails there, the lock does not pickle.
                msg = failure(si, uses_a_lock)
                assert "__main__.uses_a_lock cannot be rebuilt" in msg, msg
                assert "psutil" in msg and "lock" in msg, msg
                # A class of __main__ crosses by reference only.
                msg = failure(si, make_point)
                assert "__main__.Point cannot be rebuilt" in msg, msg
                assert si.call(abs, -1) == 1
            with InterpreterPoolExecutor(max_workers=1) as pool:
                try:
                    pool.submit(uses_a_lock).result()
                except Exception as exc:
                    assert "uses_a_lock cannot be rebuilt" in str(exc), exc
                else:
                    raise AssertionError("crossed")
            print("OK")
        """,
    )
