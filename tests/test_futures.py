"""subinterp_rs.futures.InterpreterPoolExecutor: the 3.14 stdlib's executor on every Python.

Task functions live in tests/support_futures.py, which the worker interpreters import.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import gc
import importlib
import io
import itertools
import json
import math
import operator
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.thread import BrokenThreadPool
from typing import Any

import pytest
import support_futures as sf
from _helpers import join_all, run_snippet, run_threads, wait_for
from hypothesis import given, settings
from hypothesis import strategies as st
from subinterp_rs import ExecutionFailed, NotShareableError, _native
from subinterp_rs.futures import BrokenInterpreterPool, InterpreterPoolExecutor


def live_ids() -> list[int]:
    return [i for i, _ in _native.list_all()]


@pytest.fixture(scope="module")
def pool() -> Iterator[InterpreterPoolExecutor]:
    with InterpreterPoolExecutor(2, prewarm=True) as ex:
        ex.prewarm()
        yield ex


@pytest.fixture(scope="module")
def tpool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as ex:
        yield ex


# -- the same results as ThreadPoolExecutor ------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.tuples(inner, inner)
        | st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(values, max_size=20), chunksize=st.integers(1, 8))
def test_map_same_as_threads(
    pool: InterpreterPoolExecutor, tpool: ThreadPoolExecutor, xs: list[Any], chunksize: int
) -> None:
    expected = list(tpool.map(sf.describe, xs))
    assert list(pool.map(sf.describe, xs, chunksize=chunksize)) == expected
    assert list(pool.map(sf.describe, xs)) == expected


@settings(max_examples=40, deadline=None)
@given(
    args=st.lists(values, max_size=4),
    kwargs=st.dictionaries(st.sampled_from(["a", "b", "fn", "self"]), values, max_size=3),
)
def test_submit_same_as_threads(
    pool: InterpreterPoolExecutor,
    tpool: ThreadPoolExecutor,
    args: list[Any],
    kwargs: dict[str, Any],
) -> None:
    expected = tpool.submit(sf.echo, *args, **kwargs).result()
    got = pool.submit(sf.echo, *args, **kwargs).result()
    assert got == expected


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(st.integers(-(10**30), 10**30), max_size=30), chunksize=st.integers(1, 5))
def test_map_two_iterables_same_as_threads(
    pool: InterpreterPoolExecutor, tpool: ThreadPoolExecutor, xs: list[int], chunksize: int
) -> None:
    ys = list(reversed(xs))[: len(xs) // 2]  # the shorter one ends the map, as zip() does
    assert list(pool.map(sf.add, xs, ys, chunksize=chunksize)) == list(tpool.map(sf.add, xs, ys))
    assert list(pool.map(sf.square, xs, chunksize=chunksize)) == [x * x for x in xs]


def outcome(f: concurrent.futures.Future[Any]) -> tuple[str, Any]:
    exc = f.exception()
    if exc is None:
        return "ok", f.result()
    return type(exc).__name__, exc.args


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(alphabet="0123456789 _-+xé٣", max_size=6), max_size=10))
def test_exceptions_same_as_threads(
    pool: InterpreterPoolExecutor, tpool: ThreadPoolExecutor, texts: list[str]
) -> None:
    ours = [pool.submit(sf.int_of, t) for t in texts]
    theirs = [tpool.submit(sf.int_of, t) for t in texts]
    assert [outcome(f) for f in ours] == [outcome(f) for f in theirs]
    for f in ours:
        exc = f.exception()
        if exc is not None:
            # As the 3.14 stdlib: the task's exception, raised from the ExecutionFailed that
            # reported it (with the traceback from inside).
            assert isinstance(exc, ValueError)
            assert isinstance(exc.__cause__, ExecutionFailed)
            assert exc.__cause__.excinfo.type.__name__ == "ValueError"
            assert "int_of" in exc.__cause__.excinfo.errdisplay


def test_map_raises_at_the_failing_item(
    pool: InterpreterPoolExecutor, tpool: ThreadPoolExecutor
) -> None:
    items = ["1", "2", "x", "4"]
    for chunksize in (1, 2, 3):
        it = pool.map(sf.int_of, items, chunksize=chunksize)
        assert [next(it), next(it)] == [1, 2]
        with pytest.raises(ValueError, match="invalid literal"):
            next(it)
    with pytest.raises(ValueError):
        list(tpool.map(sf.int_of, items))


# -- exceptions -----------------------------------------------------------------------------


def test_exception_of_an_importable_class_keeps_its_class(pool: InterpreterPoolExecutor) -> None:
    exc = pool.submit(sf.raise_task_error, 7).exception()
    assert type(exc) is sf.TaskError
    assert (exc.code, exc.why, exc.args) == (7, "task 7 failed", (7, "task 7 failed"))
    cause = exc.__cause__
    assert isinstance(cause, ExecutionFailed)
    assert cause.excinfo.type.__name__ == "TaskError"
    assert cause.excinfo.type.__module__ == "support_futures"
    assert "raise_task_error" in cause.excinfo.errdisplay
    with pytest.raises(sf.TaskError) as info:
        pool.submit(sf.raise_task_error, 8).result()
    assert info.value.code == 8


def test_exception_that_cannot_cross_is_execution_failed(pool: InterpreterPoolExecutor) -> None:
    exc = pool.submit(sf.raise_unpicklable).exception()
    assert type(exc) is ExecutionFailed
    assert exc.excinfo.type.__name__ == "Unpicklable"
    assert exc.excinfo.msg == "nope"
    assert pool.submit(sf.square, 3).result() == 9  # the worker goes on


def test_base_exception_in_task(pool: InterpreterPoolExecutor) -> None:
    exc = pool.submit(sf.raise_keyboard_interrupt).exception()
    assert type(exc) is KeyboardInterrupt
    assert pool.submit(sf.square, 4).result() == 16


def test_result_that_cannot_cross(pool: InterpreterPoolExecutor) -> None:
    exc = pool.submit(sf.returns_lock).exception()
    assert isinstance(exc, NotShareableError)
    assert "result" in str(exc)


def test_argument_that_cannot_cross(pool: InterpreterPoolExecutor) -> None:
    exc = pool.submit(sf.describe, threading.Lock()).exception()
    assert isinstance(exc, NotShareableError)


def test_scripts_are_not_tasks(pool: InterpreterPoolExecutor) -> None:
    with pytest.raises(TypeError, match="scripts not supported"):
        pool.submit("print(1)")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scripts not supported"):
        pool.map("print(1)", [1])  # type: ignore[arg-type]


def test_not_callable_fails_in_the_future(pool: InterpreterPoolExecutor) -> None:
    exc = pool.submit(42).exception()  # type: ignore[arg-type]
    assert isinstance(exc, TypeError)


def test_exception_after_the_stdlib_pattern_in_a_traceback(pool: InterpreterPoolExecutor) -> None:
    # What a user sees: the remote traceback, then the local one.
    try:
        pool.submit(sf.int_of, "x").result()
    except ValueError as exc:
        import traceback

        text = "".join(traceback.format_exception(exc))
    assert "Uncaught in the interpreter" in text
    assert "int_of" in text
    assert "The above exception was the direct cause" in text


# -- beyond the stdlib: closures, chunks, reuse, prewarm -----------------------------------


def test_lambdas_and_closures_cross_by_value(pool: InterpreterPoolExecutor) -> None:
    k = 5
    assert pool.submit(lambda x: x + k, 1).result() == 6
    assert list(pool.map(lambda x: x * k, range(4), chunksize=2)) == [0, 5, 10, 15]
    seen: list[int] = []
    pool.submit(seen.append, 1).result()  # a bound method of a copy
    assert seen == []


def test_workers_own_one_interpreter_each_and_keep_it() -> None:
    with InterpreterPoolExecutor(2) as ex:
        ex.prewarm()
        results = [ex.submit(sf.interp_and_calls).result() for _ in range(30)]
        results += [f.result() for f in [ex.submit(sf.interp_and_calls) for _ in range(30)]]
    main = _native.get_main()[0]
    ids = {i for i, _ in results}
    assert main not in ids
    assert 1 <= len(ids) <= 2
    for id in ids:
        counts = sorted(n for i, n in results if i == id)
        assert counts == list(range(1, len(counts) + 1))  # the same module state each time
    assert not ids & set(live_ids())  # closed at shutdown


def test_prewarm_starts_every_worker() -> None:
    before = live_ids()
    with InterpreterPoolExecutor(3, thread_name_prefix="warm") as ex:
        assert len(live_ids()) == len(before)
        ex.prewarm()
        assert len(live_ids()) == len(before) + 3
        assert sorted(t.name for t in ex._threads) == ["warm_0", "warm_1", "warm_2"]
        t0 = time.perf_counter()
        assert ex.submit(sf.square, 5).result() == 25
        assert time.perf_counter() - t0 < 1.0
        ex.prewarm()  # again: nothing to do
        assert len(ex._threads) == 3
    assert live_ids() == before
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.prewarm()


def test_prewarm_flag_starts_workers_without_waiting() -> None:
    before = live_ids()
    with InterpreterPoolExecutor(2, prewarm=True) as ex:
        assert len(ex._threads) == 2
        assert ex.submit(sf.square, 6).result() == 36
        assert wait_for(lambda: len(live_ids()) == len(before) + 2)
    assert live_ids() == before


def test_default_thread_names_and_max_workers() -> None:
    with InterpreterPoolExecutor() as ex:
        assert ex._max_workers >= 5
        ex.submit(sf.square, 1).result()
        assert all(t.name.startswith("InterpreterPoolExecutor-") for t in ex._threads)
    with pytest.raises(ValueError):
        InterpreterPoolExecutor(0)


def test_map_buffersize_reads_lazily(pool: InterpreterPoolExecutor) -> None:
    it = pool.map(sf.square, itertools.count(), buffersize=3)
    assert list(itertools.islice(it, 8)) == [x * x for x in range(8)]
    it2 = pool.map(sf.square, itertools.count(), chunksize=4, buffersize=2)
    assert list(itertools.islice(it2, 10)) == [x * x for x in range(10)]
    with pytest.raises(TypeError):
        pool.map(sf.square, [1], buffersize=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pool.map(sf.square, [1], buffersize=0)
    with pytest.raises(ValueError):
        pool.map(sf.square, [1], chunksize=0)


def test_map_timeout() -> None:
    with InterpreterPoolExecutor(1) as ex:
        it = ex.map(sf.sleep_then, [0.3, 0.0], timeout=0.05)
        with pytest.raises(TimeoutError):
            next(it)


def test_map_of_many_tiny_tasks_in_chunks(pool: InterpreterPoolExecutor) -> None:
    n = 5000
    assert list(pool.map(sf.square, range(n), chunksize=250)) == [x * x for x in range(n)]


# -- initializer -----------------------------------------------------------------------------


def test_initializer_runs_in_each_worker() -> None:
    with InterpreterPoolExecutor(2, initializer=sf.set_value, initargs=("ready",)) as ex:
        ex.prewarm()
        fs = [ex.submit(sf.get_value) for _ in range(20)]
        assert {f.result() for f in fs} == {"ready"}
        ids = {f.result() for f in [ex.submit(sf.interp_id) for _ in range(20)]}
    assert not ids & set(live_ids())


def test_initializer_script() -> None:
    with InterpreterPoolExecutor(2, initializer="X = 6 * 7") as ex:
        assert ex.submit(sf.get_main_attr, "X").result() == 42
    with pytest.raises(ValueError, match="does not take args"):
        InterpreterPoolExecutor(1, initializer="X = 1", initargs=(1,))
    with pytest.raises(TypeError, match="initializer"):
        InterpreterPoolExecutor(1, initializer=42)  # type: ignore[arg-type]


def test_initializer_failure_breaks_the_pool(caplog: pytest.LogCaptureFixture) -> None:
    before = live_ids()
    ex = InterpreterPoolExecutor(2, initializer=sf.fail_init, initargs=(1,))
    fs = [ex.submit(sf.square, i) for i in range(5)]
    for f in fs:
        exc = f.exception(timeout=30)
        assert isinstance(exc, BrokenInterpreterPool)
        assert isinstance(exc, BrokenThreadPool)
    with pytest.raises(BrokenInterpreterPool, match="initializer failed"):
        ex.submit(sf.square, 1)
    with pytest.raises(BrokenInterpreterPool):
        ex.prewarm()
    ex.shutdown(wait=True)
    assert live_ids() == before
    assert "Exception in initializer" in caplog.text
    if sys.version_info >= (3, 14):
        from concurrent.futures.interpreter import BrokenInterpreterPool as Std

        assert issubclass(BrokenInterpreterPool, Std)


def test_initializer_failure_shows_in_prewarm() -> None:
    ex = InterpreterPoolExecutor(2, initializer="raise OSError('no')")
    with pytest.raises(BrokenInterpreterPool):
        ex.prewarm()
    ex.shutdown()


# -- shutdown -------------------------------------------------------------------------------


def test_shutdown_waits_for_running_tasks() -> None:
    before = live_ids()
    ex = InterpreterPoolExecutor(2)
    fs = [ex.submit(sf.sleep_then, 0.1, i) for i in range(4)]
    ex.shutdown(wait=True)
    assert [f.result(timeout=0) for f in fs] == [0, 1, 2, 3]
    assert live_ids() == before
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(sf.square, 1)
    ex.shutdown()  # again: fine


def test_shutdown_cancel_futures() -> None:
    before = live_ids()
    ex = InterpreterPoolExecutor(1)
    ex.prewarm()
    running = ex.submit(sf.sleep_then, 0.2, "done")
    assert wait_for(running.running)
    pending = [ex.submit(sf.square, i) for i in range(10)]
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=0) == "done"
    assert all(f.cancelled() for f in pending)
    assert live_ids() == before


def test_shutdown_without_waiting() -> None:
    before = live_ids()
    ex = InterpreterPoolExecutor(2)
    fs = [ex.submit(sf.sleep_then, 0.3, i) for i in range(4)]
    threads = list(ex._threads)
    t0 = time.perf_counter()
    ex.shutdown(wait=False)
    assert time.perf_counter() - t0 < 0.3  # the tasks take 0.6 s
    assert [f.result(timeout=30) for f in fs] == [0, 1, 2, 3]
    join_all(threads)
    assert live_ids() == before


def test_garbage_collected_executor_closes_its_interpreters() -> None:
    before = live_ids()
    ex = InterpreterPoolExecutor(2)
    ex.prewarm()
    assert ex.submit(sf.square, 3).result() == 9
    assert len(live_ids()) == len(before) + 2
    threads = list(ex._threads)
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None
    join_all(threads)
    assert live_ids() == before


def test_process_exit_with_an_executor_left_open() -> None:
    proc = run_snippet(
        """
        import time
        from subinterp_rs.futures import InterpreterPoolExecutor
        ex = InterpreterPoolExecutor(2)
        print(ex.submit(pow, 2, 5).result())
        ex.submit(time.sleep, 0.2)
        """,
        timeout=60,
    )
    assert proc.stdout.strip() == "32"
    assert "still running" not in proc.stderr


# -- use with threads, asyncio, and libraries that take an executor -------------------------


def test_used_from_several_threads(pool: InterpreterPoolExecutor) -> None:
    results: dict[int, list[int]] = {}

    def client(n: int) -> None:
        fs = [pool.submit(sf.square, n * 1000 + i) for i in range(100)]
        got = [f.result(timeout=60) for f in fs]
        got += list(pool.map(sf.square, range(n * 1000, n * 1000 + 50), chunksize=7))
        results[n] = got

    run_threads(*(functools.partial(client, n) for n in range(4)), timeout=120)
    for n in range(4):
        base = n * 1000
        assert results[n] == [(base + i) ** 2 for i in range(100)] + [
            (base + i) ** 2 for i in range(50)
        ]


def test_asyncio_run_in_executor(pool: InterpreterPoolExecutor) -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(*(loop.run_in_executor(pool, sf.square, i) for i in range(20)))
        )

    assert asyncio.run(main()) == [i * i for i in range(20)]

    async def failing() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pool, sf.raise_task_error, 3)

    with pytest.raises(sf.TaskError):
        asyncio.run(failing())


def test_as_completed_and_wait(pool: InterpreterPoolExecutor) -> None:
    fs = [pool.submit(sf.sleep_then, 0.01 * (i % 3), i) for i in range(12)]
    assert sorted(f.result() for f in concurrent.futures.as_completed(fs, timeout=60)) == list(
        range(12)
    )
    done, not_done = concurrent.futures.wait(fs, timeout=60)
    assert len(done) == 12 and not not_done


def test_tqdm_progress_over_map(pool: InterpreterPoolExecutor) -> None:
    tqdm = pytest.importorskip(
        "tqdm", reason="tqdm is not installed (optional: pip install tqdm)"
    ).tqdm
    items = list(range(2000))
    out = io.StringIO()
    bar = tqdm(pool.map(sf.square, items, chunksize=50), total=len(items), file=out, mininterval=0)
    results = list(bar)
    bar.close()
    assert results == [x * x for x in items]
    assert bar.n == len(items)
    assert "2000/2000" in out.getvalue()
    # Completion order, with as_completed.
    fs = [pool.submit(sf.square, x) for x in range(100)]
    out = io.StringIO()
    done = [f.result() for f in tqdm(concurrent.futures.as_completed(fs), total=100, file=out)]
    assert sorted(done) == [x * x for x in range(100)]
    assert "100/100" in out.getvalue()


def test_dask_local_scheduler(pool: InterpreterPoolExecutor) -> None:
    dask = pytest.importorskip("dask", reason="dask is not installed (optional)")

    x = dask.delayed(operator.add)(1, 2)
    y = dask.delayed(operator.mul)(x, 10)
    z = dask.delayed(sf.add)(y, dask.delayed(sf.square)(4))
    assert dask.compute(z, scheduler=pool) == (46,)
    with dask.config.set(pool=pool):
        assert dask.compute(z, scheduler="threads") == (46,)
    # A task's exception reaches the caller with its type, as with dask's thread pool.
    bad = dask.delayed(sf.raise_task_error)(5)
    with pytest.raises(sf.TaskError):
        dask.compute(bad, scheduler=pool)


@pytest.mark.skipif(sys.version_info < (3, 14), reason="the stdlib executor is new in 3.14")
def test_same_outcomes_as_the_stdlib_executor(pool: InterpreterPoolExecutor) -> None:
    std_executor = importlib.import_module("concurrent.futures.interpreter")

    # Functions the stdlib's workers can import too (they do not see tests/ on sys.path).
    tasks: list[tuple[Any, ...]] = [
        (pow, 2, 10),
        (divmod, 17, 5),
        (int, "12"),
        (int, "x"),
        (operator.truediv, 1, 0),
        (math.factorial, -1),
        (json.loads, '{"a": [1, 2.5, null]}'),
        (json.loads, "{"),  # json.JSONDecodeError, a class of its own
        (str.upper, "abc"),
    ]
    with std_executor.InterpreterPoolExecutor(2) as std:
        theirs = [std.submit(*t) for t in tasks]
        ours = [pool.submit(*t) for t in tasks]
        for a, b in zip(ours, theirs, strict=True):
            assert outcome(a) == outcome(b)
            ea, eb = a.exception(), b.exception()
            if ea is not None:
                assert eb is not None
                assert isinstance(ea.__cause__, ExecutionFailed)
                assert type(eb.__cause__).__name__ == "ExecutionFailed"
                assert ea.__cause__.excinfo.type.__name__ == eb.__cause__.excinfo.type.__name__
