"""The native executor core of ``InterpreterPoolExecutor`` (issue #18): a native work queue
(no Python-level lock on submit), workers that take several tasks per visit to their
interpreter, batched completion; the stdlib's semantics kept (futures, cancellation,
shutdown, broken pool, exceptions with their tracebacks, initializer failure). Task
functions live in tests/support_futures.py.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
from concurrent.futures import Future

import pytest
import support_futures as sf
from _helpers import run_threads
from subinterp_rs import ExecutionFailed, NotShareableError, _native_api
from subinterp_rs.futures import BrokenInterpreterPool, InterpreterPoolExecutor


def wait_running(f: Future[object]) -> None:
    """Until ``f``'s task runs in its worker."""
    for _ in range(2000):
        if f.running():
            return
        threading.Event().wait(0.005)
    raise AssertionError("the task did not start")


def test_many_tasks_run_in_batches_and_all_complete() -> None:
    with InterpreterPoolExecutor(2, prewarm=True) as pool:
        fs = [pool.submit(sf.square, i) for i in range(3000)]
        assert [f.result() for f in fs] == [i * i for i in range(3000)]
        assert all(isinstance(f, Future) for f in fs)
        # Every task ran in one of the two worker interpreters.
        ids = {pool.submit(sf.interp_id).result() for _ in range(50)}
        assert 1 <= len(ids) <= 2


def test_completion_order_and_as_completed() -> None:
    with InterpreterPoolExecutor(2) as pool:
        fs = [pool.submit(sf.add, i, 1) for i in range(500)]
        done = {f.result() for f in concurrent.futures.as_completed(fs, timeout=60)}
        assert done == set(range(1, 501))


def test_many_threads_submitting() -> None:
    with InterpreterPoolExecutor(3) as pool:
        results: dict[int, list[int]] = {}

        def submitter(k: int) -> None:
            fs = [pool.submit(sf.add, k * 1000, i) for i in range(300)]
            results[k] = [f.result() for f in fs]

        run_threads(*(functools.partial(submitter, k) for k in range(8)), timeout=60)
        assert sorted(results) == list(range(8))
        for k, got in results.items():
            assert got == [k * 1000 + i for i in range(300)]


def test_cancel_a_queued_task_it_does_not_run() -> None:
    with InterpreterPoolExecutor(1, prewarm=True) as pool:
        blocker = pool.submit(sf.sleep_then, 0.3, "blocker")
        queued = [pool.submit(sf.set_value, i) for i in range(20)]
        assert all(f.cancel() for f in queued)
        assert all(f.cancelled() for f in queued)
        assert blocker.result() == "blocker"
        assert pool.submit(sf.get_value).result() is None  # none of them ran
        concurrent.futures.wait(queued, timeout=10)


def test_a_running_task_cannot_be_cancelled() -> None:
    with InterpreterPoolExecutor(1, prewarm=True) as pool:
        f = pool.submit(sf.sleep_then, 0.3, "ran")
        wait_running(f)
        assert not f.cancel()
        assert f.result() == "ran"
        assert not f.running() and f.done()


def test_shutdown_cancel_futures_cancels_what_did_not_start() -> None:
    pool = InterpreterPoolExecutor(1, prewarm=True)
    first = pool.submit(sf.sleep_then, 0.3, "first")
    wait_running(first)
    rest = [pool.submit(sf.square, i) for i in range(50)]
    pool.shutdown(wait=True, cancel_futures=True)
    assert first.result() == "first"
    assert all(f.cancelled() or f.done() for f in rest)
    assert any(f.cancelled() for f in rest)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(sf.square, 1)


def test_shutdown_waits_for_the_queued_tasks() -> None:
    pool = InterpreterPoolExecutor(2)
    fs = [pool.submit(sf.square, i) for i in range(200)]
    pool.shutdown(wait=True)
    assert [f.result(timeout=0) for f in fs] == [i * i for i in range(200)]


def test_exceptions_carry_the_traceback_from_inside() -> None:
    with InterpreterPoolExecutor(2) as pool:
        fs = [pool.submit(sf.int_of, "x") for _ in range(5)]
        for f in fs:
            exc = f.exception()
            assert isinstance(exc, ValueError)
            assert isinstance(exc.__cause__, ExecutionFailed)
            assert "int_of" in exc.__cause__.excinfo.errdisplay
        custom = pool.submit(sf.raise_task_error, 7).exception()
        assert isinstance(custom, sf.TaskError) and custom.code == 7
        # An exception that cannot cross: its ExecutionFailed instead.
        assert isinstance(pool.submit(sf.raise_unpicklable).exception(), ExecutionFailed)


def test_results_and_arguments_that_cannot_cross() -> None:
    with InterpreterPoolExecutor(1) as pool:
        assert isinstance(pool.submit(sf.returns_lock).exception(), NotShareableError)
        assert isinstance(pool.submit(sf.describe, threading.Lock()).exception(), NotShareableError)
        assert pool.submit(sf.square, 5).result() == 25


def test_containers_cross_as_data_in_tasks() -> None:
    with InterpreterPoolExecutor(1) as pool:
        shared = [1, 2]
        out = pool.submit(sf.echo, [shared, shared], key={"k": (shared,)}).result()
        assert out == (([[1, 2], [1, 2]],), {"key": {"k": ([1, 2],)}})
        assert out[0][0][0] is out[0][0][1]


def test_initializer_failure_breaks_the_pool() -> None:
    pool = InterpreterPoolExecutor(2, initializer=sf.fail_init)
    f = pool.submit(sf.square, 2)
    with pytest.raises(BrokenInterpreterPool):
        f.result(timeout=60)
    with pytest.raises(BrokenInterpreterPool):
        pool.submit(sf.square, 3)
    pool.shutdown()


def test_map_chunks_by_itself_and_keeps_order_and_errors() -> None:
    with InterpreterPoolExecutor(2) as pool:
        assert list(pool.map(sf.square, range(5000))) == [i * i for i in range(5000)]
        it = pool.map(sf.int_of, ["1", "2", "x", "4"])
        assert next(it) == 1 and next(it) == 2
        with pytest.raises(ValueError):
            next(it)
        assert list(pool.map(sf.add, range(3), range(3), chunksize=2)) == [0, 2, 4]


def test_native_queue_misuse() -> None:
    with pytest.raises(RuntimeError, match="not found"):
        _native_api.executor_submit(10**9, 1, abs, (1,), None)
    pool = _native_api.executor_create()
    with pytest.raises(TypeError):
        _native_api.executor_submit(pool, 1, abs, [1], None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _native_api.executor_submit_chunk(pool, 1, abs, ([1],))  # type: ignore[arg-type]
    assert not _native_api.executor_cancel(pool, 12345)
    assert not _native_api.executor_started(pool, 12345)
    _native_api.executor_submit(pool, 1, abs, (-1,), None)
    assert _native_api.executor_close(pool, True, True) == [1]
    with pytest.raises(RuntimeError):
        _native_api.executor_submit(pool, 2, abs, (1,), None)


def test_task_future_is_a_future_without_its_condition_until_needed() -> None:
    from subinterp_rs.futures import _TaskFuture

    # The same attributes as the stdlib's Future, the condition made when first used.
    assert set(vars(_TaskFuture())) == set(vars(Future())) - {"_condition"}
    f = _TaskFuture()
    cond = f._condition
    assert isinstance(cond, type(threading.Condition())) and f._condition is cond


def test_waiting_in_every_way_on_tasks_done_before_and_after() -> None:
    with InterpreterPoolExecutor(2, prewarm=True) as pool:
        done_early = pool.submit(sf.add, 1, 2)
        failed_early = pool.submit(sf.raise_task_error, 3)
        concurrent.futures.wait([done_early, failed_early], timeout=60)
        late = [pool.submit(sf.sleep_then, 0.2, i) for i in range(4)]
        late_failure = pool.submit(sf.sleep_then, 0.2, "x")
        called: list[object] = []
        for f in (*late, done_early):
            f.add_done_callback(lambda f: called.append(f.result()))
        assert done_early.done() and done_early.result() == 3 and done_early.exception() is None
        assert failed_early.done() and isinstance(failed_early.exception(), sf.TaskError)
        with pytest.raises(sf.TaskError):
            failed_early.result()
        assert not late[0].done()
        got = {f.result() for f in concurrent.futures.as_completed(late, timeout=60)}
        assert got == {0, 1, 2, 3}
        assert late_failure.result(timeout=60) == "x"
        waited = concurrent.futures.wait([*late, late_failure], timeout=60)
        assert len(waited.done) == 5
        for _ in range(2000):  # callbacks run in the workers, just after the futures are done
            if len(called) == 5:
                break
            threading.Event().wait(0.005)
        assert sorted(map(str, called)) == ["0", "1", "2", "3", "3"]


def test_many_threads_waiting_on_the_same_futures() -> None:
    with InterpreterPoolExecutor(2) as pool:
        fs = [pool.submit(sf.sleep_then, 0.001 * (i % 5), i) for i in range(200)]
        seen: list[list[int]] = []

        def waiter() -> None:
            seen.append([f.result(timeout=60) for f in fs])

        run_threads(*([waiter] * 6), timeout=60)
        assert seen == [list(range(200))] * 6
