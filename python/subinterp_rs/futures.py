"""``InterpreterPoolExecutor``: a ``concurrent.futures`` executor whose workers are
subinterpreters with their own GIL, on Python 3.12, 3.13, 3.14 and 3.15.

The 3.14 stdlib's ``concurrent.futures.InterpreterPoolExecutor``, with the same signature and
behaviour, on every supported Python, and faster::

    from subinterp_rs.futures import InterpreterPoolExecutor

    with InterpreterPoolExecutor(max_workers=4) as pool:
        assert pool.submit(pow, 2, 10).result() == 1024
        assert list(pool.map(abs, [-1, -2], chunksize=64)) == [1, 2]

The work queue, the worker loop and the completion of futures are native: ``submit`` pushes
onto a queue without a Python-level lock, and each worker takes its share of the queue at once
and runs it in one visit to its interpreter (see ``docs/executor.md``). Each worker thread
owns one interpreter for its whole life: it creates it when it starts (so
workers start their interpreters in parallel; on 3.12 only the creation proper is one at a
time), runs every task it takes there, and closes it when it exits (at ``shutdown()``, when
the executor is garbage-collected, or at process exit). Tasks of one worker share that
interpreter's modules and globals, as with the stdlib. Worker interpreters start with the
``sys.path`` of the interpreter that made them (the stdlib's see only the default one).

How tasks get in and results out (no pickle where none is needed):

* shareable values (``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, tuples of these,
  buffers, queues) and the built-in containers (``list``, ``dict``, ``set``, ...) cross as
  data; anything else is pickled;
* importable functions, builtins and classes cross by name; functions of a script's
  ``__main__`` are found again by running that script as ``__mp_main__`` (``if __name__ ==
  "__main__":`` blocks do not run), as ``multiprocessing``'s spawn does;
* unlike the stdlib (which refuses them), lambdas, nested functions and closures are allowed:
  they cross by value, the values they captured copied (pickled) like arguments. A task sees
  copies: what it changes in them is not seen by the caller. Their global names are looked
  up in the worker's ``__main__`` (as the 3.14 stdlib does for what it sends by value), which
  an initializer script can fill (``initializer="from mymodule import *"``);
* a task that raises gives its future the same exception as ``ThreadPoolExecutor`` would
  (rebuilt by pickle), raised ``from`` an :class:`~subinterp_rs.ExecutionFailed` whose
  ``excinfo`` has the type name, message and formatted traceback from inside, exactly as the
  3.14 stdlib does. If the exception cannot be pickled the future's exception is that
  ``ExecutionFailed`` itself; a result that cannot cross gives ``NotShareableError``.

Beyond the stdlib:

* :meth:`InterpreterPoolExecutor.prewarm` (or ``prewarm=True``) starts every worker at once,
  so no task waits for an interpreter to start;
* ``map(..., chunksize=n)`` sends ``n`` calls to a worker as one task (like
  ``ProcessPoolExecutor``; the stdlib ignores ``chunksize`` here), which makes tiny tasks cheap;
  ``buffersize`` (3.14's) works on every Python;
* ``config=`` takes an :class:`~subinterp_rs.InterpreterConfig` for the workers' interpreters
  (isolated, with their own GIL, by default);
* an initializer may be a script (source text run in each worker's ``__main__``) as well as a
  callable.
* ``reuse=True`` keeps the workers' interpreters idle when they exit (``__main__`` reset, the
  imported modules kept), and the next executor with the same config and initializer takes
  them instead of creating its own: executors made and shut down in a loop neither grow the
  process nor import again (:func:`clear_idle` closes the idle ones, :func:`set_max_idle`
  bounds them).

Progress bars: ``map`` yields results in order, as they are done, so ``tqdm`` wraps it as it
is (``total=`` since ``map`` has no length); or wrap ``as_completed`` for completion order::

    from tqdm import tqdm
    results = list(tqdm(pool.map(work, items, chunksize=32), total=len(items)))
    futures = [pool.submit(work, x) for x in items]
    for f in tqdm(concurrent.futures.as_completed(futures), total=len(futures)):
        ...
"""

from __future__ import annotations

import collections
import itertools
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import _base as _futures_base
from concurrent.futures import thread as _thread
from typing import Any, Final, cast

from . import _idle, _native_api, _worker
from ._errors import ExecutionFailed, InterpreterError
from ._idle import clear_idle, idle_interpreters, set_max_idle
from ._subinterpreter import InterpreterConfig, Subinterpreter, forward_logging_wanted

__all__ = [
    "BrokenInterpreterPool",
    "InterpreterPoolExecutor",
    "WorkerContext",
    "clear_idle",
    "idle_interpreters",
    "set_max_idle",
]

if sys.version_info >= (3, 14):
    from concurrent.futures.interpreter import BrokenInterpreterPool as _StdBrokenInterpreterPool

    class BrokenInterpreterPool(_StdBrokenInterpreterPool):
        """Raised when a worker interpreter of an :class:`InterpreterPoolExecutor` failed to
        start (its initializer raised). A subclass of the stdlib's
        ``concurrent.futures.interpreter.BrokenInterpreterPool``."""

else:

    class BrokenInterpreterPool(_thread.BrokenThreadPool):
        """Raised when a worker interpreter of an :class:`InterpreterPoolExecutor` failed to
        start (its initializer raised). A subclass of ``BrokenThreadPool``, like the 3.14
        stdlib's."""


_Task = tuple[
    Callable[..., Any],  # the entry point inside: _worker.call or _worker.call_chunk
    Callable[..., Any],  # the user's function
    tuple[Any, ...],
    dict[str, Any],
]
_InitData = _Task | str | None

_LOGGER: Final = _futures_base.LOGGER


# Run in each worker's __main__ when it starts (binding no name there): what every task
# needs is imported then, not by the first task.
_WARM_UP: Final = """\
__import__("subinterp_rs._worker")
try:
    __import__("subinterp_rs._pickling")  # pickle, for values that are not shareable
except ImportError:
    pass
"""

# Run after it in the interpreters of executors that reuse them (``reuse=True``): remember
# what a new interpreter's __main__ holds, so that it is reset to that when given back.
_KEEP_FRESH_MAIN: Final = '__import__("subinterp_rs._worker")._worker.keep_fresh_main()\n'


def _resolve_task(fn: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Task:
    if isinstance(fn, str):
        raise TypeError("scripts not supported")  # the stdlib's words
    return (_worker.call, cast(Callable[..., Any], fn), args, kwargs)


class WorkerContext:
    """The interpreter of one worker thread: created by :meth:`initialize` in that thread when
    it starts, used by :meth:`run` for each task it takes, closed by :meth:`finalize` when it
    exits (the shape of the 3.14 stdlib's ``concurrent.futures.interpreter.WorkerContext``)."""

    @classmethod
    def prepare(
        cls,
        initializer: Callable[..., object] | str | None,
        initargs: tuple[Any, ...],
        config: InterpreterConfig | None = None,
        forward_logging: bool = False,
        reuse: bool = False,
    ) -> tuple[Callable[[], WorkerContext], Callable[..., _Task]]:
        """Check the arguments; return ``(create_context, resolve_task)`` as the stdlib."""
        if not isinstance(reuse, bool):
            raise TypeError(f"reuse must be a bool, got {type(reuse).__name__}")
        initdata: _InitData
        if initializer is None:
            initdata = None
        elif isinstance(initializer, str):
            if initargs:
                raise ValueError(f"an initializer script does not take args, got {initargs!r}")
            initdata = initializer
        elif callable(initializer):
            initdata = _resolve_task(initializer, tuple(initargs), {})
        else:
            raise TypeError("initializer must be a callable or a script (str)")
        if config is None:
            config = InterpreterConfig()
        elif not isinstance(config, InterpreterConfig):
            raise TypeError(f"config must be an InterpreterConfig, got {type(config).__name__}")
        cfg = config
        forward = forward_logging_wanted(forward_logging)
        # Interpreters that forward their logging are not reused (their forwarder may change).
        key: _idle.Key | None = None
        if reuse and not forward:
            key = (cfg._args(), initdata[1:3] if isinstance(initdata, tuple) else initdata)

        def create_context() -> WorkerContext:
            return cls(initdata, cfg, forward, key)

        return create_context, _resolve_task

    def __init__(
        self,
        initdata: _InitData,
        config: InterpreterConfig,
        forward_logging: bool = False,
        reuse_key: _idle.Key | None = None,
    ) -> None:
        self.initdata = initdata
        self.config = config
        self.forward_logging = forward_logging
        self.reuse_key = reuse_key
        """Set when the interpreter is taken from, and given back to, the idle ones kept for
        reuse (``subinterp_rs._idle``) under this key."""
        self.interp: Subinterpreter | None = None
        self.ready = threading.Event()
        """Set once :meth:`initialize` is over (whether or not it worked)."""

    def __del__(self) -> None:
        if getattr(self, "interp", None) is not None:
            self.finalize()

    def initialize(self) -> None:
        """Create the interpreter (or take an idle one, with ``reuse``) and run the initializer
        in it."""
        assert self.interp is None, self.interp
        key = self.reuse_key
        self.interp = None if key is None else _idle.take(key)
        new = self.interp is None
        if self.interp is None:
            self.interp = Subinterpreter.create(self.config, forward_logging=self.forward_logging)
        try:
            if new:
                warm_up = _WARM_UP if key is None else _WARM_UP + _KEEP_FRESH_MAIN
                _native_api.exec(self.interp.id, warm_up)
            if isinstance(self.initdata, str):
                _native_api.exec(self.interp.id, self.initdata)
            elif self.initdata is not None:
                self.run(self.initdata)
        except BaseException:
            self.finalize()
            raise

    def finalize(self, reuse: bool = False) -> None:
        """Close the interpreter (if it cannot be closed now, e.g. a task left threads running
        in it, the package closes it at exit); with ``reuse`` (the worker ended normally) and a
        reuse key, give it to the idle ones kept for reuse instead."""
        interp, self.interp = self.interp, None
        if interp is None:
            return
        if reuse and self.reuse_key is not None:
            _idle.give(self.reuse_key, interp)
            return
        try:
            interp.close()
        except InterpreterError as exc:
            _LOGGER.warning("could not close worker interpreter %d: %s", interp.id, exc)

    def run(self, task: _Task) -> Any:
        """Run ``task`` in the interpreter and return its result, or raise what it raised
        (``from`` the :class:`ExecutionFailed` that reported it)."""
        interp = self.interp
        if interp is None:
            raise InterpreterError("the worker's interpreter is closed")
        entry, fn, args, kwargs = task
        id = interp.id
        try:
            return _native_api.call(id, entry, (fn, *args), kwargs or None, closures=True)
        except ExecutionFailed as wrapper:
            exc = _fetch(id, _worker.take_exception)
            if entry is _worker.call_chunk:
                partial = _fetch(id, _worker.take_partial)
                if isinstance(exc, BaseException):
                    exc.__cause__ = exc.__context__ = wrapper
                else:
                    exc = wrapper
                raise _ChunkFailed(partial if isinstance(partial, tuple) else (), exc) from None
            if not isinstance(exc, BaseException):
                raise  # it could not cross: the ExecutionFailed says what happened
            raise exc from wrapper


def _fetch(id: int, getter: Callable[[], object]) -> object:
    """What ``getter()`` returns in interpreter ``id``; ``None`` if it cannot cross."""
    try:
        return _native_api.call(id, getter, (), None)
    except Exception:
        return None


class _ChunkFailed(Exception):
    """A call of a ``map`` chunk raised ``error``; ``results`` are those of the calls before
    it. Only ``map`` sees it: it yields ``results``, then raises ``error``."""

    def __init__(self, results: tuple[Any, ...], error: BaseException) -> None:
        super().__init__(results, error)
        self.results = results
        self.error = error


def _check_map_args(chunksize: int, buffersize: int | None) -> None:
    """The argument checks of ``map()`` (the executor's and :mod:`subinterp_rs.aio`'s)."""
    if buffersize is not None and not isinstance(buffersize, int):
        raise TypeError("buffersize must be an integer or None")
    if buffersize is not None and buffersize < 1:
        raise ValueError("buffersize must be None or > 0")
    if chunksize < 1:
        raise ValueError("chunksize must be >= 1.")


def _flatten_chunks(chunks: Iterator[tuple[Any, ...]]) -> Iterator[Any]:
    failed: _ChunkFailed | None = None
    try:
        for results in chunks:
            yield from results
    except _ChunkFailed as exc:
        failed = exc
    if failed is not None:
        yield from failed.results
        error = failed.error
        del failed
        raise error


_BATCH: Final = 1024
"""The most tasks a worker takes (and runs in its interpreter) per visit."""


def _work(
    executor_reference: weakref.ref[InterpreterPoolExecutor],
    ctx: WorkerContext,
    pool: int,
    futures: dict[int, _TaskFuture],
    max_workers: int,
) -> None:
    """A worker thread: takes its share of the native work queue (waiting without the GIL),
    marks those futures running (dropping the cancelled), runs the tasks in its interpreter
    in one visit, then completes their futures."""
    try:
        ctx.initialize()
    except BaseException:
        _LOGGER.critical("Exception in initializer:", exc_info=True)
        executor = executor_reference()
        if executor is not None:
            executor._initializer_failed()
        del executor
        return
    finally:
        ctx.ready.set()
    work = _native_api.executor_work
    ended = False
    try:
        assert ctx.interp is not None
        interp = ctx.interp.id
        while True:
            done = work(pool, interp, _BATCH, max_workers)
            if done is None:
                ended = True
                return  # shut down (or the executor was collected), and nothing queued
            for i, kind, payload in done:
                f = futures.pop(i, None)
                if f is None:
                    continue  # cancelled by shutdown(cancel_futures=True)
                if kind == 0 or kind == 2:
                    _finish(f, payload, None)
                elif kind == 1:
                    _finish(f, None, payload)
                elif kind == 3:
                    _finish(f, None, _ChunkFailed(*payload))
                else:  # cancelled before it started: it did not run
                    _notify_cancelled(f)
            del done, payload, f
    except BaseException:
        _LOGGER.critical("Exception in worker", exc_info=True)
    finally:
        ctx.finalize(reuse=ended)


def _notify_cancelled(f: Future[Any]) -> None:
    """Cancel ``f`` (its task will not run) and tell its waiters, once."""
    Future.cancel(f)
    if f._state == _futures_base.CANCELLED:
        f.set_running_or_notify_cancel()


_PENDING: Final = _futures_base.PENDING
_RUNNING: Final = _futures_base.RUNNING
_FINISHED: Final = _futures_base.FINISHED


def _finish(f: _TaskFuture, result: object, exception: BaseException | None) -> None:
    """``f.set_result(result)`` or, with an ``exception``, ``f.set_exception(exception)``, as
    the worker completes a task: a :class:`_TaskFuture` nobody waits on yet (no condition made:
    see :class:`_LazyCondition`) is completed without taking its lock."""
    state = f._state
    if state is not _PENDING and state is not _RUNNING:
        # Done already: the stdlib's InvalidStateError.
        if exception is None:
            f.set_result(result)
        else:
            f.set_exception(exception)
        return
    # The state last: a reader that sees FINISHED sees the result. Whoever waits (result(),
    # wait(), as_completed(), add_done_callback()) makes the condition first and then reads the
    # state under its lock: either it sees FINISHED, or the condition is seen here and its
    # waiters are woken under the lock.
    f._result = result
    f._exception = exception
    f._state = _FINISHED
    cond = f.__dict__.get("_condition")
    if cond is not None:
        with cond:
            for waiter in f._waiters:
                if exception is None:
                    waiter.add_result(f)
                else:
                    waiter.add_exception(f)
            cond.notify_all()
    if f._done_callbacks:
        Future._invoke_callbacks(f)  # type: ignore[attr-defined]


class _LazyCondition:
    """The ``_condition`` of a :class:`_TaskFuture`: made when first looked up (most futures of
    tiny tasks are done before anyone waits on them, and a condition costs more than the rest
    of the future). ``dict.setdefault`` makes it once, even when threads race for it."""

    def __get__(
        self, f: _TaskFuture | None, owner: type[_TaskFuture] | None = None
    ) -> threading.Condition:
        if f is None:
            raise AttributeError("_condition")
        cond: threading.Condition = f.__dict__.setdefault("_condition", threading.Condition())
        return cond


class _TaskFuture(Future[Any]):
    """The future of a task in the native queue: :meth:`cancel` wins only against a task not
    started (the worker that takes it races for the same native state). Its condition is made
    when first needed (:class:`_LazyCondition`); a finished one answers :meth:`result`,
    :meth:`exception` and :meth:`done` without it."""

    _pool = 0
    _task = 0
    _done_callbacks: list[Callable[[Future[Any]], object]]
    _condition = _LazyCondition()

    def __init__(self) -> None:
        # Future.__init__ without the condition.
        self._state = _PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []

    def result(self, timeout: float | None = None) -> Any:
        """The call's result (waiting up to ``timeout`` seconds); see ``Future.result``."""
        if self._state is _FINISHED and self._exception is None:
            return self._result
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The call's exception (waiting up to ``timeout`` seconds); see
        ``Future.exception``."""
        if self._state is _FINISHED:
            return self._exception
        return super().exception(timeout)

    def done(self) -> bool:
        """Whether the call finished or was cancelled."""
        return self._state is _FINISHED or super().done()

    def cancel(self) -> bool:
        """Cancel the call if it has not started; whether it is cancelled."""
        if self._state == _futures_base.PENDING and not _native_api.executor_cancel(
            self._pool, self._task
        ):
            return False  # started, in its worker (still PENDING here until it is done)
        return super().cancel()

    def running(self) -> bool:
        """Whether the call is running (in its worker's interpreter)."""
        if self._state == _futures_base.PENDING:
            return _native_api.executor_started(self._pool, self._task)
        return super().running()


_live: weakref.WeakSet[InterpreterPoolExecutor] = weakref.WeakSet()


def _python_exit() -> None:
    """At exit (before ``threading`` joins its threads), as the stdlib's hook does for its
    pools: no new tasks, workers finish what is queued and stop; wait for them."""
    executors = list(_live)
    for executor in executors:
        _native_api.executor_close(executor._pool, False, False)
    for executor in executors:
        for t in list(executor._threads):
            t.join()


threading._register_atexit(_python_exit)  # type: ignore[attr-defined]


def _auto_chunksize(n: int, workers: int) -> int:
    """A ``map`` chunk size for ``n`` calls when none was given: about eight chunks per worker,
    at most 256 calls each (tiny calls then cost little more than in a thread pool)."""
    return max(1, min(256, n // (8 * max(1, workers))))


def _result_or_cancel[T](fut: Future[T], timeout: float | None = None) -> T:
    try:
        try:
            return fut.result(timeout)
        finally:
            fut.cancel()
    finally:
        del fut  # no reference to a future once it is done


class InterpreterPoolExecutor(ThreadPoolExecutor):
    """An executor that runs each call in a worker thread's own subinterpreter.

    Args:
        max_workers: the most interpreters (and threads) used; default, as the stdlib,
            ``min(32, cpu_count + 4)``.
        thread_name_prefix: a prefix for the worker threads' names.
        initializer: a callable run in each worker interpreter when it starts (with
            ``initargs``), or a script (source text) run in its ``__main__``. If it raises,
            the pool breaks: pending and later tasks get :class:`BrokenInterpreterPool`.
        initargs: the initializer's arguments.
        prewarm: start every worker (and its interpreter) now, without waiting; see
            :meth:`prewarm`.
        config: the workers' :class:`~subinterp_rs.InterpreterConfig` (isolated by default).
        forward_logging: the workers' logging records and warnings go to the main
            interpreter's logging and warnings (:mod:`subinterp_rs.logs`); also on when the
            executor is made inside :func:`subinterp_rs.logs.forward_logging`.
        reuse: when a worker exits, keep its interpreter idle (its ``__main__`` reset, its
            imported modules kept) for the next executor with the same config and
            initializer, which takes it instead of creating one: executors made and shut down
            in a loop then neither grow the process (CPython 3.12 and 3.13 keep memory of
            every closed interpreter) nor import again. Off by default, as in the stdlib,
            where ``shutdown()`` closes the interpreters. See :func:`clear_idle`,
            :func:`set_max_idle` and ``docs/executor.md``.
    """

    BROKEN = BrokenInterpreterPool

    _counter = itertools.count().__next__

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | str | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        prewarm: bool = False,
        config: InterpreterConfig | None = None,
        forward_logging: bool = False,
        reuse: bool = False,
    ) -> None:
        thread_name_prefix = thread_name_prefix or f"InterpreterPoolExecutor-{self._counter()}"
        super().__init__(max_workers, thread_name_prefix)
        self._new_context, self._resolve = WorkerContext.prepare(
            initializer, initargs, config, forward_logging, reuse
        )
        self._broken_reason = ""
        self._ready: list[threading.Event] = []
        self._pool = pool = _native_api.executor_create()
        self._futures: dict[int, _TaskFuture] = {}
        self._next_task = itertools.count(1).__next__  # atomic: no lock needed
        # Collected without shutdown(): close the queue, so the workers end (and forget it).
        weakref.finalize(self, _native_api.executor_close, pool, False, True)
        _live.add(self)
        if prewarm:
            self.prewarm(wait=False)

    def submit[**P, T](self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in a worker interpreter; return its future."""
        if isinstance(fn, str):
            raise TypeError("scripts not supported")  # the stdlib's words
        return self._queue_task(_native_api.executor_submit, fn, args, kwargs or None)

    submit.__doc__ = _futures_base.Executor.submit.__doc__

    def _check_usable(self) -> None:
        if self._broken:
            raise self.BROKEN(self._broken_reason)
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _thread._shutdown:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    def _submit(self, fn: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        return self._queue_task(_native_api.executor_submit, fn, args, kwargs or None)

    def _submit_chunk(self, fn: object, chunk: tuple[tuple[Any, ...], ...]) -> Future[Any]:
        return self._queue_task(_native_api.executor_submit_chunk, fn, chunk)

    def _queue_task(self, push: Callable[..., tuple[int, int]], *what: object) -> Future[Any]:
        """A new future, its task pushed onto the native queue by ``push(pool, task, *what)``.
        No lock: the native queue has its own, and a closed one refuses the task."""
        if self._broken or self._shutdown or _thread._shutdown:
            self._check_usable()
        f = _TaskFuture()
        f._pool = self._pool
        f._task = task = self._next_task()
        self._futures[task] = f
        try:
            _, idle = push(self._pool, task, *what)
        except Exception as exc:
            return self._not_submitted(task, f, exc)
        if not idle and len(self._threads) < self._max_workers:
            self._adjust_thread_count()
        return f

    def _not_submitted(self, task: int, f: Future[Any], exc: Exception) -> Future[Any]:
        """A task the native queue refused: closed meanwhile (raise), or a value that could not
        cross (its future fails, as a thread pool's would when the call fails)."""
        del self._futures[task]
        if self._broken:
            raise self.BROKEN(self._broken_reason) from None
        if self._shutdown or _thread._shutdown:
            raise exc
        f.set_exception(exc)
        return f

    def _submit_task(self, task: _Task) -> Future[Any]:
        """Submit a task as :meth:`WorkerContext.prepare`'s ``resolve_task`` makes it (for
        :mod:`subinterp_rs.aio`): ``_worker.call_chunk`` tasks run a chunk."""
        entry, fn, args, kwargs = task
        if entry is _worker.call_chunk:
            return self._submit_chunk(fn, tuple(args[0]))
        return self._submit(fn, args, kwargs)

    def _adjust_thread_count(self) -> None:
        # No worker was waiting for work: start one, up to max_workers.
        with self._shutdown_lock:
            if not self._shutdown and len(self._threads) < self._max_workers:
                self._start_worker()

    def _start_worker(self) -> None:
        # Under self._shutdown_lock. When the executor is collected, the finalizer closes the
        # work queue, so the workers exit and close their interpreters.
        threads = cast("set[threading.Thread]", self._threads)
        ctx = self._new_context()
        t = threading.Thread(
            name=f"{self._thread_name_prefix or self}_{len(threads)}",
            target=_work,
            args=(weakref.ref(self), ctx, self._pool, self._futures, self._max_workers),
        )
        t.start()
        threads.add(t)
        self._ready.append(ctx.ready)

    def _initializer_failed(self) -> None:
        with self._shutdown_lock:
            self._broken = True
            self._broken_reason = (
                "A worker interpreter's initializer failed, the interpreter pool is not "
                "usable anymore"
            )
            # Fail every pending future.
            for task in _native_api.executor_close(self._pool, True, False):
                f = self._futures.pop(task, None)
                if f is not None and f._state == _futures_base.PENDING:
                    f.set_exception(self.BROKEN(self._broken_reason))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new tasks; with ``cancel_futures``, cancel those not started; with ``wait``,
        return once the workers finished the others and closed their interpreters."""
        with self._shutdown_lock:
            self._shutdown = True
            for task in _native_api.executor_close(self._pool, cancel_futures, False):
                f = self._futures.pop(task, None)
                if f is not None:
                    _notify_cancelled(f)
        if wait:
            for t in list(self._threads):
                t.join()

    shutdown.__doc__ = _futures_base.Executor.shutdown.__doc__

    def prewarm(self, wait: bool = True) -> None:
        """Start every worker now (up to ``max_workers``), each creating its interpreter (and
        running the initializer) in parallel, so that no task waits for one to start.

        With ``wait`` (the default), return once all are ready, and raise
        :class:`BrokenInterpreterPool` if an initializer failed.
        """
        with self._shutdown_lock, _thread._global_shutdown_lock:
            self._check_usable()
            while len(self._threads) < self._max_workers:
                self._start_worker()
            ready = list(self._ready)
        if wait:
            for event in ready:
                event.wait()
            if self._broken:
                raise self.BROKEN(self._broken_reason)

    def map[T](
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """Return an iterator equivalent to ``map(fn, *iterables)``, the calls made in the
        worker interpreters.

        Args:
            fn: a callable that takes as many arguments as there are iterables.
            timeout: the most seconds to wait (from this call) for all results; past it the
                iterator raises ``TimeoutError``.
            chunksize: how many calls each task makes: with more than 1, the iterables are
                cut into chunks of this size, each sent to a worker as one task (for many
                small calls). The first call that raises ends the iteration there. With 1
                (the default) and no ``buffersize``, a size is picked from the number of
                calls: about eight chunks per worker, at most 256 calls each.
            buffersize: how many tasks may be submitted but not yet yielded; the iterables
                are read as results are taken. ``None``: all are submitted now.

        Raises:
            TimeoutError: not all results came within ``timeout``.
            Exception: what ``fn(*args)`` raised, when its result is reached.
        """
        _check_map_args(chunksize, buffersize)
        task = self._resolve(fn, (), {})
        zipped: Iterator[tuple[Any, ...]] = zip(*iterables, strict=False)
        if chunksize == 1 and buffersize is None:
            # All calls are submitted now anyway: in chunks, if they are many.
            items = list(zipped)
            chunksize = _auto_chunksize(len(items), self._max_workers)
            zipped = iter(items)
        if chunksize == 1:
            return self._map_tasks(task, zipped, timeout, buffersize)
        chunk_task: _Task = (_worker.call_chunk, fn, (), {})
        chunks = itertools.batched(zipped, chunksize)
        return _flatten_chunks(
            self._map_tasks(chunk_task, ((c,) for c in chunks), timeout, buffersize)
        )

    def _map_tasks(
        self,
        task: _Task,
        argsiter: Iterator[tuple[Any, ...]],
        timeout: float | None,
        buffersize: int | None,
    ) -> Iterator[Any]:
        # The 3.14 stdlib's Executor.map, with tasks instead of submit() calls.
        entry, fn, _, _ = task
        end_time = None if timeout is None else timeout + time.monotonic()
        fs: collections.deque[Future[Any]]
        if buffersize:
            fs = collections.deque(
                self._submit_task((entry, fn, args, {}))
                for args in itertools.islice(argsiter, buffersize)
            )
        else:
            fs = collections.deque(self._submit_task((entry, fn, args, {})) for args in argsiter)
        # A weak reference, so that the executor can be collected while the iterator lives.
        executor_ref = weakref.ref(self)

        def result_iterator() -> Iterator[Any]:
            try:
                fs.reverse()  # pop() from the right end: in order
                while fs:
                    if (
                        buffersize
                        and (executor := executor_ref())
                        and (args := next(argsiter, None)) is not None
                    ):
                        fs.appendleft(executor._submit_task((entry, fn, args, {})))
                        del executor
                    if end_time is None:
                        yield _result_or_cancel(fs.pop())
                    else:
                        yield _result_or_cancel(fs.pop(), end_time - time.monotonic())
            finally:
                for future in fs:
                    future.cancel()

        return result_iterator()
