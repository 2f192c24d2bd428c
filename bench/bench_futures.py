"""Benchmark: subinterp_rs.futures.InterpreterPoolExecutor against ThreadPoolExecutor and (on
3.14+) the stdlib's InterpreterPoolExecutor.

    python bench/bench_futures.py [--tasks 10000] [--workers 2] [--repeat 3]

Prints the best of ``--repeat`` runs, in seconds, for:

* ``submit``: ``tasks`` tiny calls (``abs(i)``), each ``submit()`` then ``result()``;
* ``map``: the same through ``map()``; ``map/64``: ``map(chunksize=64)``;
* ``cpu``: ``4 * workers`` pure-Python CPU-bound calls (threads share one GIL; interpreters
  do not);
* ``start``: making an executor and getting the first result (interpreter start-up).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial

from subinterp_rs.futures import InterpreterPoolExecutor


def spin(n: int) -> int:
    """Pure-Python CPU work (holds its interpreter's GIL)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def best(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run_submit(ex: Executor, n: int) -> None:
    for f in [ex.submit(abs, -i) for i in range(n)]:
        f.result()


def run_map(ex: Executor, n: int, chunksize: int = 1) -> None:
    list(ex.map(abs, range(n), chunksize=chunksize))


def run_cpu(ex: Executor, calls: int, size: int) -> None:
    for f in [ex.submit(spin, size) for _ in range(calls)]:
        f.result()


def run_start(make: Callable[[], Executor]) -> None:
    with make() as ex:
        ex.submit(abs, -1).result()


def executors(workers: int) -> dict[str, Callable[[], Executor]]:
    kinds: dict[str, Callable[[], Executor]] = {
        "ThreadPoolExecutor": lambda: ThreadPoolExecutor(workers),
        "subinterp_rs": lambda: InterpreterPoolExecutor(workers),
    }
    if sys.version_info >= (3, 14):
        std = importlib.import_module("concurrent.futures.interpreter")
        kinds["stdlib 3.14"] = lambda: std.InterpreterPoolExecutor(workers)
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spin", type=int, default=300_000)
    opts = parser.parse_args()
    n, repeat = opts.tasks, opts.repeat
    cpu_calls = 4 * opts.workers
    print(
        f"Python {sys.version.split()[0]}, {opts.workers} workers, {n} tiny tasks, "
        f"{cpu_calls} x spin({opts.spin}); best of {repeat}, seconds"
    )
    print(f"{'executor':<20} {'submit':>8} {'map':>8} {'map/64':>8} {'cpu':>8} {'start':>8}")
    for name, make in executors(opts.workers).items():
        t_start = best(repeat, partial(run_start, make))
        with make() as ex:
            # Warm every worker up first: start-up is measured apart.
            run_cpu(ex, 4 * opts.workers, 1)
            t_submit = best(repeat, partial(run_submit, ex, n))
            t_map = best(repeat, partial(run_map, ex, n))
            t_chunk = best(repeat, partial(run_map, ex, n, 64))
            t_cpu = best(repeat, partial(run_cpu, ex, cpu_calls, opts.spin))
        print(f"{name:<20} {t_submit:8.3f} {t_map:8.3f} {t_chunk:8.3f} {t_cpu:8.3f} {t_start:8.3f}")


if __name__ == "__main__":
    main()
