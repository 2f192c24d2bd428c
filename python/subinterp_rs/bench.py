"""Benchmarks: subinterp_rs against the stdlib, threads and processes, in one run.

Run it with::

    python -m subinterp_rs.bench [--quick] [--json out.json] [--plot out.png] [--cases ...]

Everything is measured in one process on the running Python, side by side: the contenders of a
case are set up together and their timed batches interleaved (``repeat`` rounds, each running
every contender once), so machine noise hits all of them alike; the median of the rounds is
reported. The table gives, for every measurement, how ours compares (``ours vs this``: above
1 means ours is faster, or uses less memory), then PASS/MISS for the project's targets where
they can be measured on this Python.

Contenders, where the running Python has them:

* ours: ``subinterp_rs.Subinterpreter`` (low level), ``subinterp_rs.interpreters`` (PEP 734
  facade), ``subinterp_rs.futures.InterpreterPoolExecutor``, and a plain pool of threads that
  each drive a ``Subinterpreter`` (what the low-level API gives without an executor);
* the stdlib: 3.12 ``_xxsubinterpreters`` and ``_xxinterpchannels``; 3.13 ``_interpreters`` and
  the draft ``test.support.interpreters`` (with its queues); 3.14+ ``_interpreters``,
  ``concurrent.interpreters`` and ``concurrent.futures.InterpreterPoolExecutor``;
* ``threading`` in this interpreter and ``multiprocessing`` (``forkserver``, else ``spawn``).

Cases (``--cases``; default all): ``create``, ``create_parallel``, ``roundtrip``, ``buffers``,
``queue``, ``executor_tiny``, ``executor_cpu``, ``memory``. ``--quick`` (smaller batches,
fewer rounds) finishes in well under a minute on two cores. Progress goes to stderr, the
table to stdout. The exit status is 1 if a contender failed with an error (an unavailable
one is skipped, not failed), or with ``--strict`` if a target was missed.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import dataclasses
import gc
import importlib
import json
import math
import multiprocessing
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Final

from .demo import _calibrate, count_primes

__all__ = ["CASES", "Row", "Target", "main", "run_benchmarks"]

CASES: Final = (
    "create",
    "create_parallel",
    "roundtrip",
    "buffers",
    "queue",
    "executor_tiny",
    "executor_cpu",
    "memory",
)

KIB: Final = 1024
MIB: Final = 1024 * 1024
_JOIN_TIMEOUT: Final = 300.0


# -- functions that run in other interpreters, threads and processes ------------------------
# Module level, so every kind of worker finds them by name (``subinterp_rs.bench._add``).


def _add(a: int, b: int) -> int:
    return a + b


def _noargs() -> None:
    """For the 3.13 stdlib's ``call()``, which takes no arguments and returns nothing."""


def _nbytes(buf: bytes | memoryview) -> int:
    return len(buf)


def _count_primes(limit: int) -> int:
    """CPU-bound pure Python: the primes below ``limit`` by trial division."""
    return count_primes(0, limit)


def _mp_worker(conn: Connection) -> None:
    """A process that answers calls (and byte buffers) over a pipe until it gets ``None``."""
    while True:
        msg = conn.recv()
        if msg is None:
            break
        if msg == "bytes":
            conn.send(len(conn.recv_bytes()))
        else:
            fn, args = msg
            conn.send(fn(*args))


def _mp_queue_consumer(q: Any, done: Any, n: int) -> None:
    done.put("ready")
    while True:
        count = q.get()
        if count is None:
            break
        for _ in range(count):
            q.get()
        done.put("done")


def _mp_idle(conn: Connection) -> None:
    conn.send(os.getpid())
    conn.recv()


# -- results --------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    """One measurement: ``value`` in ``unit`` (the median of ``samples``)."""

    case: str
    op: str
    impl: str
    role: str
    """``ours``, ``ours_facade``, ``ours_pool``, ``ours_raw_pool``, ``std_ll``, ``std_hl``,
    ``std_pool``, ``threads``, ``procs``, ``memcpy`` or ``serial``."""
    unit: str
    """``s`` (per operation), ``B/s``, ``items/s``, ``x`` (speedup) or ``B`` (memory)."""
    value: float | None
    samples: list[float] = dataclasses.field(default_factory=list)
    note: str = ""
    status: str = "ok"
    """``ok``, ``skipped`` (not available here) or ``error``."""

    @property
    def higher_is_better(self) -> bool:
        return self.unit not in ("s", "B")


@dataclasses.dataclass
class Target:
    """A goal stated as a ratio (ours against another, or a speedup against a core count)."""

    name: str
    goal: float
    ratio: float | None
    status: str
    """``PASS``, ``MISS`` or ``n/a``."""
    detail: str
    tolerance: float = 0.0
    """``ratio >= goal * (1 - tolerance)`` passes: "no worse than" goals allow for noise."""


@dataclasses.dataclass
class Settings:
    quick: bool
    repeats: int
    batch_seconds: float
    workers: int
    queue_items: int
    tiny_tasks: int
    cpu_seconds: float
    memory_count: int
    memory_repeats: int
    parallel_count: int

    @classmethod
    def make(cls, quick: bool, workers: int, repeats: int | None) -> Settings:
        return cls(
            quick=quick,
            repeats=repeats or (3 if quick else 7),
            batch_seconds=0.03 if quick else 0.2,
            workers=workers,
            queue_items=50_000 if quick else 200_000,
            tiny_tasks=2_000 if quick else 10_000,
            cpu_seconds=0.15 if quick else 0.6,
            memory_count=20,
            memory_repeats=1 if quick else 3,
            parallel_count=max(4, workers if quick else 2 * workers),
        )


class Progress:
    """Progress lines on stderr, with the time since the start."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.t0
            print(f"[{elapsed:6.1f}s] {msg}", file=sys.stderr, flush=True)


# -- what this Python has -------------------------------------------------------------------


def _try_import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception:
        return None


class Available:
    """The implementations this Python offers, probed once."""

    def __init__(self) -> None:
        # ours
        import subinterp_rs
        from subinterp_rs import interpreters as ours_facade

        # The callables the cases use, not the modules: stubtest would look for an attribute
        # holding a module on the class itself, and report it missing.
        self.ours_subinterpreter = subinterp_rs.Subinterpreter
        self.ours_facade_create = ours_facade.create
        self.ours_facade_create_queue = ours_facade.create_queue
        futures = _try_import("subinterp_rs.futures")
        self.ours_pool: Any = getattr(futures, "InterpreterPoolExecutor", None)
        self.ours_pool_missing = (
            "" if self.ours_pool else "subinterp_rs.futures.InterpreterPoolExecutor not found"
        )
        # stdlib, low level
        self.ll_name = ""
        self.ll: Any = None
        for name in ("_interpreters", "_xxsubinterpreters"):
            mod = _try_import(name)
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
            self.hl = _try_import(self.hl_name)
            self.hl_create_queue = getattr(self.hl, "create_queue", None)
        elif sys.version_info >= (3, 13):
            self.hl_name = "test.support.interpreters"
            self.hl = _try_import(self.hl_name)
            qmod = _try_import("test.support.interpreters.queues")
            self.hl_create_queue = getattr(qmod, "create", None)
        self.channels: Any = (
            _try_import("_xxinterpchannels") if sys.version_info < (3, 13) else None
        )
        self.std_pool: Any = getattr(cf, "InterpreterPoolExecutor", None)

    def ll_exec(self) -> Callable[..., Any]:
        """The stdlib's low-level ``exec(id, code, shared)`` (3.12: ``run_string``)."""
        if hasattr(self.ll, "exec"):
            ll_exec: Callable[..., Any] = self.ll.exec
            return ll_exec
        run_string: Callable[..., Any] = self.ll.run_string
        return run_string

    def ll_label(self) -> str:
        return f"stdlib {self.ll_name}"

    def ll_check(self, result: Any) -> None:
        """3.13+ ``exec``/``call`` return an exception summary instead of raising (3.14+
        ``call``: a ``(result, summary)`` pair); raise it. Other results pass."""
        if isinstance(result, tuple) and len(result) == 2:
            result = result[1]
        summary = getattr(result, "formatted", None) or getattr(result, "msg", None)
        if summary is not None:
            raise RuntimeError(f"stdlib interpreter raised: {summary}")


def _mp_context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


# -- timing ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Contender:
    impl: str
    role: str
    run: Callable[[int], object] | None
    """Runs ``n`` operations."""
    note: str = ""
    skip: str = ""
    """Why it is not available (then ``run`` is ``None``)."""
    fixed_n: int | None = None
    """Operations per batch when not calibrated."""
    samples: list[float] = dataclasses.field(default_factory=list)
    """Seconds per operation, one per round."""
    n: int = 1
    error: str = ""


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "..."


class Runner:
    """Runs the cases, collects rows."""

    def __init__(self, settings: Settings, avail: Available, progress: Progress) -> None:
        self.s = settings
        self.avail = avail
        self.progress = progress
        self.rows: list[Row] = []
        self.extra: dict[str, Any] = {}

    def _calibrate(self, c: Contender) -> None:
        assert c.run is not None
        if c.fixed_n is not None:
            c.n = c.fixed_n
            c.run(c.n)  # warm up
            return
        c.run(1)  # warm up (imports in the interpreter, caches)
        n = 1
        while True:
            t0 = time.perf_counter()
            c.run(n)
            took = time.perf_counter() - t0
            if took >= self.s.batch_seconds / 5 or n >= 1 << 20:
                break
            n *= 4 if took < self.s.batch_seconds / 50 else 2
        c.n = max(1, min(1 << 22, math.ceil(n * self.s.batch_seconds / max(took, 1e-9))))

    def measure(self, case: str, op: str, contenders: Sequence[Contender]) -> None:
        """Times every available contender, rounds interleaved (rows come from :meth:`add`)."""
        live = []
        for c in contenders:
            if c.run is None:
                continue
            try:
                self._calibrate(c)
            except Exception as exc:
                c.error = _short(exc)
                self.progress(f"  {case} {op}: {c.impl}: ERROR {c.error}")
                continue
            live.append(c)
        for _ in range(self.s.repeats):
            for c in live:
                if c.error:
                    continue
                assert c.run is not None
                try:
                    gc.collect()
                    t0 = time.perf_counter()
                    c.run(c.n)
                    c.samples.append((time.perf_counter() - t0) / c.n)
                except Exception as exc:
                    c.error = _short(exc)
                    self.progress(f"  {case} {op}: {c.impl}: ERROR {c.error}")

    def add(
        self,
        case: str,
        op: str,
        contenders: Sequence[Contender],
        unit: str = "s",
        per_op: float = 1.0,
    ) -> None:
        """Rows of measured contenders. ``unit`` ``s``: seconds per op; ``B/s``/``items/s``:
        ``per_op`` bytes or items per op, divided by the time."""
        for c in contenders:
            if c.error or (c.run is not None and not c.samples):
                row = Row(case, op, c.impl, c.role, unit, None, note=c.error, status="error")
            elif c.run is None:
                row = Row(case, op, c.impl, c.role, unit, None, note=c.skip, status="skipped")
            else:
                med = statistics.median(c.samples)
                if unit == "s":
                    samples, value = c.samples, med
                else:
                    samples = [per_op / t for t in c.samples]
                    value = per_op / med
                row = Row(case, op, c.impl, c.role, unit, value, samples, note=c.note)
            self.rows.append(row)
            self.progress(f"  {case} {op}: {c.impl}: {_fmt_row_value(row)}")

    def measure_and_add(
        self,
        case: str,
        op: str,
        contenders: Sequence[Contender],
        unit: str = "s",
        per_op: float = 1.0,
    ) -> None:
        self.progress(f"{case}: {op}")
        self.measure(case, op, contenders)
        self.add(case, op, contenders, unit, per_op)

    # -- helpers shared by the cases --------------------------------------------------------

    def ours_interp(self, stack: contextlib.ExitStack) -> Any:
        si = self.avail.ours_subinterpreter.create()
        stack.callback(si.close)
        return si

    def ours_facade_interp(self, stack: contextlib.ExitStack) -> Any:
        interp = self.avail.ours_facade_create()
        stack.callback(interp.close)
        return interp

    def std_ll_interp(self, stack: contextlib.ExitStack) -> Any:
        ll = self.avail.ll
        iid = ll.create()
        stack.callback(ll.destroy, iid)
        if sys.version_info >= (3, 13):
            # Crossing buffers needs the module imported inside (3.13).
            self.avail.ll_check(ll.exec(iid, "import _interpreters"))
        return iid

    def std_hl_interp(self, stack: contextlib.ExitStack) -> Any:
        interp = self.avail.hl.create()
        stack.callback(interp.close)
        return interp

    def unavailable_ll(self) -> str:
        return "" if self.avail.ll is not None else "no stdlib low-level interpreters module"

    def unavailable_hl(self) -> str:
        if self.avail.hl is not None:
            return ""
        if sys.version_info < (3, 13):
            return "no high-level stdlib module on 3.12"
        return f"{self.avail.hl_name} not importable"


def _contender(
    impl: str,
    role: str,
    make: Callable[[], Callable[[int], object]],
    skip: str = "",
    note: str = "",
    fixed_n: int | None = None,
) -> Contender:
    """A contender set up by ``make`` (unless ``skip`` says why it is unavailable); a setup
    that raises becomes the contender's error."""
    if skip:
        return Contender(impl, role, None, note=note, skip=skip)
    try:
        run = make()
    except Exception as exc:
        return Contender(impl, role, None, note=note, error=_short(exc))
    return Contender(impl, role, run, note=note, fixed_n=fixed_n)


# -- in-process and cross-process helpers -----------------------------------------------------


class _ThreadWorker:
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
        self.thread.join(_JOIN_TIMEOUT)


class _ProcessWorker:
    """A process that answers calls over a pipe (the multiprocessing baseline)."""

    def __init__(self) -> None:
        ctx = _mp_context()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_mp_worker, args=(child,), daemon=True)
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
        self.proc.join(_JOIN_TIMEOUT)
        if self.proc.is_alive():
            self.proc.kill()
        self.conn.close()


class _RawPool(cf.Executor):
    """The executor one writes over the low-level API: ``workers`` threads, each driving its
    own ``Subinterpreter`` (created and closed in that thread)."""

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
                t.join(_JOIN_TIMEOUT)


def _run_threads(*fns: Callable[[], object]) -> None:
    """Runs each function in its own thread; re-raises the first error."""
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
        t.join(_JOIN_TIMEOUT)
        if t.is_alive():
            raise TimeoutError(f"a thread did not finish within {_JOIN_TIMEOUT} s")
    if errors:
        raise errors[0]


# -- cases ----------------------------------------------------------------------------------


def case_create(r: Runner) -> None:
    """Create and close one interpreter (threads and processes: start and join one)."""
    a = r.avail
    ours = a.ours_subinterpreter

    def ours_run() -> Callable[[int], object]:
        def run(n: int) -> None:
            for _ in range(n):
                ours.create().close()

        return run

    def facade_run() -> Callable[[int], object]:
        create = a.ours_facade_create

        def run(n: int) -> None:
            for _ in range(n):
                create().close()

        return run

    def ll_run() -> Callable[[int], object]:
        create, destroy = a.ll.create, a.ll.destroy

        def run(n: int) -> None:
            for _ in range(n):
                destroy(create())

        return run

    def hl_run() -> Callable[[int], object]:
        create = a.hl.create

        def run(n: int) -> None:
            for _ in range(n):
                create().close()

        return run

    def thread_run() -> Callable[[int], object]:
        def run(n: int) -> None:
            for _ in range(n):
                t = threading.Thread(target=_noargs)
                t.start()
                t.join()

        return run

    def proc_run() -> Callable[[int], object]:
        ctx = _mp_context()

        def run(n: int) -> None:
            for _ in range(n):
                p = ctx.Process(target=_noargs)
                p.start()
                p.join(_JOIN_TIMEOUT)

        return run

    contenders = [
        _contender("ours Subinterpreter", "ours", ours_run),
        _contender("ours interpreters", "ours_facade", facade_run),
        _contender(a.ll_label(), "std_ll", ll_run, skip=r.unavailable_ll()),
        _contender(f"stdlib {a.hl_name}", "std_hl", hl_run, skip=r.unavailable_hl()),
        _contender("threading Thread", "threads", thread_run, note="start+join"),
        _contender("multiprocessing Process", "procs", proc_run, note="start+join"),
    ]
    r.measure_and_add("create", "create+close", contenders)


def case_create_parallel(r: Runner) -> None:
    """Create N interpreters in N threads at once (per interpreter: wall time / N)."""
    a = r.avail
    count = r.s.parallel_count

    def parallel(create: Callable[[], Any], close: Callable[[Any], None]) -> Callable[[], Any]:
        def make() -> Callable[[int], object]:
            def run(n: int) -> None:
                for _ in range(n):
                    made: list[Any] = []
                    start = threading.Barrier(count)

                    def one(made: list[Any] = made, start: threading.Barrier = start) -> None:
                        start.wait()
                        made.append(create())  # list.append is atomic

                    try:
                        _run_threads(*[one] * count)
                    finally:
                        for obj in made:
                            close(obj)

            return run

        return make

    ours = a.ours_subinterpreter
    ctx = _mp_context()

    def start_proc() -> Any:
        p = ctx.Process(target=_noargs)
        p.start()
        return p

    def start_thread() -> Any:
        t = threading.Thread(target=_noargs)
        t.start()
        return t

    ll_skip = r.unavailable_ll()
    if not ll_skip and sys.version_info < (3, 13):
        ll_skip = "concurrent creation crashes CPython 3.12"
    contenders = [
        _contender("ours Subinterpreter", "ours", parallel(ours.create, lambda si: si.close())),
        _contender(
            a.ll_label(),
            "std_ll",
            parallel(lambda: a.ll.create(), lambda iid: a.ll.destroy(iid)),
            skip=ll_skip,
        ),
        _contender(
            "threading Thread",
            "threads",
            parallel(start_thread, lambda t: t.join()),
            note="start",
        ),
        _contender(
            "multiprocessing Process",
            "procs",
            parallel(start_proc, lambda p: p.join(_JOIN_TIMEOUT)),
            note="start",
        ),
    ]
    op = f"create {count} in {count} threads"
    r.progress(f"create_parallel: {op}")
    for c in contenders:
        c.fixed_n = 1
    r.measure("create_parallel", op, contenders)
    for c in contenders:  # per interpreter: wall time / count
        c.samples = [t / count for t in c.samples]
    r.add("create_parallel", op, contenders)


def case_roundtrip(r: Runner) -> None:
    """A round trip into a warm interpreter: exec("pass"), and call(f, 1, 2)."""
    a = r.avail
    with contextlib.ExitStack() as stack:
        si = r.ours_interp(stack)
        interp = r.ours_facade_interp(stack)
        ll_id = r.std_ll_interp(stack) if a.ll is not None else None
        hl = r.std_hl_interp(stack) if a.hl is not None else None
        tw = _ThreadWorker()
        stack.callback(tw.close)
        pw = _ProcessWorker()
        stack.callback(pw.close)

        def loop(fn: Callable[..., Any], *args: Any) -> Callable[[], Callable[[int], object]]:
            def make() -> Callable[[int], object]:
                a.ll_check(fn(*args))  # stdlib low-level calls report errors as values

                def run(n: int) -> None:
                    for _ in range(n):
                        fn(*args)

                return run

            return make

        ll_exec = a.ll_exec() if a.ll is not None else None
        exec_contenders = [
            _contender("ours Subinterpreter", "ours", loop(si.exec, "pass")),
            _contender("ours interpreters", "ours_facade", loop(interp.exec, "pass")),
            _contender(
                a.ll_label(),
                "std_ll",
                loop(ll_exec, ll_id, "pass") if ll_exec else _none_make,
                skip=r.unavailable_ll(),
            ),
            _contender(
                f"stdlib {a.hl_name}",
                "std_hl",
                loop(hl.exec, "pass") if hl else _none_make,
                skip=r.unavailable_hl(),
            ),
        ]
        r.measure_and_add("roundtrip", "exec('pass')", exec_contenders)

        if a.ll is None:
            ll_call, ll_note, ll_skip = None, "", r.unavailable_ll()
        elif a.ll_has_call_args:
            ll_call, ll_note, ll_skip = loop(a.ll.call, ll_id, _add, (1, 2)), "", ""
        elif hasattr(a.ll, "call"):
            ll_call, ll_note, ll_skip = (
                loop(a.ll.call, ll_id, _noargs),
                "3.13: no args, no result",
                "",
            )
        else:
            ll_call, ll_note, ll_skip = (
                loop(a.ll.run_string, ll_id, "r = a + b", {"a": 1, "b": 2}),
                "3.12: run_string(shared=args), no result",
                "",
            )
        if hl is None:
            hl_call, hl_note = None, ""
        elif sys.version_info >= (3, 14):
            hl_call, hl_note = loop(hl.call, _add, 1, 2), ""
        else:
            hl_call, hl_note = loop(hl.call, _noargs), "3.13: no args, no result"
        call_contenders = [
            _contender("ours Subinterpreter", "ours", loop(si.call, _add, 1, 2)),
            _contender("ours interpreters", "ours_facade", loop(interp.call, _add, 1, 2)),
            _contender(a.ll_label(), "std_ll", ll_call or _none_make, skip=ll_skip, note=ll_note),
            _contender(
                f"stdlib {a.hl_name}",
                "std_hl",
                hl_call or _none_make,
                skip=r.unavailable_hl(),
                note=hl_note,
            ),
            _contender(
                "threading worker", "threads", loop(tw.call, _add, 1, 2), note="2 SimpleQueues"
            ),
            _contender("multiprocessing worker", "procs", loop(pw.call, _add, 1, 2), note="Pipe"),
        ]
        r.measure_and_add("roundtrip", "call(f, 1, 2)", call_contenders)


def _none_make() -> Callable[[int], object]:
    raise RuntimeError("not available")


def _size_label(size: int) -> str:
    if size >= MIB:
        return f"{size // MIB} MiB"
    return f"{size // KIB} KiB"


def case_buffers(r: Runner) -> None:
    """call(f, buf) with bytes and memoryview buffers of 1 KiB, 1 MiB and 100 MiB: GB/s."""
    a = r.avail
    with contextlib.ExitStack() as stack:
        si = r.ours_interp(stack)
        ll_id = r.std_ll_interp(stack) if a.ll is not None else None
        hl = r.std_hl_interp(stack) if (a.hl is not None and sys.version_info >= (3, 14)) else None
        pw = _ProcessWorker()
        stack.callback(pw.close)
        for size in (KIB, MIB, 100 * MIB):
            source = bytearray(size)
            for kind in ("bytes", "memoryview"):
                buf: bytes | memoryview = bytes(source) if kind == "bytes" else memoryview(source)

                def make_ours(buf: bytes | memoryview = buf) -> Callable[[int], object]:
                    call = si.call

                    def run(n: int) -> None:
                        for _ in range(n):
                            call(_nbytes, buf)

                    return run

                def make_ll(buf: bytes | memoryview = buf) -> Callable[[int], object]:
                    if a.ll_has_call_args:
                        call = a.ll.call

                        def run(n: int) -> None:
                            for _ in range(n):
                                call(ll_id, _nbytes, (buf,))

                    else:
                        ll_exec = a.ll_exec()
                        shared = {"b": buf}

                        def run(n: int) -> None:
                            for _ in range(n):
                                ll_exec(ll_id, "n = len(b)", shared)

                    if a.ll_has_call_args:
                        _, excinfo = a.ll.call(ll_id, _nbytes, (buf,))
                        a.ll_check(excinfo)
                    else:
                        a.ll_check(
                            a.ll_exec()(
                                ll_id, "assert len(b) == n_ok", {"b": buf, "n_ok": len(buf)}
                            )
                        )
                    return run

                def make_hl(buf: bytes | memoryview = buf) -> Callable[[int], object]:
                    assert hl is not None
                    call = hl.call

                    def run(n: int) -> None:
                        for _ in range(n):
                            call(_nbytes, buf)

                    return run

                def make_memcpy(source: bytearray = source) -> Callable[[int], object]:
                    def run(n: int) -> None:
                        for _ in range(n):
                            bytes(source)

                    return run

                def make_proc(buf: bytes | memoryview = buf) -> Callable[[int], object]:
                    def run(n: int) -> None:
                        for _ in range(n):
                            pw.send_bytes(buf)

                    return run

                ll_note = "" if a.ll_has_call_args else "exec('n = len(b)', shared={'b': buf})"
                hl_skip = r.unavailable_hl()
                if not hl_skip and sys.version_info < (3, 14):
                    hl_skip = "call() takes no arguments before 3.14"
                ll_skip = r.unavailable_ll()
                if not ll_skip and not a.ll.is_shareable(buf):
                    ll_skip = f"{kind} is not shareable in {a.ll_name}"
                contenders = [
                    _contender(
                        "ours Subinterpreter",
                        "ours",
                        make_ours,
                        note="zero-copy" if kind == "memoryview" else "",
                    ),
                    _contender(a.ll_label(), "std_ll", make_ll, skip=ll_skip, note=ll_note),
                    _contender(f"stdlib {a.hl_name}", "std_hl", make_hl, skip=hl_skip),
                    _contender(
                        "multiprocessing worker", "procs", make_proc, note="Pipe.send_bytes"
                    ),
                    _contender("memcpy bytes(bytearray)", "memcpy", make_memcpy, note="in-process"),
                ]
                r.measure_and_add(
                    "buffers", f"{kind} {_size_label(size)}", contenders, "B/s", float(size)
                )
                del buf, contenders


def case_queue(r: Runner) -> None:
    """Items/s through a queue: a producer interpreter and a consumer one, each in a thread."""
    a = r.avail
    items = r.s.queue_items
    produce = "for i in range(n): q.put(i)"
    consume = "for i in range(n): q.get()"

    def interp_pair(
        create: Callable[[], Any], create_queue: Callable[[], Any], prelude: str = ""
    ) -> Callable[[], Callable[[int], object]]:
        def make() -> Callable[[int], object]:
            p, c = create(), create()
            r_stack.callback(c.close)
            r_stack.callback(p.close)
            if prelude:  # 3.13: a queue crosses only into an interpreter that imported it
                p.exec(prelude)
                c.exec(prelude)
            q = create_queue()
            p.prepare_main(q=q)
            c.prepare_main(q=q)

            def run(n: int) -> None:
                p.prepare_main(n=n)
                c.prepare_main(n=n)
                _run_threads(lambda: c.exec(consume), lambda: p.exec(produce))

            return run

        return make

    def channels() -> Callable[[int], object]:
        ll, ch = a.ll, a.channels
        p, c = ll.create(), ll.create()
        r_stack.callback(ll.destroy, c)
        r_stack.callback(ll.destroy, p)
        cid = ch.create()
        r_stack.callback(ch.destroy, cid)
        prod = "import _xxinterpchannels as C\nfor i in range(n): C.send(cid, i)"
        cons = (
            "import _xxinterpchannels as C\n_s = object()\nk = 0\n"
            "while k < n:\n    if C.recv(cid, _s) is not _s: k += 1"
        )

        def run(n: int) -> None:
            shared = {"cid": cid, "n": n}
            _run_threads(
                lambda: ll.run_string(c, cons, shared), lambda: ll.run_string(p, prod, shared)
            )

        return run

    def threads() -> Callable[[int], object]:
        q: queue.Queue[int] = queue.Queue()

        def run(n: int) -> None:
            def prod() -> None:
                for i in range(n):
                    q.put(i)

            def cons() -> None:
                for _ in range(n):
                    q.get()

            _run_threads(cons, prod)

        return run

    def procs() -> Callable[[int], object]:
        ctx = _mp_context()
        q, done = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=_mp_queue_consumer, args=(q, done, 0), daemon=True)
        proc.start()

        def stop() -> None:
            q.put(None)
            proc.join(_JOIN_TIMEOUT)

        r_stack.callback(stop)
        if done.get(timeout=_JOIN_TIMEOUT) != "ready":
            raise RuntimeError("consumer process did not start")

        def run(n: int) -> None:
            q.put(n)
            for i in range(n):
                q.put(i)
            done.get(timeout=_JOIN_TIMEOUT)

        return run

    with contextlib.ExitStack() as r_stack:
        if a.channels is not None:
            std = _contender(
                "stdlib _xxinterpchannels",
                "std_queue",
                channels,
                note="send / busy-polling recv",
            )
        else:
            std_skip = "" if a.hl_create_queue is not None else "no stdlib queue on this Python"
            prelude = (
                "import test.support.interpreters.queues" if sys.version_info < (3, 14) else ""
            )
            std = _contender(
                f"stdlib {a.hl_name} queue",
                "std_queue",
                interp_pair(lambda: a.hl.create(), lambda: a.hl_create_queue(), prelude),
                skip=std_skip,
                note="get() polls every 10 ms when empty",
            )
        contenders = [
            _contender(
                "ours interpreters queue",
                "ours",
                interp_pair(a.ours_facade_create, a.ours_facade_create_queue),
            ),
            std,
            _contender("threading queue.Queue", "threads", threads),
            _contender("multiprocessing Queue", "procs", procs, note="to a process"),
        ]
        for c in contenders:
            # Fewer items for the slow cross-process queue: same per-item figure, less time.
            c.fixed_n = items // 5 if c.role == "procs" else items
        r.measure_and_add("queue", "put/get int", contenders, "items/s", 1.0)


def _executors(r: Runner, workers: int) -> list[tuple[str, str, Callable[[], cf.Executor], str]]:
    """(impl, role, factory, skip) of every executor."""
    a = r.avail
    ctx = _mp_context()
    std_skip = "" if a.std_pool else "no concurrent.futures.InterpreterPoolExecutor before 3.14"
    return [
        (
            "ours InterpreterPoolExecutor",
            "ours_pool",
            lambda: a.ours_pool(max_workers=workers),
            a.ours_pool_missing,
        ),
        ("ours threads+Subinterpreter", "ours_raw_pool", lambda: _RawPool(workers), ""),
        (
            "stdlib InterpreterPoolExecutor",
            "std_pool",
            lambda: a.std_pool(max_workers=workers),
            std_skip,
        ),
        ("ThreadPoolExecutor", "threads", lambda: cf.ThreadPoolExecutor(workers), ""),
        (
            "ProcessPoolExecutor",
            "procs",
            lambda: cf.ProcessPoolExecutor(workers, mp_context=ctx),
            "",
        ),
    ]


def _warm(ex: cf.Executor, workers: int, fn: Callable[..., Any], *args: Any) -> None:
    """Starts every worker (and imports this module there)."""
    futs = [ex.submit(fn, *args) for _ in range(workers * 4)]
    for f in futs:
        f.result(timeout=_JOIN_TIMEOUT)


def case_executor_tiny(r: Runner) -> None:
    """Tasks/s of many tiny tasks on a warm executor with one worker per core."""
    workers, tasks = r.s.workers, r.s.tiny_tasks
    with contextlib.ExitStack() as stack:
        contenders = []
        for impl, role, factory, skip in _executors(r, workers):

            def make(factory: Callable[[], cf.Executor] = factory) -> Callable[[int], object]:
                ex = factory()
                stack.callback(ex.shutdown)
                _warm(ex, workers, _add, 1, 2)

                def run(n: int) -> None:
                    futs = [ex.submit(_add, i, 1) for i in range(n)]
                    for f in futs:
                        f.result(timeout=_JOIN_TIMEOUT)

                return run

            contenders.append(_contender(impl, role, make, skip=skip, fixed_n=tasks))
        r.measure_and_add(
            "executor_tiny", f"{tasks} tiny tasks, {workers} workers", contenders, "items/s"
        )


def case_executor_cpu(r: Runner) -> None:
    """CPU-bound jobs, one per worker, for 1..cores workers: the speedup over running the
    same jobs one after the other in this thread, timed in the same rounds."""
    limit = _calibrate(r.s.cpu_seconds, start=10_000, min_took=0.05)
    r.progress(f"executor_cpu: one job = primes below {limit}")
    serial_all: list[float] = []
    for workers in range(1, r.s.workers + 1):
        with contextlib.ExitStack() as stack:
            serial = Contender(
                "serial in-process", "serial", lambda n: _count_primes(limit), fixed_n=1
            )
            contenders = [serial]
            for impl, role, factory, skip in _executors(r, workers):

                def make(
                    factory: Callable[[], cf.Executor] = factory, workers: int = workers
                ) -> Callable[[int], object]:
                    ex = factory()
                    stack.callback(ex.shutdown)
                    _warm(ex, workers, _count_primes, 100)

                    def run(n: int) -> None:
                        futs = [ex.submit(_count_primes, limit) for _ in range(workers)]
                        for f in futs:
                            f.result(timeout=_JOIN_TIMEOUT)

                    return run

                contenders.append(_contender(impl, role, make, skip=skip, fixed_n=1))
            op = f"{workers} workers"
            r.progress(f"executor_cpu: {op}")
            r.measure("executor_cpu", op, contenders)
            # Speedup per round: `workers` jobs one after the other (the serial time of the
            # same round, times `workers`) over the executor's wall time.
            serial_all += serial.samples
            for c in contenders[1:]:
                c.samples = [
                    t / (workers * s) for t, s in zip(c.samples, serial.samples, strict=False)
                ]
            r.add("executor_cpu", op, contenders[1:], "x", 1.0)
    if serial_all:
        t_serial = statistics.median(serial_all)
        r.extra["cpu_job"] = {"limit": limit, "serial_seconds": t_serial}
        r.rows.append(
            Row("executor_cpu", "1 job in-process", "serial", "serial", "s", t_serial, serial_all)
        )


# -- memory (each contender in a fresh process) ----------------------------------------------


def _rss() -> int:
    """This process's resident set size in bytes."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        rss: int = importlib.import_module("psutil").Process().memory_info().rss
        return rss


def _pss(pid: int) -> tuple[int, str]:
    """A process's proportional set size (shared pages split between sharers), else RSS."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024, "PSS"
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024, "RSS"
    except OSError:
        pass
    rss: int = importlib.import_module("psutil").Process(pid).memory_info().rss
    return rss, "RSS"


def _rss_delta_per(create: Callable[[], Any], close: Callable[[Any], None], count: int) -> float:
    """RSS growth per object over ``count`` objects made by ``create`` (then ``close``d)."""
    close(create())  # first-use costs out of the way
    gc.collect()
    before = _rss()
    made = [create() for _ in range(count)]
    after = _rss()
    for obj in made:
        close(obj)
    return (after - before) / count


def _memory_child(impl: str, count: int) -> dict[str, Any]:
    """Memory per idle worker of kind ``impl``, measured in this (fresh) process."""
    gc.collect()
    if impl == "ours":
        from subinterp_rs import Subinterpreter

        per = _rss_delta_per(Subinterpreter.create, Subinterpreter.close, count)
        return {"per": per, "how": "RSS delta"}
    if impl == "ours_facade":
        from subinterp_rs import interpreters

        per = _rss_delta_per(interpreters.create, interpreters.Interpreter.close, count)
        return {"per": per, "how": "RSS delta"}
    if impl == "std_ll":
        ll = _try_import("_interpreters") or importlib.import_module("_xxsubinterpreters")
        return {"per": _rss_delta_per(ll.create, ll.destroy, count), "how": "RSS delta"}
    if impl == "threads":
        stop = threading.Event()
        gc.collect()
        before = _rss()
        ts = [threading.Thread(target=stop.wait) for _ in range(count)]
        for t in ts:
            t.start()
        after = _rss()
        stop.set()
        for t in ts:
            t.join()
        return {"per": (after - before) / count, "how": "RSS delta"}
    if impl == "procs":
        ctx = _mp_context()
        procs, conns, sizes, how = [], [], [], "PSS"
        try:
            for _ in range(count):
                mine, theirs = ctx.Pipe()
                p = ctx.Process(target=_mp_idle, args=(theirs,), daemon=True)
                p.start()
                procs.append(p)
                conns.append(mine)
            for conn in conns:
                pid = conn.recv()
                size, how = _pss(pid)
                sizes.append(size)
        finally:
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.send(None)
            for p in procs:
                p.join(_JOIN_TIMEOUT)
        return {"per": statistics.mean(sizes), "how": f"{how} of each child"}
    raise ValueError(f"unknown memory contender {impl!r}")


def _memory_child_main(argv: Sequence[str]) -> None:
    impl, count = argv[0], int(argv[1])
    print(json.dumps(_memory_child(impl, count)), flush=True)


def case_memory(r: Runner) -> None:
    """Idle memory per interpreter (thread, process): RSS growth over ``count`` of them."""
    a = r.avail
    count = r.s.memory_count
    op = f"idle, {count} of them"
    r.progress(f"memory: {op} (each contender in a fresh process)")
    specs = [
        ("ours Subinterpreter", "ours", "ours", ""),
        ("ours interpreters", "ours_facade", "ours_facade", ""),
        (a.ll_label(), "std_ll", "std_ll", r.unavailable_ll()),
        ("threading Thread", "threads", "threads", ""),
        ("multiprocessing Process", "procs", "procs", ""),
    ]
    results: dict[str, list[float]] = {role: [] for _, role, _, _ in specs}
    notes: dict[str, str] = {}
    errors: dict[str, str] = {}
    code = (
        "import sys; from subinterp_rs.bench import _memory_child_main; "
        "_memory_child_main(sys.argv[1:])"
    )
    for _ in range(r.s.memory_repeats):
        for _impl, role, arg, skip in specs:
            if skip or role in errors:
                continue
            try:
                proc = subprocess.run(
                    [sys.executable, "-c", code, arg, str(count)],
                    capture_output=True,
                    text=True,
                    timeout=_JOIN_TIMEOUT,
                    check=False,
                )
                if proc.returncode != 0:
                    tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                    raise RuntimeError(f"exit status {proc.returncode}: {tail}")
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                results[role].append(float(out["per"]))
                notes[role] = str(out["how"])
            except Exception as exc:
                errors[role] = _short(exc)
    for impl, role, _, skip in specs:
        if skip:
            row = Row("memory", op, impl, role, "B", None, note=skip, status="skipped")
        elif role in errors:
            row = Row("memory", op, impl, role, "B", None, note=errors[role], status="error")
        else:
            samples = results[role]
            row = Row(
                "memory", op, impl, role, "B", statistics.median(samples), samples, notes[role]
            )
        r.rows.append(row)
        r.progress(f"  memory: {impl}: {_fmt_row_value(row)}")


CASE_FUNCS: Final[dict[str, Callable[[Runner], None]]] = {
    "create": case_create,
    "create_parallel": case_create_parallel,
    "roundtrip": case_roundtrip,
    "buffers": case_buffers,
    "queue": case_queue,
    "executor_tiny": case_executor_tiny,
    "executor_cpu": case_executor_cpu,
    "memory": case_memory,
}


# -- targets --------------------------------------------------------------------------------


def _find(rows: Sequence[Row], case: str, op_prefix: str, role: str) -> Row | None:
    for row in rows:
        if row.case == case and row.op.startswith(op_prefix) and row.role == role:
            return row
    return None


def _ratio(ours: Row | None, theirs: Row | None) -> float | None:
    """How many times better ours is (faster, higher throughput, less memory)."""
    if ours is None or theirs is None or not ours.value or not theirs.value:
        return None
    if ours.higher_is_better:
        return ours.value / theirs.value
    return theirs.value / ours.value


def _target(
    name: str,
    goal: float,
    ratio: float | None,
    why_na: str,
    detail: str,
    tolerance: float = 0.0,
) -> Target:
    if ratio is None:
        return Target(name, goal, None, "n/a", why_na, tolerance)
    status = "PASS" if ratio >= goal * (1 - tolerance) else "MISS"
    return Target(name, goal, ratio, status, detail, tolerance)


_NOISE: Final = 0.05
"""How much worse "no worse than" targets may measure and still pass (timer and page noise)."""


def evaluate_targets(rows: Sequence[Row], workers: int) -> list[Target]:
    """The project's targets, judged on this run's rows."""
    v = sys.version_info
    out: list[Target] = []
    is314 = v >= (3, 14)
    for op, label in (("exec", "exec"), ("call", "call")):
        ours = _find(rows, "roundtrip", op, "ours_facade")
        std = _find(rows, "roundtrip", op, "std_hl")
        out.append(
            _target(
                f"{label} round trip >= 8x the 3.14+ stdlib",
                8.0,
                _ratio(ours, std) if is314 else None,
                "needs Python 3.14+" if not is314 else "not measured",
                "ours interpreters vs concurrent.interpreters",
            )
        )
    ll_exec = _find(rows, "roundtrip", "exec", "std_ll")
    ll_name = "_interpreters.exec" if v >= (3, 13) else "_xxsubinterpreters.run_string"
    for op, label in (("exec", "exec"), ("call", "call")):
        ours = _find(rows, "roundtrip", op, "ours")
        out.append(
            _target(
                f"{label} round trip >= 2.5x stdlib low-level exec",
                2.5,
                _ratio(ours, ll_exec),
                "not measured",
                f"ours Subinterpreter.{label} vs {ll_name}('pass')",
            )
        )
    ours_q = _find(rows, "queue", "", "ours")
    std_q = _find(rows, "queue", "", "std_queue")
    out.append(
        _target(
            "queue throughput >= 1.5x stdlib",
            1.5,
            _ratio(ours_q, std_q),
            "no stdlib queue measured",
            f"ours vs {std_q.impl if std_q else 'stdlib'}",
        )
    )
    ours_pool = _find(rows, "executor_tiny", "", "ours_pool")
    std_pool = _find(rows, "executor_tiny", "", "std_pool")
    why = (
        "needs Python 3.14+ (stdlib executor)"
        if not is314
        else (
            "ours InterpreterPoolExecutor not available"
            if ours_pool is None or ours_pool.value is None
            else "not measured"
        )
    )
    out.append(
        _target(
            "executor tiny-task throughput >= 3x stdlib executor",
            3.0,
            _ratio(ours_pool, std_pool),
            why,
            "ours vs stdlib InterpreterPoolExecutor",
        )
    )
    op = f"{workers} workers"
    pool = _find(rows, "executor_cpu", op, "ours_pool")
    which = "ours InterpreterPoolExecutor"
    if pool is None or pool.value is None:
        pool = _find(rows, "executor_cpu", op, "ours_raw_pool")
        which = "ours threads+Subinterpreter (no executor)"
    speedup = pool.value if pool is not None else None
    procs = _find(rows, "executor_cpu", op, "procs")
    # What this machine allowed in the same rounds (other load lowers every speedup alike).
    ref = f"; ProcessPoolExecutor {procs.value:.2f}x" if procs and procs.value else ""
    out.append(
        _target(
            f"CPU-bound speedup >= 0.95 x {workers} cores",
            0.95,
            speedup / workers if speedup else None,
            "executor_cpu not measured",
            f"{which}: {speedup:.2f}x on {workers} workers{ref}" if speedup else "",
        )
    )
    # The same, against what processes reached in the same rounds: on a shared machine the
    # cores are not all ours, and this ratio still shows whether interpreters scale as well.
    out.append(
        _target(
            "CPU-bound speedup >= 0.95 x ProcessPoolExecutor's",
            0.95,
            _ratio(pool, procs),
            "executor_cpu not measured",
            f"{which} vs ProcessPoolExecutor, {workers} workers, same rounds",
        )
    )
    out.append(
        _target(
            "create+close no slower than stdlib",
            1.0,
            _ratio(_find(rows, "create", "", "ours"), _find(rows, "create", "", "std_ll")),
            "not measured",
            "ours Subinterpreter vs stdlib low-level create+destroy",
            tolerance=_NOISE,
        )
    )
    out.append(
        _target(
            "idle memory per interpreter no more than stdlib",
            1.0,
            _ratio(_find(rows, "memory", "", "ours"), _find(rows, "memory", "", "std_ll")),
            "not measured",
            "RSS per interpreter, ours vs stdlib low-level",
            tolerance=_NOISE,
        )
    )
    return out


# -- output ---------------------------------------------------------------------------------


def _fmt_time(t: float) -> str:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t / 1e-9:.3g} ns"


def _fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return _fmt_time(value)
    if unit == "B/s":
        gbs = value / 1e9
        return f"{gbs:,.0f} GB/s" if gbs >= 1000 else f"{gbs:.3g} GB/s"
    if unit == "items/s":
        if value >= 1e6:
            return f"{value / 1e6:.3g} M/s"
        if value >= 1e3:
            return f"{value / 1e3:.3g} k/s"
        return f"{value:.3g} /s"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "B":
        return f"{value / MIB:.3g} MiB"
    return f"{value:.3g} {unit}"


def _fmt_row_value(row: Row) -> str:
    if row.status != "ok":
        return f"{row.status}: {row.note}"
    return _fmt_value(row.value, row.unit)


def _spread(row: Row) -> str:
    if not row.samples or not row.value or len(row.samples) < 2:
        return ""
    return f"±{(max(row.samples) - min(row.samples)) / 2 / row.value * 100:.0f}%"


def format_table(rows: Sequence[Row]) -> str:
    """The results as a text table; ``ours vs this`` compares with the group's ``ours`` row."""
    head = ("case", "operation", "implementation", "median", "spread", "ours vs this", "note")
    lines: list[tuple[str, ...]] = [head]
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.case, row.op), []).append(row)
    for (case, op), group in groups.items():
        ref = next((x for x in group if x.role == "ours" and x.value), None)
        if ref is None:
            ref = next((x for x in group if x.role.startswith("ours") and x.value), None)
        first = True
        for row in group:
            ratio = _ratio(ref, row) if row.value and row is not ref else None
            rel = "ref" if row is ref else (f"{ratio:.2f}x" if ratio else "")
            note = row.note if row.status == "ok" else f"{row.status}: {row.note}"
            lines.append(
                (
                    case if first else "",
                    op if first else "",
                    row.impl,
                    _fmt_value(row.value, row.unit),
                    _spread(row),
                    rel,
                    note,
                )
            )
            first = False
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    out = []
    for i, line in enumerate(lines):
        cells = [cell.ljust(w) for cell, w in zip(line, widths, strict=False)]
        out.append("  ".join([*cells, line[-1]]).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(out)


def format_targets(targets: Sequence[Target]) -> str:
    lines = []
    for t in targets:
        ratio = f"{t.ratio:.2f}" if t.ratio is not None else "-"
        goal = f"goal >= {t.goal:g}" + (f", {t.tolerance:.0%} noise allowed" if t.tolerance else "")
        lines.append(f"{t.status:<4}  {t.name:<52} ratio {ratio:>6} ({goal})  {t.detail}")
    return "\n".join(lines)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(workers: int) -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from subinterp_rs import _native

    native = getattr(_native, "__file__", None) or "?"
    try:
        native_size = os.path.getsize(native)
    except OSError:
        native_size = 0
    return {
        "native_module": native,
        "native_size": native_size,
        "loadavg": _loadavg(),
        "python": sys.version.split()[0],
        "python_full": sys.version,
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "workers": workers,
        "start_method": _mp_context().get_start_method(),
    }


def plot(path: str, rows: Sequence[Row], info: dict[str, Any]) -> str | None:
    """Draws the results into ``path``; returns why not if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed"
    colors = {
        "ours": "tab:red",
        "ours_facade": "tab:orange",
        "ours_pool": "tab:red",
        "ours_raw_pool": "tab:orange",
        "std_ll": "tab:blue",
        "std_hl": "tab:cyan",
        "std_pool": "tab:blue",
        "std_queue": "tab:blue",
        "threads": "tab:green",
        "procs": "tab:purple",
        "memcpy": "tab:gray",
        "serial": "tab:gray",
    }
    fig, axes = plt.subplots(2, 3, figsize=(18, 10))
    fig.suptitle(
        f"subinterp_rs bench: Python {info['python']}, {info['cores']} cores ({info['cpu']})"
    )

    def bars(
        ax: Any,
        case_ops: Sequence[tuple[str, str]],
        title: str,
        xlabel: str,
        scale: float,
        log: bool,
    ) -> None:
        labels, values, cols = [], [], []
        for case, prefix in case_ops:
            for row in rows:
                if row.case == case and row.op.startswith(prefix) and row.value:
                    labels.append(f"{row.op}: {row.impl}")
                    values.append(row.value / scale)
                    cols.append(colors.get(row.role, "black"))
        if not values:
            ax.set_visible(False)
            return
        ypos = list(range(len(values)))
        ax.barh(ypos, values, color=cols)
        ax.set_yticks(ypos, labels, fontsize=7)
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel(xlabel)

    bars(
        axes[0][0],
        [("create", ""), ("create_parallel", "")],
        "create (per interpreter)",
        "ms (lower is better)",
        1e-3,
        True,
    )
    bars(axes[0][1], [("roundtrip", "")], "round trip", "us (lower is better)", 1e-6, True)
    # buffers: GB/s by size, one line per implementation and kind
    ax = axes[0][2]
    series: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for row in rows:
        if row.case == "buffers" and row.value:
            kind, size_txt = row.op.split(" ", 1)
            num, unit = size_txt.split()
            size = int(num) * (MIB if unit == "MiB" else KIB)
            series.setdefault((row.impl, row.role, kind), []).append((size, row.value / 1e9))
    for (impl, role, kind), points in series.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(
            xs,
            ys,
            marker="o",
            label=f"{impl} ({kind})",
            color=colors.get(role, "black"),
            linestyle="--" if kind == "memoryview" else "-",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title("call(f, buffer) throughput")
    ax.set_xlabel("buffer size (bytes)")
    ax.set_ylabel("GB/s")
    ax.legend(fontsize=6)
    bars(
        axes[1][0],
        [("queue", ""), ("executor_tiny", "")],
        "queue items/s, tiny tasks/s",
        "k/s (higher is better)",
        1e3,
        True,
    )
    ax = axes[1][1]
    lines: dict[str, list[tuple[int, float]]] = {}
    role_of: dict[str, str] = {}
    for row in rows:
        if row.case == "executor_cpu" and row.unit == "x" and row.value:
            lines.setdefault(row.impl, []).append((int(row.op.split()[0]), row.value))
            role_of[row.impl] = row.role
    for impl, points in lines.items():
        xs2, ys2 = zip(*sorted(points), strict=True)
        ax.plot(
            xs2,
            ys2,
            marker="o",
            label=impl,
            color=colors.get(role_of[impl], "black"),
            linestyle="-" if role_of[impl] != "ours_raw_pool" else "--",
        )
    if lines:
        n = max(x for pts in lines.values() for x, _ in pts)
        ax.plot([1, n], [1, n], color="black", linestyle=":", label="ideal")
    ax.set_title("CPU-bound jobs: speedup vs workers")
    ax.set_xlabel("workers (= jobs)")
    ax.set_ylabel("speedup over 1 job in-process")
    ax.legend(fontsize=7)
    bars(
        axes[1][2], [("memory", "")], "idle memory per worker", "MiB (lower is better)", MIB, False
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# -- driver ---------------------------------------------------------------------------------


def run_benchmarks(
    cases: Sequence[str],
    quick: bool = False,
    workers: int | None = None,
    repeats: int | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Runs ``cases`` and returns the report (what ``--json`` writes)."""
    workers = workers or os.cpu_count() or 1
    settings = Settings.make(quick, workers, repeats)
    progress = Progress(quiet)
    info = machine_info(workers)
    progress(
        f"Python {info['python']} on {info['cores']} cores ({info['cpu']}); "
        f"{'quick' if quick else 'full'} run, {settings.repeats} rounds per measurement"
    )
    runner = Runner(settings, Available(), progress)
    failed_cases: dict[str, str] = {}
    for i, name in enumerate(cases, 1):
        progress(f"== case {i}/{len(cases)}: {name}")
        try:
            CASE_FUNCS[name](runner)
        except Exception as exc:
            failed_cases[name] = _short(exc)
            progress(f"case {name} failed: {failed_cases[name]}")
    targets = evaluate_targets(runner.rows, workers)
    info["loadavg_end"] = _loadavg()
    progress(f"done in {time.perf_counter() - progress.t0:.1f} s")
    return {
        "machine": info,
        "settings": dataclasses.asdict(settings),
        "cases": list(cases),
        "rows": [dataclasses.asdict(row) for row in runner.rows],
        "targets": [dataclasses.asdict(t) for t in targets],
        "failed_cases": failed_cases,
        "extra": runner.extra,
        "seconds": time.perf_counter() - progress.t0,
    }


def _parse_cases(values: Sequence[str] | None) -> list[str]:
    if not values:
        return list(CASES)
    out: list[str] = []
    for value in values:
        for name in value.replace(",", " ").split():
            if name not in CASES:
                raise SystemExit(f"unknown case {name!r}; choose from {', '.join(CASES)}")
            if name not in out:
                out.append(name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m subinterp_rs.bench",
        description="Benchmark subinterp_rs against the stdlib, threads and processes.",
    )
    parser.add_argument("--quick", action="store_true", help="small batches (under a minute)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="draw the results (PNG; matplotlib)")
    parser.add_argument(
        "--cases", nargs="+", metavar="CASE", help=f"cases to run (default all): {' '.join(CASES)}"
    )
    parser.add_argument("--workers", type=int, help="workers for executors (default: cores)")
    parser.add_argument("--repeats", type=int, help="rounds per measurement (median taken)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    cases = _parse_cases(args.cases)
    report = run_benchmarks(cases, args.quick, args.workers, args.repeats, args.quiet)
    rows = [Row(**row) for row in report["rows"]]
    targets = [Target(**t) for t in report["targets"]]
    m = report["machine"]
    print(
        f"subinterp_rs bench: Python {m['python']} ({m['implementation']}), {m['cores']} cores "
        f"({m['cpu']}), {'quick' if args.quick else 'full'} run, "
        f"{report['settings']['repeats']} rounds, median shown"
    )
    print(f"native module: {m['native_module']} ({m['native_size'] / MIB:.1f} MiB)")
    cores = m["cores"] or 1
    for key in ("loadavg", "loadavg_end"):
        load = m.get(key)
        if load and load[0] > 0.75 * cores:
            print(
                f"warning: load average {load[0]} on {cores} cores "
                f"({'start' if key == 'loadavg' else 'end'}): other processes compete; "
                "ratios (measured side by side) hold up better than absolute numbers"
            )
    print("'ours vs this' > 1: ours is faster / higher throughput / smaller than this row")
    print()
    print(format_table(rows))
    print()
    print("targets:")
    print(format_targets(targets))
    for name, why in report["failed_cases"].items():
        print(f"case {name} FAILED: {why}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"\nwrote {args.json}")
    if args.plot:
        why_not = plot(args.plot, rows, m)
        print(f"\nplot skipped: {why_not}" if why_not else f"\nwrote {args.plot}")
    errors = [r for r in rows if r.status == "error"] or report["failed_cases"]
    missed = [t for t in targets if t.status == "MISS"]
    return 1 if errors or (args.strict and missed) else 0


if __name__ == "__main__":
    # Run the copy imported as subinterp_rs.bench, so that the functions other interpreters
    # and processes find by name are the ones in use (not this __main__'s).
    from subinterp_rs.bench import main as _main

    sys.exit(_main())
