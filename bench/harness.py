"""The two cases pyperf cannot express, with a small harness of their own.

* ``executor_cpu``, parallel scaling: CPU-bound jobs, one per worker, for 1..cores workers, as
  the speedup over running the same jobs one after the other in this thread. A speedup is a
  ratio of two timings that must see the same machine: the serial reference and every
  executor are timed in interleaved rounds (each round runs each of them once), and each
  round's speedup uses that round's serial time; the median of the rounds is reported.
* ``memory``, idle memory per interpreter (thread, process): the growth of the resident set
  size over ``count`` of them, each contender in a fresh process (``scripts/_rss.py``).

``python -m bench`` calls :func:`run`; ``python -m bench.harness memory-child IMPL COUNT`` is
the memory case's child process.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from bench import workloads
from bench.contenders import (
    JOIN_TIMEOUT,
    Available,
    executors,
    mp_context,
    short,
    try_import,
    warm,
)
from bench.report import Row

# The RSS helpers shared with scripts/leakcheck.py and scripts/soak.py.
_SCRIPTS = str(Path(__file__).resolve().parent.parent / "scripts")
if _SCRIPTS not in sys.path:
    sys.path.insert(0, _SCRIPTS)
import _rss  # noqa: E402

__all__ = ["CASES", "memory_child", "run"]

CASES: Final = ("executor_cpu", "memory")


def _rounds(
    repeats: int, timers: Sequence[Callable[[], object]]
) -> tuple[list[list[float]], list[str]]:
    """Seconds of each of ``timers``, ``repeats`` rounds, each round running all of them in
    turn: ``times[i][r]`` is timer ``i`` in round ``r``. A timer that raises is not run again:
    ``errors[i]`` says why (``""`` for the others)."""
    times: list[list[float]] = [[] for _ in timers]
    errors = [""] * len(timers)
    for _ in range(repeats):
        for i, timer in enumerate(timers):
            if errors[i]:
                continue
            gc.collect()
            t0 = time.perf_counter()
            try:
                timer()
            except Exception as exc:
                errors[i] = short(exc)
                continue
            times[i].append(time.perf_counter() - t0)
    return times, errors


def executor_cpu(
    workers: int, repeats: int, seconds: float, progress: Callable[[str], None]
) -> tuple[list[Row], dict[str, Any]]:
    """Speedups of every executor for 1..``workers`` workers (see the module docstring)."""
    limit = workloads.calibrate_primes(seconds)
    progress(f"executor_cpu: one job = primes below {limit:,}")
    avail = Available()
    rows: list[Row] = []
    serial_all: list[float] = []
    for n in range(1, workers + 1):
        op = f"{n} workers"
        progress(f"executor_cpu: {op}")
        with contextlib.ExitStack() as stack:
            live: list[tuple[str, str, Callable[[], object]]] = []
            for kind in executors(avail, n):
                if kind.skip:
                    rows.append(
                        Row(
                            "executor_cpu",
                            op,
                            kind.impl,
                            kind.role,
                            "x",
                            None,
                            [],
                            kind.skip,
                            "skipped",
                        )
                    )
                    continue
                try:
                    ex = kind.make()
                    stack.callback(ex.shutdown)
                    warm(ex, n, workloads.count_primes, 100)
                except Exception as exc:
                    rows.append(
                        Row(
                            "executor_cpu",
                            op,
                            kind.impl,
                            kind.role,
                            "x",
                            None,
                            [],
                            short(exc),
                            "error",
                        )
                    )
                    continue

                def jobs(ex: Any = ex, n: int = n) -> None:
                    futs = [ex.submit(workloads.count_primes, limit) for _ in range(n)]
                    for f in futs:
                        f.result(timeout=JOIN_TIMEOUT)

                live.append((kind.impl, kind.role, jobs))
            timers = [lambda: workloads.count_primes(limit), *(jobs for *_, jobs in live)]
            times, errors = _rounds(repeats, timers)
        serial = times[0]
        serial_all += serial
        for (impl, role, _), samples, error in zip(live, times[1:], errors[1:], strict=True):
            if error:
                row = Row("executor_cpu", op, impl, role, "x", None, [], error, "error")
            else:
                # `n` jobs one after the other (the serial time of the same round, times n)
                # over the executor's wall time for them.
                speedups = [n * s / t for t, s in zip(samples, serial, strict=True)]
                row = Row(
                    "executor_cpu", op, impl, role, "x", statistics.median(speedups), speedups
                )
            rows.append(row)
            progress(f"  executor_cpu {op}: {impl}: {row.formatted()}")
    t_serial = statistics.median(serial_all)
    rows.append(
        Row("executor_cpu", "1 job in-process", "serial", "serial", "s", t_serial, serial_all)
    )
    return rows, {"cpu_job": {"limit": limit, "serial_seconds": t_serial}}


# -- memory ------------------------------------------------------------------------------------


def _rss_delta_per(create: Callable[[], Any], close: Callable[[Any], object], count: int) -> float:
    """RSS growth per object over ``count`` objects made by ``create`` (then ``close``d)."""
    close(create())  # first-use costs out of the way
    gc.collect()
    before = _rss.rss_bytes()
    made = [create() for _ in range(count)]
    after = _rss.rss_bytes()
    for obj in made:
        close(obj)
    return (after - before) / count


def memory_child(impl: str, count: int) -> dict[str, Any]:
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
        ll = try_import("_interpreters") or importlib.import_module("_xxsubinterpreters")
        return {"per": _rss_delta_per(ll.create, ll.destroy, count), "how": "RSS delta"}
    if impl == "threads":
        stop = threading.Event()
        gc.collect()
        before = _rss.rss_bytes()
        ts = [threading.Thread(target=stop.wait) for _ in range(count)]
        for t in ts:
            t.start()
        after = _rss.rss_bytes()
        stop.set()
        for t in ts:
            t.join()
        return {"per": (after - before) / count, "how": "RSS delta"}
    if impl == "procs":
        mp = mp_context()
        procs, conns, sizes, how = [], [], [], "PSS"
        try:
            for _ in range(count):
                mine, theirs = mp.Pipe()
                p = mp.Process(target=workloads.mp_idle, args=(theirs,), daemon=True)
                p.start()
                procs.append(p)
                conns.append(mine)
            for conn in conns:
                size, how = _rss.pss_bytes(conn.recv())
                sizes.append(size)
        finally:
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.send(None)
            for p in procs:
                p.join(JOIN_TIMEOUT)
        return {"per": statistics.mean(sizes), "how": f"{how} of each child"}
    raise ValueError(f"unknown memory contender {impl!r}")


def memory(count: int, repeats: int, progress: Callable[[str], None]) -> list[Row]:
    """Idle memory per interpreter (thread, process), each contender in a fresh process,
    ``repeats`` times in turn; the median."""
    avail = Available()
    op = f"idle, {count} of them"
    progress(f"memory: {op} (each contender in a fresh process)")
    specs = [
        ("ours Subinterpreter", "ours", ""),
        ("ours interpreters", "ours_facade", ""),
        (avail.ll_label, "std_ll", avail.unavailable_ll()),
        ("threading Thread", "threads", ""),
        ("multiprocessing Process", "procs", ""),
    ]
    results: dict[str, list[float]] = {role: [] for _, role, _ in specs}
    notes: dict[str, str] = {}
    errors: dict[str, str] = {}
    for _ in range(repeats):
        for _impl, role, skip in specs:
            if skip or role in errors:
                continue
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "bench.harness", "memory-child", role, str(count)],
                    capture_output=True,
                    text=True,
                    timeout=JOIN_TIMEOUT,
                    check=False,
                )
                if proc.returncode != 0:
                    tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                    raise RuntimeError(f"exit status {proc.returncode}: {tail}")
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                results[role].append(float(out["per"]))
                notes[role] = str(out["how"])
            except Exception as exc:
                errors[role] = short(exc)
    rows = []
    for impl, role, skip in specs:
        if skip:
            row = Row("memory", op, impl, role, "B", None, [], skip, "skipped")
        elif role in errors:
            row = Row("memory", op, impl, role, "B", None, [], errors[role], "error")
        else:
            samples = results[role]
            row = Row(
                "memory", op, impl, role, "B", statistics.median(samples), samples, notes[role]
            )
        rows.append(row)
        progress(f"  memory: {impl}: {row.formatted()}")
    return rows


def run(
    cases: Sequence[str], quick: bool, workers: int, progress: Callable[[str], None]
) -> tuple[list[Row], dict[str, Any], dict[str, str]]:
    """The harness cases among ``cases``: rows, extra data, and the cases that failed."""
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for case in cases:
        progress(f"== {case} (own harness)")
        try:
            if case == "executor_cpu":
                cpu_rows, extra = executor_cpu(
                    workers,
                    repeats=3 if quick else 7,
                    seconds=0.15 if quick else 0.6,
                    progress=progress,
                )
                rows += cpu_rows
            elif case == "memory":
                rows += memory(20, repeats=1 if quick else 3, progress=progress)
        except Exception as exc:
            failed[case] = short(exc)
            progress(f"case {case} failed: {failed[case]}")
    return rows, extra, failed


if __name__ == "__main__":
    if sys.argv[1:2] == ["memory-child"] and len(sys.argv) == 4:
        print(json.dumps(memory_child(sys.argv[2], int(sys.argv[3]))), flush=True)
    else:
        sys.exit("usage: python -m bench.harness memory-child IMPL COUNT")
