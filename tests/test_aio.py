"""subinterp_rs.aio: awaiting calls in subinterpreters, and cancellation safety."""

from __future__ import annotations

import asyncio
import io
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import pytest
import support_futures as sf
from subinterp_rs import ExecutionFailed, Subinterpreter, _native, aio, interpreters
from subinterp_rs.aio import AsyncInterpreterPool


def live_ids() -> list[int]:
    return [i for i, _ in _native.list_all()]


def arun[T](coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro(), debug=False)


@pytest.fixture
def si() -> Iterator[Subinterpreter]:
    with Subinterpreter.create() as s:
        yield s


async def until_running(id: int, timeout: float = 30.0) -> None:
    """Wait until interpreter ``id`` runs a call (it may wait for a thread or a worker)."""
    deadline = time.monotonic() + timeout
    while not _native.is_running(id):
        assert time.monotonic() < deadline, f"interpreter {id} never started the call"
        await asyncio.sleep(0.002)


async def ticking_while[T](awaitable: Awaitable[T]) -> tuple[T, int]:
    """Await ``awaitable`` while another task ticks every ms; return the ticks seen."""
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0.001)

    t = asyncio.create_task(ticker())
    try:
        result = await awaitable
    finally:
        stop = True
        await t
    return result, ticks


# -- run() ----------------------------------------------------------------------------------


def test_run_with_every_kind_of_handle(si: Subinterpreter) -> None:
    async def main() -> None:
        assert await aio.run(si, pow, 2, 10) == 1024
        assert await aio.run(si.id, pow, 2, 11) == 2048
        assert await aio.run(si, sf.echo, 1, b=2) == ((1,), {"b": 2})
        k = 3
        assert await aio.run(si, lambda: k * 2) == 6  # closures, as Subinterpreter.call
        assert await aio.run(si, sf.interp_id) == si.id
        interp = interpreters.create()
        try:
            assert await aio.run(interp, sf.square, 9) == 81
            assert await aio.run(interp, sf.interp_id) == interp.id
        finally:
            interp.close()

    arun(main)


@pytest.mark.skipif(sys.version_info < (3, 14), reason="concurrent.interpreters is new in 3.14")
def test_run_with_a_stdlib_interpreter() -> None:
    import importlib

    std = importlib.import_module("concurrent.interpreters")
    interp = std.create()
    try:
        assert arun(lambda: aio.run(interp, divmod, 17, 5)) == (3, 2)
    finally:
        interp.close()


def test_run_does_not_block_the_loop(si: Subinterpreter) -> None:
    async def main() -> tuple[Any, int]:
        return await ticking_while(aio.run(si, sf.sleep_then, 0.25, "slept"))

    result, ticks = arun(main)
    assert result == "slept"
    assert ticks >= 10  # the loop ran meanwhile (about 0.25 s / 1 ms, less on a busy box)


def test_run_raises_what_the_call_raised(si: Subinterpreter) -> None:
    async def main() -> None:
        with pytest.raises(ExecutionFailed) as info:
            await aio.run(si, sf.int_of, "x")
        assert info.value.excinfo.type.__name__ == "ValueError"
        assert await aio.run(si, sf.int_of, "5") == 5  # and the interpreter goes on

    arun(main)


def test_run_in_parallel_in_several_interpreters() -> None:
    with Subinterpreter.create() as a, Subinterpreter.create() as b:
        for si in (a, b):
            si.call(sf.square, 1)  # support_futures imported there before timing

        async def main() -> list[Any]:
            return list(
                await asyncio.gather(
                    aio.run(a, sf.sleep_then, 0.5, "a"), aio.run(b, sf.sleep_then, 0.5, "b")
                )
            )

        t0 = time.perf_counter()
        assert arun(main) == ["a", "b"]
        assert time.perf_counter() - t0 < 0.85  # one after the other: 1 s


def test_run_cancelled_waits_for_the_call(si: Subinterpreter) -> None:
    async def main() -> float:
        task = asyncio.create_task(aio.run(si, sf.sleep_then, 0.3, "late"))
        await until_running(si.id)
        t0 = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        waited = time.perf_counter() - t0
        # The call returned before the cancellation propagated: the interpreter is idle and
        # usable at once.
        assert not si.is_running()
        assert await aio.run(si, sf.square, 3) == 9
        return waited

    waited = arun(main)
    assert waited >= 0.15


def test_run_cancelled_twice_still_waits(si: Subinterpreter) -> None:
    async def main() -> None:
        task = asyncio.create_task(aio.run(si, sf.sleep_then, 0.3))
        await until_running(si.id)
        task.cancel()
        await asyncio.sleep(0.05)
        task.cancel()  # while it waits for the call: absorbed, it keeps waiting
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert not si.is_running()

    arun(main)


def test_run_timeout_leaves_the_interpreter_idle(si: Subinterpreter) -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await aio.run(si, sf.sleep_then, 0.2)
        assert not si.is_running()
        si.close()  # closable at once

    arun(main)


# -- AsyncInterpreterPool --------------------------------------------------------------------


def test_pool_run_and_map() -> None:
    before = live_ids()

    async def main() -> None:
        async with AsyncInterpreterPool(2, prewarm=True) as pool:
            assert len(live_ids()) == len(before) + 2
            assert await pool.run(pow, 3, 3) == 27
            assert await pool.run(sf.echo, 1, x=2) == ((1,), {"x": 2})
            squares = [x async for x in pool.map(sf.square, range(50))]
            assert squares == [x * x for x in range(50)]
            chunked = [x async for x in pool.map(sf.add, range(50), range(50), chunksize=8)]
            assert chunked == [2 * x for x in range(50)]
            buffered = [x async for x in pool.map(sf.square, range(30), buffersize=3)]
            assert buffered == [x * x for x in range(30)]
            results = await asyncio.gather(*(pool.run(sf.square, i) for i in range(20)))
            assert results == [i * i for i in range(20)]
            with pytest.raises(sf.TaskError) as info:
                await pool.run(sf.raise_task_error, 2)
            assert isinstance(info.value.__cause__, ExecutionFailed)
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(pool.executor, sf.square, 12) == 144
        with pytest.raises(RuntimeError, match="after shutdown"):
            await pool.run(sf.square, 1)

    arun(main)
    assert live_ids() == before


def test_pool_map_raises_in_order() -> None:
    async def main() -> None:
        async with AsyncInterpreterPool(2) as pool:
            for chunksize in (1, 2, 3):
                got: list[int] = []
                with pytest.raises(ValueError):
                    async for x in pool.map(sf.int_of, ["1", "2", "x", "4"], chunksize=chunksize):
                        got.append(x)
                assert got == [1, 2]
            with pytest.raises(ValueError):
                pool.map(sf.square, [1], chunksize=0)
            with pytest.raises(ValueError):
                pool.map(sf.square, [1], buffersize=0)

    arun(main)


def test_pool_runs_calls_in_parallel() -> None:
    async def main() -> float:
        async with AsyncInterpreterPool(2, initializer="import support_futures") as pool:
            await pool.prewarm()
            t0 = time.perf_counter()
            results, ticks = await ticking_while(
                asyncio.gather(pool.run(sf.sleep_then, 0.5, 1), pool.run(sf.sleep_then, 0.5, 2))
            )
            assert list(results) == [1, 2]
            assert ticks >= 10
            return time.perf_counter() - t0

    assert arun(main) < 0.85  # one after the other: 1 s


def test_pool_cancel_detaches_a_running_call() -> None:
    before = live_ids()

    async def main() -> None:
        async with AsyncInterpreterPool(1, prewarm=True) as pool:
            (worker,) = set(live_ids()) - set(before)
            task = asyncio.create_task(pool.run(sf.sleep_then, 0.3, "detached"))
            await until_running(worker)
            t0 = time.perf_counter()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.perf_counter() - t0 < 0.2  # at once (the call has 0.25 s to go)
            # The call goes on in its interpreter, which is still the pool's and reserved
            # for it: no interpreter was lost or added, and the next call waits its turn.
            assert _native.is_running(worker)
            assert set(live_ids()) - set(before) == {worker}
            t1 = time.perf_counter()
            assert await pool.run(sf.interp_id) == worker
            assert time.perf_counter() - t1 >= 0.1
            assert not _native.is_running(worker)

    arun(main)
    assert live_ids() == before


def test_pool_cancel_drops_calls_not_started() -> None:
    before = live_ids()

    async def main() -> None:
        async with AsyncInterpreterPool(1, prewarm=True) as pool:
            (worker,) = set(live_ids()) - set(before)
            first = asyncio.create_task(pool.run(sf.sleep_then, 0.2, "first"))
            queued = [asyncio.create_task(pool.run(sf.set_value, i)) for i in range(5)]
            await until_running(worker)
            for t in queued:
                t.cancel()
            results = await asyncio.gather(*queued, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            assert await first == "first"
            assert await pool.run(sf.get_value) is None  # none of them ran

    arun(main)


def test_pool_cancel_wait_mode() -> None:
    before = live_ids()

    async def main() -> None:
        async with AsyncInterpreterPool(1, prewarm=True, cancel="wait") as pool:
            (worker,) = set(live_ids()) - set(before)
            task = asyncio.create_task(pool.run(sf.sleep_then, 0.3))
            await until_running(worker)
            t0 = time.perf_counter()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.perf_counter() - t0 >= 0.15  # it waited for the call
            assert not _native.is_running(worker)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await pool.run(sf.sleep_then, 0.2)
            assert not _native.is_running(worker)

    arun(main)
    assert live_ids() == before
    with pytest.raises(ValueError):
        AsyncInterpreterPool(1, cancel="never")  # type: ignore[arg-type]


def test_pool_map_left_early_drops_the_rest() -> None:
    async def main() -> None:
        async with AsyncInterpreterPool(1, prewarm=True) as pool:
            got = []
            it = pool.map(sf.sleep_then, [0.01] * 50, range(50))
            async for x in it:
                got.append(x)
                if len(got) == 3:
                    break
            await it.aclose()  # type: ignore[attr-defined]
            assert got == [0, 1, 2]
            t0 = time.perf_counter()
            assert await pool.run(sf.square, 2) == 4  # the rest were dropped, not run first
            assert time.perf_counter() - t0 < 0.3

    arun(main)


def test_pool_aclose_waits_for_detached_calls() -> None:
    before = live_ids()

    async def main() -> None:
        pool = AsyncInterpreterPool(1)
        await pool.prewarm()
        (worker,) = set(live_ids()) - set(before)
        task = asyncio.create_task(pool.run(sf.sleep_then, 0.2))
        await until_running(worker)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(live_ids()) == len(before) + 1
        t0 = time.perf_counter()
        await pool.aclose()
        assert time.perf_counter() - t0 >= 0.05
        assert live_ids() == before

    arun(main)


def test_pool_initializer_failure() -> None:
    from subinterp_rs.futures import BrokenInterpreterPool

    async def main() -> None:
        with pytest.raises(BrokenInterpreterPool):
            async with AsyncInterpreterPool(2, initializer=sf.fail_init, prewarm=True):
                pass
        async with AsyncInterpreterPool(2, initializer=sf.set_value, initargs=(5,)) as pool:
            assert await pool.run(sf.get_value) == 5

    arun(main)


def test_tqdm_progress_over_pool_map() -> None:
    tqdm_asyncio = pytest.importorskip(
        "tqdm.asyncio", reason="tqdm is not installed (optional: pip install tqdm)"
    )

    async def main() -> None:
        out = io.StringIO()
        async with AsyncInterpreterPool(2) as pool:
            items = range(500)
            bar = tqdm_asyncio.tqdm(
                pool.map(sf.square, items, chunksize=25), total=len(items), file=out
            )
            results = [x async for x in bar]
            bar.close()
        assert results == [x * x for x in items]
        assert "500/500" in out.getvalue()

    arun(main)


def test_pool_left_on_an_exception_drops_calls_not_started() -> None:
    before = live_ids()

    async def main() -> None:
        queued: list[asyncio.Task[Any]] = []
        with pytest.raises(KeyError):
            async with AsyncInterpreterPool(1, prewarm=True) as pool:
                (worker,) = set(live_ids()) - set(before)
                running = asyncio.create_task(pool.run(sf.sleep_then, 0.2, "ran"))
                queued = [asyncio.create_task(pool.run(sf.square, i)) for i in range(5)]
                await until_running(worker)
                raise KeyError("body failed")
        assert await running == "ran"  # the running call finished, and was waited for
        results = await asyncio.gather(*queued, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)

    arun(main)
    assert live_ids() == before
