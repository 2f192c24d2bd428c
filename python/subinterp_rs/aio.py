"""asyncio: await calls made in subinterpreters, without blocking the event loop.

::

    from subinterp_rs import Subinterpreter, aio

    async def main() -> None:
        with Subinterpreter.create() as si:
            assert await aio.run(si, pow, 2, 10) == 1024
        async with aio.AsyncInterpreterPool(max_workers=4, prewarm=True) as pool:
            assert await pool.run(pow, 2, 10) == 1024
            squares = [x async for x in pool.map(pow, range(100), [2] * 100, chunksize=10)]

Calls run in other threads; the event loop only waits for their results. What crosses, and
how a task's exception comes back, is as in :mod:`subinterp_rs.futures`.

Cancellation. A call that has started in an interpreter cannot be interrupted: Python code
running there (or C code it called) only stops by returning. So cancelling an ``await`` that
waits for a running call never leaves an interpreter in an unknown state, and never loses one:

* :func:`run` (an interpreter of yours): the cancellation *waits* for the call to return (its
  result or exception is dropped), then ``CancelledError`` propagates. When it arrives, the
  interpreter is idle again and yours to use (or close). Further cancellations while it
  waits are absorbed (the task still ends cancelled). A call that had not started yet is
  dropped at once.
* :class:`AsyncInterpreterPool` (the pool's interpreters): by default the cancellation
  *detaches* the call: ``CancelledError`` propagates at once, while the call goes on in its
  worker interpreter, which stays reserved for it (no other task is given to it) until it
  returns, then takes the next task. ``aclose()`` (the end of ``async with``) waits for such
  calls before it closes the interpreters. Calls that had not started are dropped at once.
  ``AsyncInterpreterPool(cancel="wait")`` makes the pool's awaits wait, as :func:`run` does.

Progress with ``tqdm``: ``pool.map`` is an async iterator of the results in order, which
``tqdm.asyncio.tqdm`` wraps as it is::

    from tqdm.asyncio import tqdm
    results = [r async for r in tqdm(pool.map(work, items, chunksize=32), total=len(items))]
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import itertools
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self

from . import _native_api, _worker
from ._subinterpreter import InterpreterConfig
from .futures import InterpreterPoolExecutor, _check_map_args, _ChunkFailed

__all__ = ["AsyncInterpreterPool", "SupportsCall", "run"]


class SupportsCall(Protocol):
    """An interpreter handle with ``call()``: a :class:`~subinterp_rs.Subinterpreter`, a
    :class:`subinterp_rs.interpreters.Interpreter`, or the 3.14 stdlib's
    ``concurrent.interpreters.Interpreter``."""

    def call(self, callable: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...


# The threads that wait for run()'s calls: one per call in flight. Each interpreter runs one
# call at a time, so this bounds how many interpreters run() drives at once.
_RUN_THREADS: Final = 256
_runner: concurrent.futures.ThreadPoolExecutor | None = None
_runner_lock = threading.Lock()


def _forget_runner() -> None:
    # In a forked child the runner's threads do not exist: start afresh if needed.
    global _runner
    _runner = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_runner)


def _run_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = concurrent.futures.ThreadPoolExecutor(
                _RUN_THREADS, thread_name_prefix="subinterp_rs.aio.run"
            )
        return _runner


async def run[**P, T](
    interp: SupportsCall | int,
    func: Callable[P, T],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """``await`` ``func(*args, **kwargs)`` called in the interpreter ``interp``, from another
    thread, so the event loop goes on meanwhile.

    ``interp`` is a :class:`~subinterp_rs.Subinterpreter` (closures allowed, as its
    ``call``), a PEP 734 ``Interpreter`` of :mod:`subinterp_rs.interpreters` or of the 3.14
    stdlib (its ``call`` semantics), or an interpreter id (as a ``Subinterpreter``).

    Raises what the call raises (:class:`~subinterp_rs.ExecutionFailed` for an exception
    inside). A cancellation waits for a running call to return before it propagates (see the
    module's documentation).
    """
    call: Callable[[], T]
    if isinstance(interp, int):
        call = functools.partial(
            _native_api.call, interp, func, args, kwargs or None, closures=True
        )
    else:
        call = functools.partial(interp.call, func, *args, **kwargs)
    return await _await_waiting(_run_executor().submit(call))


async def _await_waiting[T](cf: concurrent.futures.Future[T]) -> T:
    """Await ``cf``; if cancelled while it runs, wait for it to finish, then propagate."""
    try:
        return await asyncio.wrap_future(cf)
    except asyncio.CancelledError:
        if not cf.cancel():  # it runs (or just finished): it cannot be stopped
            await _wait_absorbing_cancellation(cf)
        raise


async def _wait_absorbing_cancellation(cf: concurrent.futures.Future[Any]) -> None:
    """Wait until ``cf`` is done; cancellations meanwhile are absorbed (the caller raises
    ``CancelledError`` afterwards)."""
    if cf.done():
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def set_done(_: object) -> None:
        if not done.done():
            done.set_result(None)

    def on_done(_: concurrent.futures.Future[Any]) -> None:
        # RuntimeError: the loop is closed, nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(set_done, None)

    cf.add_done_callback(on_done)
    while not done.done():
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            continue


class AsyncInterpreterPool:
    """A pool of worker interpreters for asyncio: an :class:`InterpreterPoolExecutor` whose
    calls are awaited.

    ::

        async with AsyncInterpreterPool(max_workers=4) as pool:
            r = await pool.run(func, *args, **kwargs)
            async for r in pool.map(func, xs, chunksize=16):
                ...

    Args:
        max_workers: as for :class:`InterpreterPoolExecutor`.
        initializer: as for :class:`InterpreterPoolExecutor`.
        initargs: as for :class:`InterpreterPoolExecutor`.
        config: as for :class:`InterpreterPoolExecutor`.
        prewarm: start every worker interpreter at ``async with`` (waiting for them without
            blocking the loop), so the first calls do not wait for one to start.
        cancel: what a cancelled ``await`` does with a call that already runs: ``"detach"``
            (default) propagates the cancellation at once and leaves the call to finish in
            its interpreter, which stays reserved until then; ``"wait"`` waits for it to
            return first. Calls not yet started are dropped either way.
        forward_logging: as for :class:`InterpreterPoolExecutor`.
        reuse: as for :class:`InterpreterPoolExecutor`: the interpreters are kept idle for
            the next pool (or executor) of the same config and initializer.
    """

    _counter = itertools.count().__next__

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | str | None = None,
        initargs: tuple[Any, ...] = (),
        prewarm: bool = False,
        config: InterpreterConfig | None = None,
        cancel: Literal["detach", "wait"] = "detach",
        forward_logging: bool = False,
        reuse: bool = False,
    ) -> None:
        if cancel not in ("detach", "wait"):
            raise ValueError(f"cancel must be 'detach' or 'wait', got {cancel!r}")
        self._executor = InterpreterPoolExecutor(
            max_workers,
            f"AsyncInterpreterPool-{self._counter()}",
            initializer,
            initargs,
            config=config,
            forward_logging=forward_logging,
            reuse=reuse,
        )
        self._prewarm = prewarm
        self._cancel: Literal["detach", "wait"] = cancel
        # How many tasks map() keeps submitted ahead (the executor's own default if None).
        self._max_workers: int = self._executor._max_workers

    @property
    def executor(self) -> InterpreterPoolExecutor:
        """The underlying executor (for ``loop.run_in_executor`` and friends)."""
        return self._executor

    async def __aenter__(self) -> Self:
        if self._prewarm:
            await self.prewarm()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Leaving on an exception drops the calls not started (nobody will use them).
        await self.aclose(cancel_futures=exc_type is not None)

    async def prewarm(self) -> None:
        """Start every worker interpreter now and wait (without blocking the loop) until all
        are ready; :class:`~subinterp_rs.futures.BrokenInterpreterPool` if an initializer
        failed."""
        await asyncio.to_thread(self._executor.prewarm)

    async def _await[T](self, cf: concurrent.futures.Future[T]) -> T:
        if self._cancel == "wait":
            return await _await_waiting(cf)
        # Cancelling the wrapper cancels cf if it has not started; a running cf goes on in
        # its worker, which takes no other task until it returns.
        return await asyncio.wrap_future(cf)

    async def run[**P, T](self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``await`` ``func(*args, **kwargs)`` called in one of the pool's interpreters.

        Raises what the call raises (the same exception as in a thread, ``from`` an
        :class:`~subinterp_rs.ExecutionFailed`), ``RuntimeError`` once the pool is closed.
        """
        return await self._await(self._executor.submit(func, *args, **kwargs))

    def map[T](
        self,
        func: Callable[..., T],
        *iterables: Iterable[Any],
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> AsyncIterator[T]:
        """An async iterator of ``func(*args)`` for the ``args`` of ``zip(*iterables)``, in
        order, the calls made in the pool's interpreters (submitted now, as
        ``Executor.map`` does).

        ``chunksize`` calls go to a worker as one task; ``buffersize`` bounds how many tasks
        are submitted ahead of the results taken (``None``: as many as the pool has workers,
        so every worker has one while the results are taken, and none waits in the queue).
        More are submitted as results are taken: leaving the iteration early (``break``, an
        exception, a cancellation) drops the calls not started yet, even while the iterator
        is still referenced (an ``async for`` left with ``break`` does not close it).
        """
        _check_map_args(chunksize, buffersize)
        executor = self._executor
        entry, fn, _, _ = executor._resolve(func, (), {})
        zipped = zip(*iterables, strict=False)
        argsiter: Iterator[tuple[Any, ...]]
        if chunksize > 1:
            entry = _worker.call_chunk
            argsiter = ((chunk,) for chunk in itertools.batched(zipped, chunksize))
        else:
            argsiter = zipped

        def submit(args: tuple[Any, ...]) -> concurrent.futures.Future[Any]:
            return executor._submit_task((entry, fn, args, {}))

        window = buffersize or self._max_workers
        fs = collections.deque(submit(args) for args in itertools.islice(argsiter, window))
        return self._results(fs, argsiter, submit, chunksize > 1)

    async def _results(
        self,
        fs: collections.deque[concurrent.futures.Future[Any]],
        more: Iterator[tuple[Any, ...]] | None,
        submit: Callable[[tuple[Any, ...]], concurrent.futures.Future[Any]],
        chunked: bool,
    ) -> AsyncIterator[Any]:
        failed: _ChunkFailed | None = None
        try:
            while fs:
                if more is not None and (args := next(more, None)) is not None:
                    fs.append(submit(args))
                result = await self._await(fs.popleft())
                if chunked:
                    for item in result:
                        yield item
                else:
                    yield result
        except _ChunkFailed as exc:
            failed = exc
        finally:
            for f in fs:
                f.cancel()
        if failed is not None:
            # A call of a chunk raised: the results before it, then its exception.
            for item in failed.results:
                yield item
            error = failed.error
            del failed
            raise error

    async def aclose(self, *, cancel_futures: bool = False) -> None:
        """Shut the pool down: wait (without blocking the loop) for the calls that run,
        detached ones included, then close every interpreter. ``cancel_futures`` drops the
        calls not started yet (``async with`` does when its body raised). Cancelling this
        ``await`` does not stop the shutdown."""
        await asyncio.shield(
            asyncio.to_thread(self._executor.shutdown, True, cancel_futures=cancel_futures)
        )
