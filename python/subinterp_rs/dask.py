"""dask.distributed workers whose task slots are subinterpreters.

A dask worker runs its tasks in threads (one GIL: no parallelism for pure Python code) or
needs one process per core. With this module a worker's ``nthreads`` task slots are
subinterpreters with their own GIL, so pure-Python tasks run in parallel in one process::

    from dask.distributed import Client, LocalCluster
    from subinterp_rs.dask import SubinterpreterPlugin

    cluster = LocalCluster(n_workers=1, threads_per_worker=2,
                           plugins={SubinterpreterPlugin(default=True)})
    client = Client(cluster)

Three ways to install it on workers: :class:`SubinterpreterPlugin` given to
``client.register_plugin(...)`` or to ``LocalCluster(plugins={...})``, or the preload
``dask worker --preload subinterp_rs.dask`` (options ``--subinterp-default``,
``--subinterp-fallback``, ``--subinterp-executor NAME``). Tasks pick the executor with
``dask.annotate(executor="subinterp")``; with ``default=True`` every task runs there and the
worker's thread pool stays reachable as ``executor="threads"``.

How a task runs: distributed submits its bookkeeping (``distributed.worker._run_task_simple``,
which times the task and builds the task-finished or task-erred message) to the executor. That
code imports ``distributed``, whose ``psutil`` does not load in isolated subinterpreters, so
it runs in a main-interpreter thread of the slot; only the task's own function, its arguments
and its result cross into and out of that thread's subinterpreter, by cloudpickle (functions of
``__main__``, lambdas and closures by value). A task's exception comes back as itself, with
its traceback. Tasks that belong to dask itself (fused subgraphs, containers, aliases, dask's
own functions) run in the main interpreter as distributed runs them.

See ``docs/dask.md`` for the details, the limits and a benchmark.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import inspect
import logging
import pickle
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

try:
    import click
    import cloudpickle  # noqa: F401  (the crossing needs it: fail at import, not at task time)
    import dask.utils
    import distributed
    import distributed.worker
    from distributed import WorkerPlugin
except ImportError as _exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"subinterp_rs.dask needs distributed and cloudpickle ({_exc}): "
        "pip install 'subinterp-rs[dask]'"
    ) from _exc

from . import InterpreterConfig, Subinterpreter, _dask_task
from ._errors import ExecutionFailed, InterpreterError

__all__ = [
    "NEWEST_TESTED_DISTRIBUTED",
    "OLDEST_DISTRIBUTED",
    "CannotRunInSubinterpreter",
    "SubinterpreterExecutor",
    "SubinterpreterPlugin",
    "TaskError",
    "check_distributed",
    "dask_setup",
    "dask_teardown",
]

OLDEST_DISTRIBUTED: Final = "2024.11.1"
"""The oldest distributed supported: the first whose worker hands executors
``_run_task_simple(task, data, time_delay)`` with a ``dask._task_spec`` task (2024.11.0 needs a
dask release that is no longer on PyPI)."""

NEWEST_TESTED_DISTRIBUTED: Final = "2026.8.0"
"""The newest distributed tested. Newer releases are accepted while their worker still hands
tasks to executors this way (:func:`check_distributed` looks)."""

logger = logging.getLogger("distributed.worker.subinterp_rs")
"""Under ``distributed.worker`` so that its records reach the worker's log (the dashboard,
``client.get_worker_logs()``) with distributed's own."""


class CannotRunInSubinterpreter(RuntimeError):
    """A task cannot run in a subinterpreter: its function or arguments cannot be pickled or
    loaded there, it imports an extension module that refuses subinterpreters, or its result
    cannot come back. Run such tasks on the worker's thread pool, or install the plugin with
    ``fallback=True`` to have them run there by themselves."""


class TaskError(Exception):
    """A task failed in its subinterpreter with an exception that could not be sent back as
    itself (it cannot be pickled), or with ``SystemExit``/``KeyboardInterrupt``: the message
    has its type, message and formatted traceback."""


# -- the distributed versions --------------------------------------------------------------


def _version_tuple(version: str) -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if m is None:
        return (0,)
    return tuple(int(part or 0) for part in m.groups())


_TASK_RUNNER_PARAMS: Final = ["task", "data", "time_delay"]
_THREAD_RUNNER_PARAMS: Final = [
    "task",
    "data",
    "execution_state",
    "key",
    "active_threads",
    "active_threads_lock",
    "time_delay",
]


def _params(fn: object) -> list[str] | None:
    try:
        return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _task_class() -> Any:
    """``dask._task_spec.Task`` (``None`` in a dask without it)."""
    try:
        from dask._task_spec import Task
    except ImportError:
        return None
    return Task


def _thread_runner() -> Callable[..., Any] | None:
    """distributed's ``_run_task`` (what its thread pool runs: ``_run_task_simple`` with the
    worker's thread state, so ``get_worker()`` works), if it has the known signature."""
    fn = getattr(distributed.worker, "_run_task", None)
    if fn is None or _params(fn) != _THREAD_RUNNER_PARAMS:
        return None
    return fn  # type: ignore[no-any-return]


def check_distributed() -> None:
    """Check that this distributed's worker hands tasks to executors the way the executor
    relies on; raise ``RuntimeError`` saying which versions are supported if not."""
    version = str(getattr(distributed, "__version__", "unknown"))
    problems = []
    if _version_tuple(version) < _version_tuple(OLDEST_DISTRIBUTED):
        problems.append(f"it is older than {OLDEST_DISTRIBUTED}")
    runner = getattr(distributed.worker, "_run_task_simple", None)
    if runner is None:
        problems.append("it has no distributed.worker._run_task_simple")
    elif _params(runner) != _TASK_RUNNER_PARAMS:
        problems.append(
            f"distributed.worker._run_task_simple takes ({', '.join(_params(runner) or ['?'])}),"
            f" not ({', '.join(_TASK_RUNNER_PARAMS)})"
        )
    try:
        source = inspect.getsource(distributed.worker.Worker.execute)
    except (OSError, TypeError):
        source = None  # installed without sources: the checks above have to do
    if source is not None and "_run_task_simple" not in source:
        problems.append("Worker.execute no longer submits _run_task_simple to executors")
    task_cls = _task_class()
    if task_cls is None or "func" not in getattr(task_cls, "__slots__", ()):
        problems.append("dask._task_spec.Task (with a func slot) is missing")
    if problems:
        raise RuntimeError(
            f"subinterp_rs.dask supports distributed {OLDEST_DISTRIBUTED} to "
            f"{NEWEST_TESTED_DISTRIBUTED} (tested; newer releases while their workers hand tasks "
            f"to executors the same way), but this is distributed {version}: "
            + "; ".join(problems)
            + ". Install a supported version: pip install 'subinterp-rs[dask]'"
        )
    if _version_tuple(version) > _version_tuple(NEWEST_TESTED_DISTRIBUTED):
        logger.info(
            "distributed %s is newer than the newest tested with subinterp_rs.dask (%s); "
            "its worker hands tasks to executors as expected",
            version,
            NEWEST_TESTED_DISTRIBUTED,
        )


# -- which tasks cross ----------------------------------------------------------------------


def _qualname(fn: object) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}" if module else str(name)


def _belongs_to_dask(fn: object) -> bool:
    """dask's and distributed's own functions (fused subgraphs, containers, collections'
    chunk functions, ...) run in the main interpreter, as distributed runs them: they need
    dask, and mostly numpy or pandas, which do not load in isolated subinterpreters."""
    module = getattr(fn, "__module__", None)
    return isinstance(module, str) and module.partition(".")[0] in ("dask", "distributed")


def _unapply(
    func: Callable[..., Any], args: Any = (), kwargs: Any = None
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """The call ``dask.utils.apply(func, args, kwargs)`` stands for."""
    return func, tuple(args), dict(kwargs or {})


class _SlotCall:
    """Stands for a task's function in a copy of its task: calls it in the slot's
    subinterpreter (the task's arguments are resolved from its dependencies first, in main)."""

    __slots__ = ("apply", "func", "key", "slot")

    def __init__(self, slot: _Slot, func: Callable[..., Any], key: object, apply: bool) -> None:
        self.slot = slot
        self.func = func
        self.key = key
        self.apply = apply

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        func = self.func
        if self.apply:
            func, args, kwargs = _unapply(*args, **kwargs)
            if _belongs_to_dask(func):
                return func(*args, **kwargs)
        result = self.slot.call(func, args, kwargs, self.key)
        if type(result) is _Raised:
            # Raised here, so that the task's traceback has one frame of ours, not two.
            error = result.error
            del result
            try:
                raise error
            finally:
                del error
        return result


class _Raised:
    """What :meth:`_Slot.call` returns for a task that raised ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


# -- the executor ---------------------------------------------------------------------------


def _load_exception(data: bytes) -> BaseException | None:
    if not data:
        return None
    try:
        exc = pickle.loads(data)
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


_rehearsed = False
_rehearsal_lock = threading.Lock()


def _rehearse_once() -> None:
    global _rehearsed
    with _rehearsal_lock:
        if not _rehearsed:
            _dask_task.rehearse()
            _rehearsed = True


class _WorkItem:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(
        self,
        future: concurrent.futures.Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self, slot: _Slot) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = slot.execute(self.fn, self.args, self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
            del self  # no cycle exception -> traceback -> frame -> self -> future
        else:
            self.future.set_result(result)


class _Slot:
    """One task slot: a main-interpreter thread and the subinterpreter it owns."""

    def __init__(self, owner: SubinterpreterExecutor, index: int) -> None:
        self.owner = owner
        self.interp: Subinterpreter | None = None
        self.path: tuple[str, ...] = ()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._main, name=f"{owner.thread_name_prefix}-{index}", daemon=True
        )

    # In the slot's thread.

    def _main(self) -> None:
        try:
            self.interp = Subinterpreter.create(self.owner.config)
            self.path = tuple(sys.path)
            self.interp.call(_dask_task.warm, self.path)
        except BaseException as exc:
            self.error = exc
            self._close()
            self.ready.set()
            return
        self.ready.set()
        work_queue = self.owner._queue
        try:
            while True:
                item = work_queue.get()
                if item is None:
                    break
                item.run(self)
                del item  # no reference to it while waiting for the next
        except BaseException:
            logger.critical("task slot %s failed", self.thread.name, exc_info=True)
        finally:
            self._close()

    def _close(self) -> None:
        interp, self.interp = self.interp, None
        if interp is None:
            return
        try:
            interp.close()
        except InterpreterError as exc:
            # E.g. a task left threads running in it: the package closes it at exit.
            logger.warning("could not close the subinterpreter of %s: %s", self.thread.name, exc)

    def execute(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run what the worker submitted: its task runner with the task's function sent to
        this slot's subinterpreter; anything else as it is (in main)."""
        if fn is not getattr(distributed.worker, "_run_task_simple", None) or kwargs:
            return fn(*args, **kwargs)
        task, data, time_delay = args
        task = self._wrap(task)
        worker = self.owner.worker
        runner = _thread_runner() if worker is not None else None
        if worker is None or runner is None:
            return fn(task, data, time_delay)
        # As distributed's thread pool runs it: get_worker() works in tasks run in main.
        return runner(
            task,
            data,
            worker.execution_state,
            task.key,
            worker.active_threads,
            worker.active_threads_lock,
            time_delay,
        )

    def _wrap(self, task: Any) -> Any:  # a dask._task_spec.GraphNode
        """A copy of ``task`` whose function runs in this slot's subinterpreter, or ``task``
        itself when it runs in main (anything but a plain task of a function of the user's)."""
        task_cls = self.owner._task_cls
        if task_cls is None or type(task) is not task_cls:
            return task
        func = task.func
        apply = func is dask.utils.apply
        if not apply and _belongs_to_dask(func):
            return task
        clone = copy.copy(task)
        clone.func = _SlotCall(self, func, task.key, apply)
        return clone

    def call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: object,
    ) -> Any:
        """``func(*args, **kwargs)`` in this slot's subinterpreter; what it raised comes back
        as a :class:`_Raised`."""
        owner = self.owner
        if owner.fallback and _qualname(func) in owner._main_only:
            return func(*args, **kwargs)
        by_value = owner._by_value
        try:
            payload = _dask_task.dumps((func, args, kwargs), by_value)
        except Exception as exc:
            return self._not_here(
                func, args, kwargs, key, "its function or arguments cannot be pickled", repr(exc)
            )
        path = tuple(sys.path)
        send_path = None if path == self.path else path
        interp = self.interp
        if interp is None:
            raise InterpreterError("the task slot's subinterpreter is closed")
        try:
            status, data, text = interp.call(_dask_task.run, payload, send_path)
        except ExecutionFailed as exc:
            info = exc.excinfo
            raise TaskError(
                f"task {key!r} ({_qualname(func)}) raised {info.type.__name__} in its "
                f"subinterpreter:\n{info.formatted}"
            ) from None
        self.path = path
        if status == _dask_task.LOAD_REFUSED:
            # Its module imports something that refuses subinterpreters (numpy, distributed,
            # ...): its functions may still run there, sent by value. Once per module.
            module = getattr(func, "__module__", None)
            if (
                isinstance(module, str)
                and module not in by_value
                and _dask_task.can_send_by_value()
            ):
                owner._send_by_value(module)
                return self.call(func, args, kwargs, key)
            status = _dask_task.NOT_LOADED
        if status == _dask_task.OK:
            try:
                return pickle.loads(data)
            except Exception as exc:
                return self._not_here(
                    func,
                    args,
                    kwargs,
                    key,
                    "its result could not be unpickled in the main interpreter",
                    repr(exc),
                    ran=True,
                )
        if status == _dask_task.RAISED:
            error = _load_exception(data)
            if error is None:
                raise TaskError(
                    f"task {key!r} ({_qualname(func)}) raised an exception that cannot be sent "
                    f"back from its subinterpreter:\n{text}"
                )
            return _Raised(error)
        reason = {
            _dask_task.NOT_LOADED: "its function or arguments could not be loaded in a "
            "subinterpreter",
            _dask_task.REFUSED: "it imports an extension module that does not load in "
            "subinterpreters",
            _dask_task.RESULT_NOT_SENT: "its result cannot be pickled",
        }.get(status, f"unknown status {status}")
        ran = status in (_dask_task.REFUSED, _dask_task.RESULT_NOT_SENT)
        return self._not_here(func, args, kwargs, key, reason, text, ran=ran)

    def _not_here(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: object,
        reason: str,
        detail: str,
        *,
        ran: bool = False,
    ) -> Any:
        """A task that cannot run in a subinterpreter: raise, or (fallback) run it here."""
        owner = self.owner
        name = _qualname(func)
        summary = _last_line(detail)
        if not owner.fallback:
            message = (
                f"task {key!r} ({name}) cannot run in a subinterpreter: {reason}: {summary}. "
                f"Run such tasks on the worker's thread pool ({owner.threads_hint}), or install "
                "the plugin with fallback=True (--subinterp-fallback) to have them run there."
            )
            if detail.strip() != summary:
                message += f"\n\nIn the subinterpreter:\n{detail}"
            raise CannotRunInSubinterpreter(message)
        owner._note_main_only(name, reason, summary, ran)
        return func(*args, **kwargs)


class SubinterpreterExecutor(concurrent.futures.Executor):
    """An executor for dask workers whose ``max_workers`` threads each own a subinterpreter.

    ``submit(fn, *args)`` runs ``fn`` in one of its main-interpreter threads; when ``fn`` is
    distributed's task runner (what a worker submits for a task), the task's own function runs
    in that thread's subinterpreter. Usually made by :class:`SubinterpreterPlugin`; it can also
    be given to ``Worker(executor=...)``/``Worker(executor={"subinterp": ...})`` directly.

    Args:
        max_workers: the number of task slots (the worker's ``nthreads``).
        config: the slots' :class:`~subinterp_rs.InterpreterConfig` (isolated by default).
        fallback: run a task that cannot run in a subinterpreter in the main interpreter,
            with a warning, instead of failing it with :class:`CannotRunInSubinterpreter`.
        thread_name_prefix: the slots' thread names.
        shutdown_timeout: how long ``shutdown(wait=True)`` waits for running tasks; a slot
            still running one then closes its interpreter when the task ends.
        worker: the worker it serves: tasks that run in main see it (``get_worker()``).
        threads_hint: how the worker's thread pool is chosen (for error messages).
    """

    def __init__(
        self,
        max_workers: int,
        *,
        config: InterpreterConfig | None = None,
        fallback: bool = False,
        thread_name_prefix: str = "Dask-Subinterpreter-Slot",
        shutdown_timeout: float = 30.0,
        worker: distributed.Worker | None = None,
        threads_hint: str = "dask.annotate(executor='default')",
    ) -> None:
        if not isinstance(max_workers, int) or isinstance(max_workers, bool):
            raise TypeError(f"max_workers must be an int, got {type(max_workers).__name__}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        if config is not None and not isinstance(config, InterpreterConfig):
            raise TypeError(f"config must be an InterpreterConfig, got {type(config).__name__}")
        if shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must be >= 0, got {shutdown_timeout}")
        self.max_workers = max_workers
        self.config = config if config is not None else InterpreterConfig()
        self.fallback = bool(fallback)
        self.thread_name_prefix = thread_name_prefix
        self.shutdown_timeout = shutdown_timeout
        self.worker = worker
        self.threads_hint = threads_hint
        self._queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()
        self._started = False
        self._shutdown = False
        self._main_only: set[str] = set()
        self._by_value: frozenset[str] = frozenset()
        self._task_cls = _task_class()

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else "started" if self._started else "not started"
        return f"<SubinterpreterExecutor {self.max_workers} slots, {state}>"

    @property
    def interpreter_ids(self) -> list[int]:
        """The ids of the slots' subinterpreters (those open now)."""
        return [s.interp.id for s in self._slots if s.interp is not None]

    def start(self) -> None:
        """Start the slots, each creating and warming its subinterpreter (in parallel), and
        wait for them. Raises ``RuntimeError`` if one could not start (then none runs)."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot start a SubinterpreterExecutor after shutdown")
            if self._started:
                slots = list(self._slots)
            else:
                self._started = True
                _rehearse_once()
                slots = [_Slot(self, i) for i in range(self.max_workers)]
                for slot in slots:
                    slot.thread.start()
                self._slots = slots
        for slot in slots:
            slot.ready.wait()
        failed = [s.error for s in slots if s.error is not None]
        if failed:
            self.shutdown(wait=True)
            raise RuntimeError(
                f"could not start the subinterpreters of {len(failed)} of {len(slots)} task "
                f"slots: {failed[0]!r}"
            ) from failed[0]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` in a slot (see the class); return its future."""
        if not self._started:
            self.start()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            self._queue.put(_WorkItem(future, fn, args, kwargs))
            return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the slots once the tasks submitted are done (pending ones cancelled with
        ``cancel_futures``); each closes its subinterpreter. With ``wait``, wait for them, at
        most ``shutdown_timeout`` seconds."""
        with self._lock:
            first = not self._shutdown
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item.future.cancel()
            if first:
                for _ in self._slots:
                    self._queue.put(None)
            slots = list(self._slots)
        if not wait:
            return
        deadline = time.monotonic() + self.shutdown_timeout
        for slot in slots:
            if slot.thread is threading.current_thread():
                continue
            slot.thread.join(max(0.0, deadline - time.monotonic()))
        busy = [s.thread.name for s in slots if s.thread.is_alive()]
        if busy:
            logger.warning(
                "task slots %s still run a task %.0fs after shutdown; each closes its "
                "subinterpreter when its task ends",
                ", ".join(busy),
                self.shutdown_timeout,
            )

    def _send_by_value(self, module: str) -> None:
        with self._lock:
            if module in self._by_value:
                return
            self._by_value = self._by_value | {module}
        logger.info(
            "module %s does not load in a subinterpreter: its functions are sent by value",
            module,
        )

    def _note_main_only(self, name: str, reason: str, summary: str, ran: bool) -> None:
        with self._lock:
            if name in self._main_only:
                return
            self._main_only.add(name)
        again = " (it ran there and is run again in main)" if ran else ""
        logger.warning(
            "%s cannot run in a subinterpreter: %s: %s%s; its tasks run in the main "
            "interpreter from now on",
            name,
            reason,
            summary,
            again,
        )


class _RefusingExecutor(concurrent.futures.Executor):
    """Put in place of the executor when the preload could not start it: every task sent to
    it fails with the reason, rather than running somewhere else unnoticed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(self.reason)


# -- the plugin -----------------------------------------------------------------------------

_RESERVED_EXECUTORS: Final = frozenset({"default", "offload", "actor"})


@dataclass
class _Installed:
    executor: concurrent.futures.Executor
    previous_default: concurrent.futures.Executor | None = None
    added_threads: bool = False


class SubinterpreterPlugin(WorkerPlugin):  # type: ignore[misc, unused-ignore]  # untyped in old distributed
    """A worker plugin that gives each worker a :class:`SubinterpreterExecutor` with one
    subinterpreter per task slot (``nthreads``), created and warmed when the plugin starts.

    Args:
        default: run every task in the subinterpreters (the worker's default executor); its
            thread pool stays reachable as ``dask.annotate(executor=threads)``.
        fallback: run a task that cannot run in a subinterpreter (see
            :class:`CannotRunInSubinterpreter`) in the main interpreter instead, with a
            warning in the worker's log, rather than failing it.
        executor: the name tasks choose it by: ``dask.annotate(executor="subinterp")``.
        threads: with ``default``, the name the worker's thread pool keeps.
        config: the slots' :class:`~subinterp_rs.InterpreterConfig` (isolated by default).
        shutdown_timeout: how long closing the worker waits for tasks still running.

    Raises (when the worker starts it) ``RuntimeError`` for a distributed version it does not
    support (see :func:`check_distributed`), or if the subinterpreters could not start.
    """

    def __init__(
        self,
        *,
        default: bool = False,
        fallback: bool = False,
        executor: str = "subinterp",
        threads: str = "threads",
        config: InterpreterConfig | None = None,
        shutdown_timeout: float = 30.0,
    ) -> None:
        for what, value in (("executor", executor), ("threads", threads)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{what} must be a non-empty executor name, got {value!r}")
            if value in _RESERVED_EXECUTORS:
                raise ValueError(f"{what} cannot be {value!r}: distributed uses that name")
        if executor == threads:
            raise ValueError(f"executor and threads must differ, both are {executor!r}")
        if config is not None and not isinstance(config, InterpreterConfig):
            raise TypeError(f"config must be an InterpreterConfig, got {type(config).__name__}")
        self.default = bool(default)
        self.fallback = bool(fallback)
        self.executor = executor
        self.threads = threads
        self.config = config
        self.shutdown_timeout = shutdown_timeout
        self.name = f"subinterp-rs-{executor}"
        self._installed: dict[int, _Installed] = {}

    def __repr__(self) -> str:
        return (
            f"SubinterpreterPlugin(default={self.default}, fallback={self.fallback}, "
            f"executor={self.executor!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_installed"] = {}  # what it installed stays with its worker
        return state

    def executor_for(self, worker: distributed.Worker) -> SubinterpreterExecutor | None:
        """The executor this plugin installed on ``worker`` (``None`` if none)."""
        installed = self._installed.get(id(worker))
        if installed is None or not isinstance(installed.executor, SubinterpreterExecutor):
            return None
        return installed.executor

    async def setup(self, worker: distributed.Worker) -> None:
        check_distributed()
        hint = (
            f"dask.annotate(executor={self.threads!r})"
            if self.default
            else "dask.annotate(executor='default')"
        )
        prefix = f"{worker.name}-" if worker.name is not None else ""
        executor = SubinterpreterExecutor(
            worker.state.nthreads,
            config=self.config,
            fallback=self.fallback,
            thread_name_prefix=f"{prefix}Dask-Subinterpreter-Slot",
            shutdown_timeout=self.shutdown_timeout,
            worker=worker,
            threads_hint=hint,
        )
        await asyncio.to_thread(executor.start)
        self._install(worker, executor)
        logger.info(
            "%d task slots in subinterpreters %s as executor %r%s",
            executor.max_workers,
            executor.interpreter_ids,
            self.executor,
            f" (the default; the thread pool is {self.threads!r})" if self.default else "",
        )

    def _install(self, worker: distributed.Worker, executor: concurrent.futures.Executor) -> None:
        installed = _Installed(executor)
        worker.executors[self.executor] = executor
        if self.default:
            installed.previous_default = worker.executors["default"]
            if self.threads not in worker.executors:
                worker.executors[self.threads] = installed.previous_default
                installed.added_threads = True
            worker.executors["default"] = executor
        self._installed[id(worker)] = installed

    async def teardown(self, worker: distributed.Worker) -> None:
        installed = self._installed.pop(id(worker), None)
        if installed is None:
            return
        executors = worker.executors
        executor = installed.executor
        if installed.previous_default is not None and executors.get("default") is executor:
            executors["default"] = installed.previous_default
        if installed.added_threads and executors.get(self.threads) is installed.previous_default:
            del executors[self.threads]
        if executors.get(self.executor) is executor:
            del executors[self.executor]
        if isinstance(executor, SubinterpreterExecutor):
            await asyncio.to_thread(executor.shutdown, True)


# -- the preload: dask worker --preload subinterp_rs.dask ------------------------------------


@click.command(name="subinterp_rs.dask")
@click.option(
    "--subinterp-default",
    is_flag=True,
    help="Run every task in the subinterpreters; the thread pool stays as executor 'threads'.",
)
@click.option(
    "--subinterp-fallback",
    is_flag=True,
    help="Run tasks that cannot run in a subinterpreter in the main interpreter, with a "
    "warning, instead of failing them.",
)
@click.option(
    "--subinterp-executor",
    default="subinterp",
    show_default=True,
    help="The executor name tasks choose with dask.annotate(executor=NAME).",
)
async def dask_setup(
    worker: object,
    subinterp_default: bool,
    subinterp_fallback: bool,
    subinterp_executor: str,
) -> None:
    """``dask worker --preload subinterp_rs.dask [--subinterp-default] [--subinterp-fallback]
    [--subinterp-executor NAME]``: install a :class:`SubinterpreterPlugin` on the worker.

    If it cannot start (an unsupported distributed, ...), the error is in the worker's log and
    every task sent to the executor fails with it (rather than running in threads unnoticed).
    """
    if not isinstance(worker, distributed.Worker):
        raise TypeError(
            "subinterp_rs.dask is a worker preload (dask worker --preload subinterp_rs.dask), "
            f"not for a {type(worker).__name__}"
        )
    plugin = SubinterpreterPlugin(
        default=subinterp_default, fallback=subinterp_fallback, executor=subinterp_executor
    )
    try:
        await worker.plugin_add(plugin, catch_errors=False)
    except Exception as exc:
        worker.plugins.pop(plugin.name, None)
        plugin._install(worker, _RefusingExecutor(f"subinterp_rs.dask did not start: {exc}"))
        raise


async def dask_teardown(worker: object) -> None:
    """Remove what :func:`dask_setup` installed (a worker that closes has done so already)."""
    if isinstance(worker, distributed.Worker):
        for name, plugin in list(worker.plugins.items()):
            if isinstance(plugin, SubinterpreterPlugin):
                await worker.plugin_remove(name)
