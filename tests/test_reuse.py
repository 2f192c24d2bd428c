"""Executors that reuse their workers' interpreters (``reuse=True``, issue #19 item 5): the
idle interpreters kept between executors of the same config and initializer
(``subinterp_rs._idle``), what a reused one keeps and loses, the bound, the drain, forks and
exit with idle interpreters (in child processes), and memory over executor cycles."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import support_futures as sf
from _helpers import assert_ok, run_python, run_snippet
from subinterp_rs import InterpreterConfig, _native
from subinterp_rs.aio import AsyncInterpreterPool
from subinterp_rs.futures import (
    BrokenInterpreterPool,
    InterpreterPoolExecutor,
    clear_idle,
    idle_interpreters,
    set_max_idle,
)

TESTS = str(Path(__file__).resolve().parent)
REPO = str(Path(TESTS).parent)
# What the child processes below run first: this directory on sys.path, for support_futures
# (which the worker interpreters import by name: they start with main's sys.path).
PRELUDE = f"import sys; sys.path.insert(0, {TESTS!r})\n"


def child(code: str) -> str:
    """``code`` (dedented) for a child process, after :data:`PRELUDE`."""
    return PRELUDE + textwrap.dedent(code)


def live_ids() -> set[int]:
    return {i for i, _ in _native.list_all()}


@pytest.fixture(autouse=True)
def no_idle() -> Iterator[None]:
    """Each test starts and ends with no idle interpreter and the default bound."""
    clear_idle()
    bound = set_max_idle(8)
    yield
    set_max_idle(bound)
    clear_idle()


def run_pool(**kwargs: object) -> tuple[set[int], list[int]]:
    """An executor of 2 workers (``kwargs`` added), both started; the ids its tasks ran in and
    the idle interpreters when it started them."""
    with InterpreterPoolExecutor(2, reuse=True, **kwargs) as ex:  # type: ignore[arg-type]
        ex.prewarm()
        idle = idle_interpreters()
        ids = {f.result() for f in [ex.submit(sf.interp_id) for _ in range(20)]}
    return ids, idle


# -- reuse happens, where it may ----------------------------------------------------------------


def test_the_next_executor_of_the_same_config_takes_the_idle_interpreters() -> None:
    first, _ = run_pool()
    kept = idle_interpreters()
    assert len(kept) == 2
    assert first <= set(kept)
    assert set(kept) <= live_ids()  # idle, alive: list_all() shows them (as CPython's does)
    second, idle_then = run_pool()
    assert idle_then == []  # both taken
    assert second <= set(kept)
    assert sorted(idle_interpreters()) == sorted(kept)  # given back again


def test_not_across_configs_initializers_or_without_reuse() -> None:
    run_pool()
    kept = set(idle_interpreters())
    no_threads = InterpreterConfig(allow_threads=False)
    ids, idle = run_pool(config=no_threads)
    assert set(idle) == kept and not ids & kept
    ids, idle = run_pool(initializer="X = 1")
    assert kept <= set(idle) and not ids & kept
    ids, idle = run_pool(initializer=sf.set_value, initargs=(1,))
    assert kept <= set(idle) and not ids & kept
    with InterpreterPoolExecutor(2) as ex:  # reuse off: takes none, keeps none
        ex.prewarm()
        assert not {ex.submit(sf.interp_id).result() for _ in range(10)} & kept
    # Each kind kept its own: 2 of each config / initializer, none of the last executor.
    assert len(idle_interpreters()) == 8
    # The same config again takes one of those of the default config.
    ids, _ = run_pool()
    assert ids <= kept


def test_same_initializer_runs_again_in_a_reused_interpreter() -> None:
    init = "COUNT = globals().get('COUNT', 0) + 1"
    with InterpreterPoolExecutor(1, reuse=True, initializer=init) as ex:
        first = ex.submit(sf.interp_id).result()
        assert ex.submit(sf.get_main_attr, "COUNT").result() == 1
    with InterpreterPoolExecutor(1, reuse=True, initializer=init) as ex:
        assert ex.submit(sf.interp_id).result() == first
        # __main__ was reset, then the initializer ran again.
        assert ex.submit(sf.get_main_attr, "COUNT").result() == 1
    with InterpreterPoolExecutor(1, reuse=True, initializer=sf.set_value, initargs=([1],)) as ex:
        second = ex.submit(sf.interp_id).result()
    with InterpreterPoolExecutor(1, reuse=True, initializer=sf.set_value, initargs=([1],)) as ex:
        assert ex.submit(sf.interp_id).result() == second  # equal initargs match


# -- what a reused interpreter keeps and loses -------------------------------------------------


def test_main_namespace_is_reset_modules_are_kept() -> None:
    with InterpreterPoolExecutor(1, reuse=True) as ex:
        fresh = ex.submit(sf.main_names).result()
        first = ex.submit(sf.interp_id).result()
        ex.submit(sf.set_main_attr, "leak", 1).result()
        ex.submit(sf.set_value, "module state").result()
        assert ex.submit(sf.get_main_attr, "leak").result() == 1
        with pytest.raises(ValueError):
            ex.submit(int, "x").result()  # an exception kept by the worker module
    with InterpreterPoolExecutor(1, reuse=True) as ex:
        assert ex.submit(sf.interp_id).result() == first
        with pytest.raises(AttributeError):
            ex.submit(sf.get_main_attr, "leak").result()
        assert ex.submit(sf.main_names).result() == fresh
        # Imported modules and their state are kept (docs/executor.md says so).
        assert ex.submit(sf.get_value).result() == "module state"
        assert ex.submit(sf.square, 3).result() == 9


SCRIPT_WITH_STATE = """\
from subinterp_rs.futures import InterpreterPoolExecutor, idle_interpreters

COUNT = 0


def bump():
    global COUNT
    COUNT += 1
    return COUNT


if __name__ == "__main__":
    with InterpreterPoolExecutor(1, reuse=True) as ex:
        assert [ex.submit(bump).result() for _ in range(3)] == [1, 2, 3]
    kept = idle_interpreters()
    assert len(kept) == 1
    with InterpreterPoolExecutor(1, reuse=True) as ex:   # the same interpreter, fresh globals
        assert [ex.submit(bump).result() for _ in range(2)] == [1, 2]
    assert idle_interpreters() == kept
    print("OK")
"""


def test_the_scripts_globals_start_afresh(tmp_path: Path) -> None:
    """Functions of the script's ``__main__`` run in the worker's ``__mp_main__``: the next
    executor runs the script again rather than seeing the globals the last one changed."""
    script = tmp_path / "bump.py"
    script.write_text(SCRIPT_WITH_STATE)
    ran = run_python(str(script), check=True)
    assert ran.lines()[-1:] == ["OK"], ran.detail()


def test_sys_path_is_the_new_executors() -> None:
    with InterpreterPoolExecutor(1, reuse=True) as ex:
        first = ex.submit(sf.interp_id).result()
    sys.path.append("/nonexistent/subinterp-rs-reuse")
    try:
        with InterpreterPoolExecutor(1, reuse=True) as ex:
            assert ex.submit(sf.interp_id).result() == first
            assert ex.submit(sf.sys_path).result()[-1] == "/nonexistent/subinterp-rs-reuse"
    finally:
        sys.path.remove("/nonexistent/subinterp-rs-reuse")


def test_not_kept_with_threads_running_a_failed_initializer_or_forwarded_logging() -> None:
    with InterpreterPoolExecutor(1, reuse=True) as ex:
        busy = ex.submit(sf.interp_id).result()
        ex.submit(sf.start_sleeper, 0.5).result()
    assert idle_interpreters() == []
    assert busy not in live_ids()  # closed (its thread joined)
    ex = InterpreterPoolExecutor(1, reuse=True, initializer=sf.fail_init)
    with pytest.raises(BrokenInterpreterPool):
        ex.submit(sf.square, 1).result()
    ex.shutdown()
    assert idle_interpreters() == []
    with InterpreterPoolExecutor(1, reuse=True, forward_logging=True) as ex:
        assert ex.submit(sf.square, 2).result() == 4
    assert idle_interpreters() == []


def test_asyncio_pool_reuses_too() -> None:
    async def main() -> tuple[int, int]:
        async with AsyncInterpreterPool(1, reuse=True) as pool:
            a = await pool.run(sf.interp_id)
        async with AsyncInterpreterPool(1, reuse=True) as pool:
            b = await pool.run(sf.interp_id)
        return a, b

    a, b = asyncio.run(main())
    assert a == b
    assert idle_interpreters() == [a]


# -- the bound and the drain ---------------------------------------------------------------------


def test_bound_and_drain() -> None:
    assert set_max_idle(1) == 8
    run_pool()
    assert len(idle_interpreters()) == 1  # the other one was closed
    run_pool()
    kept = idle_interpreters()
    assert len(kept) == 1
    assert set_max_idle(0) == 1  # closes the one beyond the new bound
    assert idle_interpreters() == []
    assert kept[0] not in live_ids()
    run_pool()
    assert idle_interpreters() == []
    set_max_idle(8)
    run_pool()
    kept = idle_interpreters()
    assert clear_idle() == 2
    assert idle_interpreters() == []
    assert not set(kept) & live_ids()
    assert clear_idle() == 0


def test_misuse() -> None:
    with pytest.raises(TypeError, match="reuse must be a bool"):
        InterpreterPoolExecutor(1, reuse=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reuse must be a bool"):
        AsyncInterpreterPool(1, reuse="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        set_max_idle(-1)
    with pytest.raises(TypeError, match="must be an int"):
        set_max_idle(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an int"):
        set_max_idle(True)
    assert set_max_idle(8) == 8  # unchanged by the refused calls


# -- in child processes: exit, fork, memory ------------------------------------------------------


@pytest.mark.parametrize("shut_down", [True, False])
def test_exit_with_idle_interpreters_is_clean(shut_down: bool) -> None:
    ran = run_snippet(
        child(
            f"""
        import support_futures as sf
        from subinterp_rs.futures import InterpreterPoolExecutor, idle_interpreters

        ex = InterpreterPoolExecutor(2, reuse=True, initializer="import json")
        ex.prewarm()
        assert ex.submit(sf.square, 3).result() == 9
        if {shut_down}:
            ex.shutdown()
            assert len(idle_interpreters()) == 2
        print("OK")
        """
        )
    )
    assert ran.lines()[-1:] == ["OK"], ran.detail()
    assert "remaining subinterpreters" not in ran.stderr, ran.detail()
    assert "Traceback" not in ran.stderr, ran.detail()


def test_fork_drains_the_idle_interpreters() -> None:
    assert_ok(
        child(
            """
        import os
        import support_futures as sf
        from subinterp_rs.futures import InterpreterPoolExecutor, idle_interpreters

        with InterpreterPoolExecutor(2, reuse=True) as ex:
            assert ex.submit(sf.square, 3).result() == 9
        assert idle_interpreters()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
        assert idle_interpreters() == []
        with InterpreterPoolExecutor(2, reuse=True) as ex:   # and reuse goes on afterwards
            assert ex.submit(sf.square, 4).result() == 16
        assert idle_interpreters()
        print("OK")
        """
        )
    )


def test_memory_is_flat_over_executor_cycles() -> None:
    """12 executors of 2 workers, each importing a few stdlib modules in both, made and shut
    down in a loop: with reuse, the process grows by less than 12 MiB after the first two
    (without it, CPython 3.12 and 3.13 keep a few MiB of each of the 24 closed interpreters;
    docs/executor.md has the figures)."""
    ran = assert_ok(
        """
        import os, sys
        sys.path.insert(0, os.path.join(os.environ["REPO"], "scripts"))
        from _rss import MIB, settled_rss
        from subinterp_rs.futures import InterpreterPoolExecutor, idle_interpreters

        def cycle():
            with InterpreterPoolExecutor(
                2, reuse=True, initializer="import json, decimal, email.message, argparse"
            ) as ex:
                ex.prewarm()
                assert list(ex.map(abs, range(-20, 0))) == list(range(20, 0, -1))

        for _ in range(2):
            cycle()
        kept = sorted(idle_interpreters())
        before = settled_rss()
        for _ in range(10):
            cycle()
        growth = (settled_rss() - before) / MIB
        print(f"growth {growth:.2f} MiB")
        assert sorted(idle_interpreters()) == kept, (kept, idle_interpreters())
        assert growth < 12, growth
        print("OK")
        """,
        env={"REPO": REPO},
    )
    assert "growth" in ran.stdout
