"""The contenders the cases measure, and what they need: which stdlib modules this Python has,
a thread worker, a process worker, the executor one writes over the low-level API, and every
executor of a case, each by its role.

Roles (the ``role`` of a result row): ``ours`` (``subinterp_rs.Subinterpreter``, or our queue),
``ours_facade`` (``subinterp_rs.interpreters``), ``ours_pool`` (our ``InterpreterPoolExecutor``),
``ours_raw_pool`` (threads each driving a ``Subinterpreter``), ``std_ll`` (the stdlib's
low-level module), ``std_hl`` (its PEP 734 module, or 3.13's draft), ``std_pool`` (3.14's
``InterpreterPoolExecutor``), ``std_queue`` (the stdlib's queue or 3.12's channels),
``threads``, ``procs``, ``memcpy`` and ``serial`` (in-process references).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib
import multiprocessing
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from bench import workloads

KIB: Final = 1024
MIB: Final = 1024 * 1024
JOIN_TIMEOUT: Final = 300.0
"""Seconds any join or wait of the benchmarks may take before it counts as a hang."""


def try_import(name: str) -> Any:
    """The module, or ``None`` if this Python cannot import it."""
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def short(exc: BaseException) -> str:
    """An exception on one line, at most 160 characters."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "..."


def mp_context() -> Any:
    """The ``multiprocessing`` context of the process baselines: ``forkserver`` where it
    exists (``fork`` is refused while subinterpreters live), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class Available:
    """The implementations this Python offers, probed once."""

    def __init__(self) -> None:
        import subinterp_rs
        from subinterp_rs import interpreters as ours_facade

        self.ours_subinterpreter = subinterp_rs.Subinterpreter
        self.ours_facade_create = ours_facade.create
        self.ours_facade_create_queue = ours_facade.create_queue
        futures = try_import("subinterp_rs.futures")
        self.ours_pool: Any = getattr(futures, "InterpreterPoolExecutor", None)
        self.ours_pool_missing = (
            "" if self.ours_pool else "subinterp_rs.futures.InterpreterPoolExecutor not found"
        )
        # stdlib, low level
        self.ll_name = ""
        self.ll: Any = None
        for name in ("_interpreters", "_xxsubinterpreters"):
            mod = try_import(name)
            if mod is not None:
                self.ll_name, self.ll = name, mod
                break
        self.ll_has_call_args = sys.version_info >= (3, 14)
        # stdlib, high level (PEP 734 or its 3.13 draft)
        self.hl_name = "(high level)"
        self.hl: Any = None
        self.hl_create_queue: Any = None
        if sys.version_info >= (3, 14):
            self.hl_name = "concurrent.interpreters"
            self.hl = try_import(self.hl_name)
            self.hl_create_queue = getattr(self.hl, "create_queue", None)
        elif sys.version_info >= (3, 13):
            self.hl_name = "test.support.interpreters"
            self.hl = try_import(self.hl_name)
            qmod = try_import("test.support.interpreters.queues")
            self.hl_create_queue = getattr(qmod, "create", None)
        self.channels: Any = try_import("_xxinterpchannels") if sys.version_info < (3, 13) else None
        self.std_pool: Any = getattr(cf, "InterpreterPoolExecutor", None)

    @property
    def ll_label(self) -> str:
        return f"stdlib {self.ll_name}"

    @property
    def hl_label(self) -> str:
        return f"stdlib {self.hl_name}"

    def ll_create(self) -> Any:
        """A new interpreter of the stdlib's low-level module: its id."""
        return self.ll.create()

    def ll_destroy(self, iid: Any) -> None:
        self.ll.destroy(iid)

    def ll_exec(self) -> Callable[..., Any]:
        """The stdlib's low-level ``exec(id, code, shared)`` (3.12: ``run_string``)."""
        fn: Callable[..., Any] = getattr(self.ll, "exec", None) or self.ll.run_string
        return fn

    def ll_check(self, result: Any) -> None:
        """3.13+ ``exec``/``call`` return an exception summary instead of raising (3.14+
        ``call``: a ``(result, summary)`` pair); raise it. Other results pass."""
        if isinstance(result, tuple) and len(result) == 2:
            result = result[1]
        summary = getattr(result, "formatted", None) or getattr(result, "msg", None)
        if summary is not None:
            raise RuntimeError(f"stdlib interpreter raised: {summary}")

    def unavailable_ll(self) -> str:
        """Why the stdlib low-level module is missing, or ``""``."""
        return "" if self.ll is not None else "no stdlib low-level interpreters module"

    def unavailable_hl(self) -> str:
        """Why the stdlib high-level module is missing, or ``""``."""
        if self.hl is not None:
            return ""
        if sys.version_info < (3, 13):
            return "no high-level stdlib module on 3.12"
        return f"{self.hl_name} not importable"

    # Interpreters closed by `stack`, for the cases that keep one warm.

    def ours_interp(self, stack: contextlib.ExitStack) -> Any:
        si = self.ours_subinterpreter.create()
        stack.callback(si.close)
        return si

    def ours_facade_interp(self, stack: contextlib.ExitStack) -> Any:
        interp = self.ours_facade_create()
        stack.callback(interp.close)
        return interp

    def std_ll_interp(self, stack: contextlib.ExitStack) -> Any:
        ll = self.ll
        iid = ll.create()
        stack.callback(ll.destroy, iid)
        if sys.version_info >= (3, 13):
            # Crossing buffers needs the module imported inside (3.13).
            self.ll_check(ll.exec(iid, "import _interpreters"))
        return iid

    def std_hl_interp(self, stack: contextlib.ExitStack) -> Any:
        interp = self.hl.create()
        stack.callback(interp.close)
        return interp


class ThreadWorker:
    """A thread in this interpreter that runs calls handed to it (the threading baseline)."""

    def __init__(self) -> None:
        self.inq: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self.outq: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (item := self.inq.get()) is not None:
            fn, args = item
            self.outq.put(fn(*args))

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.inq.put((fn, args))
        return self.outq.get()

    def close(self) -> None:
        self.inq.put(None)
        self.thread.join(JOIN_TIMEOUT)


class ProcessWorker:
    """A process that answers calls over a pipe (the multiprocessing baseline)."""

    def __init__(self) -> None:
        ctx = mp_context()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=workloads.mp_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.conn.send((fn, args))
        return self.conn.recv()

    def send_bytes(self, buf: bytes | memoryview) -> int:
        self.conn.send("bytes")
        self.conn.send_bytes(buf)
        n: int = self.conn.recv()
        return n

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(JOIN_TIMEOUT)
        if self.proc.is_alive():
            self.proc.kill()
        self.conn.close()


class RawPool(cf.Executor):
    """The executor one writes over the low-level API: ``max_workers`` threads, each driving
    its own ``Subinterpreter`` (created and closed in that thread)."""

    def __init__(self, max_workers: int) -> None:
        from subinterp_rs import Subinterpreter

        self._tasks: queue.SimpleQueue[
            tuple[cf.Future[Any], Callable[..., Any], tuple[Any, ...]] | None
        ] = queue.SimpleQueue()
        self._ready = threading.Barrier(max_workers + 1)
        self._errors: list[BaseException] = []

        def worker() -> None:
            try:
                si = Subinterpreter.create()
            except BaseException as exc:
                self._errors.append(exc)
                self._ready.wait()
                return
            try:
                self._ready.wait()
                while (item := self._tasks.get()) is not None:
                    fut, fn, args = item
                    if not fut.set_running_or_notify_cancel():
                        continue
                    try:
                        fut.set_result(si.call(fn, *args))
                    except BaseException as exc:
                        fut.set_exception(exc)
            finally:
                si.close()

        self._threads = [threading.Thread(target=worker) for _ in range(max_workers)]
        for t in self._threads:
            t.start()
        self._ready.wait()
        if self._errors:
            self.shutdown()
            raise self._errors[0]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        self._tasks.put((fut, fn, args))
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            for t in self._threads:
                t.join(JOIN_TIMEOUT)


def run_threads(*fns: Callable[[], object]) -> None:
    """Runs each function in its own thread and waits for all; re-raises the first error."""
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
        if t.is_alive():
            raise TimeoutError(f"a thread did not finish within {JOIN_TIMEOUT} s")
    if errors:
        raise errors[0]


class ExecutorKind(NamedTuple):
    """One executor contender: ``make()`` starts it; ``skip`` says why it is not available."""

    impl: str
    role: str
    make: Callable[[], cf.Executor]
    skip: str


def executors(avail: Available, workers: int) -> list[ExecutorKind]:
    """Every executor of the executor cases, with ``workers`` workers each."""
    ctx = mp_context()
    std_skip = "" if avail.std_pool else "no concurrent.futures.InterpreterPoolExecutor before 3.14"
    return [
        ExecutorKind(
            "ours InterpreterPoolExecutor",
            "ours_pool",
            lambda: avail.ours_pool(max_workers=workers),
            avail.ours_pool_missing,
        ),
        ExecutorKind("ours threads+Subinterpreter", "ours_raw_pool", lambda: RawPool(workers), ""),
        ExecutorKind(
            "stdlib InterpreterPoolExecutor",
            "std_pool",
            lambda: avail.std_pool(max_workers=workers),
            std_skip,
        ),
        ExecutorKind("ThreadPoolExecutor", "threads", lambda: cf.ThreadPoolExecutor(workers), ""),
        ExecutorKind(
            "ProcessPoolExecutor",
            "procs",
            lambda: cf.ProcessPoolExecutor(workers, mp_context=ctx),
            "",
        ),
    ]


def warm(ex: cf.Executor, workers: int, fn: Callable[..., Any], *args: Any) -> None:
    """Starts every worker of ``ex`` (and imports the workloads there)."""
    futs = [ex.submit(fn, *args) for _ in range(workers * 4)]
    for f in futs:
        f.result(timeout=JOIN_TIMEOUT)
