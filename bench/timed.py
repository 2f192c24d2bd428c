"""The timed cases, as a pyperf script: ``python -m bench.timed [pyperf options] [--cases ...]``.

Every contender of every case is one pyperf benchmark, named ``case: operation: contender``:
pyperf calibrates its loops, runs it in fresh worker processes (warm-ups first) and writes
all of them into one JSON file (``-o``), so that a run holds ours, the stdlib's, threads' and
processes' figures side by side (``bench.report`` turns them into ratios) and two runs compare
with ``python -m pyperf compare_to old.json new.json``. ``python -m bench`` runs this script,
then the cases pyperf cannot express (``bench.harness``), then the report.

A contender is set up lazily, in the worker process that times it, at its first call (not
timed); one that this Python does not have is skipped, and one whose worker fails is recorded
as an error without stopping the others (``--status`` writes both to a JSON file).

Run it from the repository root (the workers and every subinterpreter import ``bench.*``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import dataclasses
import functools
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import pyperf

from bench import workloads
from bench.contenders import (
    JOIN_TIMEOUT,
    KIB,
    MIB,
    Available,
    ProcessWorker,
    ThreadWorker,
    executors,
    mp_context,
    run_threads,
    short,
    warm,
)

__all__ = ["CASES", "Settings", "Timed", "main", "plan"]

CASES: Final = (
    "create",
    "create_parallel",
    "roundtrip",
    "crossing",
    "buffers",
    "queue",
    "executor_tiny",
    "executor_map",
    "executor_start",
)

Run = Callable[[int], object]
"""A contender set up: ``run(loops)`` does the timed operation ``loops`` times."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of the batches one loop runs (smaller in ``--quick`` runs)."""

    quick: bool
    workers: int
    queue_items: int
    tiny_tasks: int
    map_items: int
    parallel_count: int

    @classmethod
    def make(
        cls, quick: bool, workers: int, tiny_tasks: int | None = None, map_items: int | None = None
    ) -> Settings:
        tiny = tiny_tasks or (1_000 if quick else 5_000)
        return cls(
            quick=quick,
            workers=workers,
            queue_items=20_000 if quick else 100_000,
            tiny_tasks=tiny,
            map_items=map_items or tiny,
            parallel_count=max(4, workers if quick else 2 * workers),
        )


@dataclasses.dataclass
class Timed:
    """One contender of one case: a pyperf benchmark, or a row that says why not."""

    case: str
    op: str
    impl: str
    role: str
    make: Callable[[], Run]
    """Sets the contender up (in the worker process) and returns what the loops run."""
    skip: str = ""
    """Why this Python does not have it (then it is not run)."""
    note: str = ""
    unit: str = "s"
    """How the report shows it: ``s`` per operation, or ``B/s``/``items/s`` throughput."""
    per_op: float = 1.0
    """Bytes or items one operation moves (throughput units)."""
    inner: int = 1
    """Operations one loop does (pyperf's ``inner_loops``: values are per operation)."""

    @property
    def name(self) -> str:
        return f"{self.case}: {self.op}: {self.impl}"

    def metadata(self) -> dict[str, str | float]:
        """What ``bench.report`` needs to make a row of the pyperf benchmark (pyperf refuses
        empty values: no note, no ``si_note``)."""
        meta: dict[str, str | float] = {
            "si_case": self.case,
            "si_op": self.op,
            "si_impl": self.impl,
            "si_role": self.role,
            "si_unit": self.unit,
            "si_per_op": self.per_op,
        }
        if self.note:
            meta["si_note"] = self.note
        return meta


@dataclasses.dataclass
class Ctx:
    avail: Available
    s: Settings
    stack: contextlib.ExitStack
    """Closes what the contenders set up, when the worker is done."""


def _loop(fn: Callable[..., Any], *args: Any) -> Run:
    """``fn(*args)``, ``loops`` times."""

    def run(loops: int) -> None:
        for _ in range(loops):
            fn(*args)

    return run


# -- cases ----------------------------------------------------------------------------------


def case_create(ctx: Ctx) -> list[Timed]:
    """Create and close one interpreter (threads and processes: start and join one)."""
    a = ctx.avail
    case, op = "create", "create+close"

    def ours() -> Run:
        create = a.ours_subinterpreter.create
        return _loop(lambda: create().close())

    def facade() -> Run:
        create = a.ours_facade_create
        return _loop(lambda: create().close())

    def ll() -> Run:
        create, destroy = a.ll.create, a.ll.destroy
        return _loop(lambda: destroy(create()))

    def hl() -> Run:
        create = a.hl.create
        return _loop(lambda: create().close())

    def thread() -> Run:
        def one() -> None:
            t = threading.Thread(target=workloads.noargs)
            t.start()
            t.join()

        return _loop(one)

    def proc() -> Run:
        mp = mp_context()

        def one() -> None:
            p = mp.Process(target=workloads.noargs)
            p.start()
            p.join(JOIN_TIMEOUT)

        return _loop(one)

    return [
        Timed(case, op, "ours Subinterpreter", "ours", ours),
        Timed(case, op, "ours interpreters", "ours_facade", facade),
        Timed(case, op, a.ll_label, "std_ll", ll, skip=a.unavailable_ll()),
        Timed(case, op, a.hl_label, "std_hl", hl, skip=a.unavailable_hl()),
        Timed(case, op, "threading Thread", "threads", thread, note="start+join"),
        Timed(case, op, "multiprocessing Process", "procs", proc, note="start+join"),
    ]


def case_create_parallel(ctx: Ctx) -> list[Timed]:
    """Create N interpreters in N threads at once; per interpreter (wall time / N)."""
    a = ctx.avail
    count = ctx.s.parallel_count
    case, op = "create_parallel", f"create {count} in {count} threads"

    def parallel(create: Callable[[], Any], close: Callable[[Any], object]) -> Callable[[], Run]:
        def make() -> Run:
            def one_round() -> None:
                made: list[Any] = []
                start = threading.Barrier(count)

                def one() -> None:
                    start.wait()
                    made.append(create())  # list.append is atomic

                try:
                    run_threads(*[one] * count)
                finally:
                    for obj in made:
                        close(obj)

            return _loop(one_round)

        return make

    mp = mp_context()

    def start_proc() -> Any:
        p = mp.Process(target=workloads.noargs)
        p.start()
        return p

    def start_thread() -> Any:
        t = threading.Thread(target=workloads.noargs)
        t.start()
        return t

    ll_skip = a.unavailable_ll()
    if not ll_skip and sys.version_info < (3, 13):
        ll_skip = "concurrent creation crashes CPython 3.12"
    ours = a.ours_subinterpreter
    t = functools.partial(Timed, case, op, inner=count)
    return [
        t("ours Subinterpreter", "ours", parallel(ours.create, ours.close)),
        t(a.ll_label, "std_ll", parallel(a.ll_create, a.ll_destroy), skip=ll_skip),
        t("threading Thread", "threads", parallel(start_thread, _join), note="start"),
        t("multiprocessing Process", "procs", parallel(start_proc, _join), note="start"),
    ]


def _join(worker: threading.Thread | Any) -> None:
    worker.join(JOIN_TIMEOUT)


def case_roundtrip(ctx: Ctx) -> list[Timed]:
    """A round trip into a warm interpreter: exec("pass"), and call(f, 1, 2)."""
    a, stack = ctx.avail, ctx.stack
    case = "roundtrip"

    def checked(fn: Callable[..., Any], *args: Any) -> Run:
        a.ll_check(fn(*args))  # stdlib low-level calls report errors as values
        return _loop(fn, *args)

    def ours_exec() -> Run:
        return _loop(a.ours_interp(stack).exec, "pass")

    def facade_exec() -> Run:
        return _loop(a.ours_facade_interp(stack).exec, "pass")

    def ll_exec() -> Run:
        return checked(a.ll_exec(), a.std_ll_interp(stack), "pass")

    def hl_exec() -> Run:
        return _loop(a.std_hl_interp(stack).exec, "pass")

    op = "exec('pass')"
    out = [
        Timed(case, op, "ours Subinterpreter", "ours", ours_exec),
        Timed(case, op, "ours interpreters", "ours_facade", facade_exec),
        Timed(case, op, a.ll_label, "std_ll", ll_exec, skip=a.unavailable_ll()),
        Timed(case, op, a.hl_label, "std_hl", hl_exec, skip=a.unavailable_hl()),
    ]

    def ours_call() -> Run:
        return _loop(a.ours_interp(stack).call, workloads.add, 1, 2)

    def facade_call() -> Run:
        return _loop(a.ours_facade_interp(stack).call, workloads.add, 1, 2)

    if sys.version_info >= (3, 14):
        ll_note = ""

        def ll_call() -> Run:
            return checked(a.ll.call, a.std_ll_interp(stack), workloads.add, (1, 2))

    elif a.ll is not None and hasattr(a.ll, "call"):
        ll_note = "3.13: no args, no result"

        def ll_call() -> Run:
            return checked(a.ll.call, a.std_ll_interp(stack), workloads.noargs)

    else:
        ll_note = "3.12: run_string(shared=args), no result"

        def ll_call() -> Run:
            return checked(a.ll_exec(), a.std_ll_interp(stack), "r = a + b", {"a": 1, "b": 2})

    def hl_call() -> Run:
        interp = a.std_hl_interp(stack)
        if sys.version_info >= (3, 14):
            return _loop(interp.call, workloads.add, 1, 2)
        return _loop(interp.call, workloads.noargs)

    def thread_call() -> Run:
        tw = ThreadWorker()
        stack.callback(tw.close)
        return _loop(tw.call, workloads.add, 1, 2)

    def proc_call() -> Run:
        pw = ProcessWorker()
        stack.callback(pw.close)
        return _loop(pw.call, workloads.add, 1, 2)

    op = "call(f, 1, 2)"
    hl_note = "" if sys.version_info >= (3, 14) else "3.13: no args, no result"
    out += [
        Timed(case, op, "ours Subinterpreter", "ours", ours_call),
        Timed(case, op, "ours interpreters", "ours_facade", facade_call),
        Timed(case, op, a.ll_label, "std_ll", ll_call, skip=a.unavailable_ll(), note=ll_note),
        Timed(case, op, a.hl_label, "std_hl", hl_call, skip=a.unavailable_hl(), note=hl_note),
        Timed(case, op, "threading worker", "threads", thread_call, note="2 SimpleQueues"),
        Timed(case, op, "multiprocessing worker", "procs", proc_call, note="Pipe"),
    ]
    return out


def case_crossing(ctx: Ctx) -> list[Timed]:
    """``call(size_of, value)`` with a 1,000-entry ``dict[str, int]`` and a list of 1,000 small
    tuples: built-in containers cross as data; their subclasses (same content) by pickle."""
    a, stack = ctx.avail, ctx.stack
    case = "crossing"
    d = {f"key{i}": i for i in range(1000)}
    tuples = [(i, f"s{i}", float(i)) for i in range(1000)]
    values: list[tuple[str, object, object]] = [
        ("dict[str, int] x1000", d, workloads.PickledDict(d)),
        ("list of 1000 tuples", tuples, workloads.PickledList(tuples)),
    ]
    out: list[Timed] = []
    for label, value, pickled in values:

        def ours(v: object = value) -> Run:
            return _loop(a.ours_interp(stack).call, workloads.size_of, v)

        def ours_pickle(v: object = pickled) -> Run:
            return _loop(a.ours_interp(stack).call, workloads.size_of, v)

        def std(v: object = value) -> Run:
            return _loop(a.std_hl_interp(stack).call, workloads.size_of, v)

        def proc(v: object = value) -> Run:
            pw = ProcessWorker()
            stack.callback(pw.close)
            return _loop(pw.call, workloads.size_of, v)

        op = f"call(f, {label})"
        std_skip = "" if sys.version_info >= (3, 14) else "call() with arguments: 3.14+"
        out += [
            Timed(case, op, "ours (as data)", "ours", ours),
            Timed(case, op, "ours (a subclass: pickle)", "ours_pickle", ours_pickle),
            Timed(case, op, a.hl_label, "std_hl", std, skip=std_skip or a.unavailable_hl()),
            Timed(case, op, "multiprocessing worker", "procs", proc, note="Pipe"),
        ]
    return out


def _size_label(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def case_buffers(ctx: Ctx) -> list[Timed]:
    """call(f, buf) with bytes and memoryview buffers of 1 KiB, 1 MiB and 100 MiB: GB/s."""
    a, stack = ctx.avail, ctx.stack
    out = []
    for size in (KIB, MIB, 100 * MIB):
        for kind in ("bytes", "memoryview"):

            def buffer(size: int = size, kind: str = kind) -> bytes | memoryview:
                source = bytearray(size)
                return bytes(source) if kind == "bytes" else memoryview(source)

            def ours(buffer: Callable[[], bytes | memoryview] = buffer) -> Run:
                return _loop(a.ours_interp(stack).call, workloads.nbytes, buffer())

            def ll(buffer: Callable[[], bytes | memoryview] = buffer) -> Run:
                buf, iid = buffer(), a.std_ll_interp(stack)
                if a.ll_has_call_args:
                    _, excinfo = a.ll.call(iid, workloads.nbytes, (buf,))
                    a.ll_check(excinfo)
                    return _loop(a.ll.call, iid, workloads.nbytes, (buf,))
                ll_exec = a.ll_exec()
                a.ll_check(ll_exec(iid, "assert len(b) == n_ok", {"b": buf, "n_ok": len(buf)}))
                return _loop(ll_exec, iid, "n = len(b)", {"b": buf})

            def hl(buffer: Callable[[], bytes | memoryview] = buffer) -> Run:
                return _loop(a.std_hl_interp(stack).call, workloads.nbytes, buffer())

            def proc(buffer: Callable[[], bytes | memoryview] = buffer) -> Run:
                pw = ProcessWorker()
                stack.callback(pw.close)
                return _loop(pw.send_bytes, buffer())

            def memcpy(size: int = size) -> Run:
                return _loop(bytes, bytearray(size))

            ll_skip = a.unavailable_ll()
            if not ll_skip and not a.ll.is_shareable(
                memoryview(b"") if kind == "memoryview" else b""
            ):
                ll_skip = f"{kind} is not shareable in {a.ll_name}"
            hl_skip = a.unavailable_hl()
            if not hl_skip and sys.version_info < (3, 14):
                hl_skip = "call() takes no arguments before 3.14"
            ll_note = "" if a.ll_has_call_args else "exec('n = len(b)', shared={'b': buf})"
            zero_copy = "zero-copy" if kind == "memoryview" else ""
            t = functools.partial(
                Timed, "buffers", f"{kind} {_size_label(size)}", unit="B/s", per_op=float(size)
            )
            out += [
                t("ours Subinterpreter", "ours", ours, note=zero_copy),
                t(a.ll_label, "std_ll", ll, skip=ll_skip, note=ll_note),
                t(a.hl_label, "std_hl", hl, skip=hl_skip),
                t("multiprocessing worker", "procs", proc, note="Pipe.send_bytes"),
                t("memcpy bytes(bytearray)", "memcpy", memcpy, note="in-process"),
            ]
    return out


def case_queue(ctx: Ctx) -> list[Timed]:
    """Items/s through a queue: a producer interpreter and a consumer one, each in a thread."""
    a, stack = ctx.avail, ctx.stack
    items = ctx.s.queue_items
    produce = "for i in range(n): q.put(i)"
    consume = "for i in range(n): q.get()"

    def interp_pair(
        create: Callable[[], Any], create_queue: Callable[[], Any], prelude: str = ""
    ) -> Callable[[], Run]:
        def make() -> Run:
            p, c = create(), create()
            stack.callback(c.close)
            stack.callback(p.close)
            if prelude:  # 3.13: a queue crosses only into an interpreter that imported it
                p.exec(prelude)
                c.exec(prelude)
            q = create_queue()
            p.prepare_main(q=q, n=items)
            c.prepare_main(q=q, n=items)
            return _loop(run_threads, lambda: c.exec(consume), lambda: p.exec(produce))

        return make

    def channels() -> Run:
        ll, ch = a.ll, a.channels
        p, c = ll.create(), ll.create()
        stack.callback(ll.destroy, c)
        stack.callback(ll.destroy, p)
        cid = ch.create()
        stack.callback(ch.destroy, cid)
        prod = "import _xxinterpchannels as C\nfor i in range(n): C.send(cid, i)"
        cons = (
            "import _xxinterpchannels as C\n_s = object()\nk = 0\n"
            "while k < n:\n    if C.recv(cid, _s) is not _s: k += 1"
        )
        shared = {"cid": cid, "n": items}
        return _loop(
            run_threads,
            lambda: ll.run_string(c, cons, shared),
            lambda: ll.run_string(p, prod, shared),
        )

    def threads() -> Run:
        q: queue.Queue[int] = queue.Queue()

        def prod() -> None:
            for i in range(items):
                q.put(i)

        def cons() -> None:
            for _ in range(items):
                q.get()

        return _loop(run_threads, cons, prod)

    proc_items = items // 5  # the slow cross-process queue: same per-item figure, less time

    def procs() -> Run:
        mp = mp_context()
        q, done = mp.Queue(), mp.Queue()
        proc = mp.Process(target=workloads.mp_queue_consumer, args=(q, done), daemon=True)
        proc.start()

        def stop() -> None:
            q.put(None)
            proc.join(JOIN_TIMEOUT)

        stack.callback(stop)
        if done.get(timeout=JOIN_TIMEOUT) != "ready":
            raise RuntimeError("consumer process did not start")

        def one() -> None:
            q.put(proc_items)
            for i in range(proc_items):
                q.put(i)
            done.get(timeout=JOIN_TIMEOUT)

        return _loop(one)

    t = functools.partial(Timed, "queue", "put/get int", unit="items/s", inner=items)
    if a.channels is not None:
        std = t("stdlib _xxinterpchannels", "std_queue", channels, note="send / busy-polling recv")
    else:
        prelude = "import test.support.interpreters.queues" if sys.version_info < (3, 14) else ""
        std = t(
            f"{a.hl_label} queue",
            "std_queue",
            interp_pair(lambda: a.hl.create(), lambda: a.hl_create_queue(), prelude),
            skip="" if a.hl_create_queue is not None else "no stdlib queue on this Python",
            note="get() polls every 10 ms when empty",
        )
    ours = interp_pair(a.ours_facade_create, a.ours_facade_create_queue)
    return [
        t("ours interpreters queue", "ours", ours),
        std,
        t("threading queue.Queue", "threads", threads),
        t("multiprocessing Queue", "procs", procs, note="to a process", inner=proc_items),
    ]


def _warm_executor(ctx: Ctx, factory: Callable[[], cf.Executor]) -> cf.Executor:
    """An executor started, every worker warmed up, shut down when the worker process ends."""
    ex = factory()
    ctx.stack.callback(ex.shutdown)
    warm(ex, ctx.s.workers, workloads.add, 1, 2)
    return ex


def _executor_contenders(
    ctx: Ctx,
    case: str,
    op: str,
    build: Callable[[Callable[[], cf.Executor]], Run],
    *,
    roles: Sequence[str] | None = None,
    unit: str = "s",
    inner: int = 1,
) -> list[Timed]:
    """One contender per executor (of ``roles``, default all): ``build(factory)`` sets it up
    in the worker process and returns what the loops run."""
    return [
        Timed(
            case,
            op,
            kind.impl,
            kind.role,
            functools.partial(build, kind.make),
            skip=kind.skip,
            unit=unit,
            inner=inner,
        )
        for kind in executors(ctx.avail, ctx.s.workers)
        if roles is None or kind.role in roles
    ]


def _start_loop(factory: Callable[[], cf.Executor]) -> Run:
    """Start an executor, get its first result, shut it down: ``loops`` times."""

    def one() -> None:
        with factory() as ex:
            ex.submit(abs, -1).result(timeout=JOIN_TIMEOUT)

    return _loop(one)


def case_executor_tiny(ctx: Ctx) -> list[Timed]:
    """Tasks/s of many tiny tasks (``submit`` each, then every ``result()``) on a warm
    executor with one worker per core."""
    tasks, workers = ctx.s.tiny_tasks, ctx.s.workers

    def build(factory: Callable[[], cf.Executor]) -> Run:
        ex = _warm_executor(ctx, factory)

        def one() -> None:
            futs = [ex.submit(workloads.add, i, 1) for i in range(tasks)]
            for f in futs:
                f.result(timeout=JOIN_TIMEOUT)

        return _loop(one)

    op = f"{tasks} tiny tasks, {workers} workers"
    return _executor_contenders(ctx, "executor_tiny", op, build, unit="items/s", inner=tasks)


def case_executor_map(ctx: Ctx) -> list[Timed]:
    """Tasks/s of many tiny tasks through ``map()``, one by one and ``chunksize=64`` (our
    executor sends a chunk as one task; the stdlib's interpreter executor ignores it)."""
    tasks, workers = ctx.s.map_items, ctx.s.workers
    out = []
    for chunksize in (1, 64):

        def build(factory: Callable[[], cf.Executor], chunksize: int = chunksize) -> Run:
            ex = _warm_executor(ctx, factory)

            def one() -> None:
                for _ in ex.map(abs, range(-tasks, 0), chunksize=chunksize):
                    pass

            return _loop(one)

        op = f"map, {tasks} tiny tasks, chunksize={chunksize}, {workers} workers"
        out += _executor_contenders(
            ctx,
            "executor_map",
            op,
            build,
            # The threads+Subinterpreter pool has no map of its own (Executor.map's).
            roles=("ours_pool", "std_pool", "threads", "procs"),
            unit="items/s",
            inner=tasks,
        )
    return out


def case_executor_start(ctx: Ctx) -> list[Timed]:
    """Start an executor, get one result, shut it down (interpreter or process start-up)."""
    op = f"start, 1 task, shutdown, {ctx.s.workers} workers"
    return _executor_contenders(ctx, "executor_start", op, _start_loop)


CASE_FUNCS: Final[dict[str, Callable[[Ctx], list[Timed]]]] = {
    "create": case_create,
    "create_parallel": case_create_parallel,
    "roundtrip": case_roundtrip,
    "crossing": case_crossing,
    "buffers": case_buffers,
    "queue": case_queue,
    "executor_tiny": case_executor_tiny,
    "executor_map": case_executor_map,
    "executor_start": case_executor_start,
}


def plan(cases: Sequence[str], settings: Settings, stack: contextlib.ExitStack) -> list[Timed]:
    """Every contender of ``cases`` on this Python, in the order they run."""
    ctx = Ctx(Available(), settings, stack)
    return [t for case in cases for t in CASE_FUNCS[case](ctx)]


# -- the pyperf script ------------------------------------------------------------------------

_live: dict[str, Run] = {}


def _time_func(t: Timed) -> Callable[[int], float]:
    make = t.make

    def time_func(loops: int) -> float:
        run = _live.get(t.name)
        if run is None:  # set up at the first call, in the worker: not timed
            run = _live[t.name] = make()
            run(1)  # first-use costs (imports inside an interpreter, caches): not timed either
        t0 = time.perf_counter()
        run(loops)
        return time.perf_counter() - t0

    return time_func


def parse_cases(values: Sequence[str] | None, known: Sequence[str]) -> list[str]:
    """``--cases`` values (commas or spaces) checked against ``known``; default all."""
    if not values:
        return list(known)
    out: list[str] = []
    for value in values:
        for name in value.replace(",", " ").split():
            if name not in known:
                raise SystemExit(f"unknown case {name!r}; choose from {', '.join(known)}")
            if name not in out:
                out.append(name)
    return out


def _add_cmdline_args(cmd: list[str], args: argparse.Namespace) -> None:
    """What a worker process needs to make the same plan as the manager."""
    cmd += ["--workers", str(args.workers)]
    if args.cases:
        cmd += ["--cases", ",".join(args.cases)]
    if args.quick:
        cmd.append("--quick")
    if args.tiny_tasks:
        cmd += ["--tiny-tasks", str(args.tiny_tasks)]
    if args.map_items:
        cmd += ["--map-items", str(args.map_items)]


def main() -> None:
    runner = pyperf.Runner(program_args=("-m", "bench.timed"), add_cmdline_args=_add_cmdline_args)
    parser = runner.argparser
    parser.add_argument("--cases", nargs="+", help=f"cases to run (default all): {' '.join(CASES)}")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="executor workers (default: cores)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller batches per loop")
    parser.add_argument("--tiny-tasks", type=int, help="tasks per loop of executor_tiny")
    parser.add_argument("--map-items", type=int, help="calls per loop of executor_map")
    parser.add_argument("--status", metavar="PATH", help="write skipped and failed contenders")
    args = runner.parse_args()
    cases = parse_cases(args.cases, CASES)
    settings = Settings.make(args.quick, args.workers, args.tiny_tasks, args.map_items)
    runner.metadata["si_settings"] = json.dumps(dataclasses.asdict(settings))
    status: list[dict[str, str]] = []
    with contextlib.ExitStack() as stack:
        for t in plan(cases, settings, stack):
            if t.skip:
                status.append({"name": t.name, "status": "skipped", "note": t.skip, **_ids(t)})
                continue
            try:
                runner.bench_time_func(
                    t.name, _time_func(t), inner_loops=t.inner, metadata=t.metadata()
                )
            except Exception as exc:
                if args.worker:
                    raise
                # The worker failed (its traceback is above). pyperf numbers the benchmarks
                # of a script as it runs them and starts workers with that number: count the
                # failed one too, or the next one's workers would run the wrong benchmark.
                runner._worker_task += 1
                status.append({"name": t.name, "status": "error", "note": short(exc), **_ids(t)})
                print(f"ERROR {t.name}: {short(exc)}", file=sys.stderr, flush=True)
    if args.status and not args.worker:
        with open(args.status, "w") as f:
            json.dump(status, f, indent=2)


def _ids(t: Timed) -> dict[str, str]:
    return {"case": t.case, "op": t.op, "impl": t.impl, "role": t.role, "unit": t.unit}


if __name__ == "__main__":
    main()
