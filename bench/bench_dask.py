"""Benchmark: a dask worker whose 2 task slots are subinterpreters (subinterp_rs.dask) against
the default thread executor and against 2 worker processes of 1 thread.

    python bench/bench_dask.py [--tasks 8] [--seconds 0.3] [--repeat 5] [--json out.json]
    python bench/bench_dask.py --scheduler tcp://HOST:8786 [--tasks N]   # an existing cluster

Each configuration is a ``LocalCluster`` of worker processes (``processes=True``), started
and warmed once; then ``--repeat`` rounds of ``--tasks`` pure-Python CPU-bound tasks
(``subinterp_rs.demo.count_primes``, sized to take ``--seconds`` each alone) are timed from
submit to the last result. Printed: the median and best round, the ratio of the thread
executor's median to each, and the resident memory (RSS) of the worker processes (and of
their nannies) after the rounds. The machine's load average is printed too: on a busy
machine every figure is slower and noisier.

``--scheduler`` times the rounds on the workers of an existing cluster instead (see
docs/dask.md: start them with and without ``--preload subinterp_rs.dask``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from dask.base import annotate
from distributed import Client, LocalCluster

from subinterp_rs.dask import SubinterpreterPlugin
from subinterp_rs.demo import count_primes


def calibrate(seconds: float) -> int:
    """The ``stop`` of ``count_primes(0, stop)`` that takes about ``seconds`` here."""
    stop = 20_000
    while True:
        t0 = time.perf_counter()
        count_primes(0, stop)
        took = time.perf_counter() - t0
        if took > 0.05:
            return max(1000, int(stop * seconds / took))
        stop *= 2


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def worker_memory() -> tuple[int, int]:
    """Run on each worker (``client.run``): the RSS of its process and of its parent (the
    nanny), in bytes."""
    return _rss(os.getpid()), _rss(os.getppid())


def rounds(
    client: Client, tasks: int, stop: int, repeat: int, context: Callable[[], Any]
) -> list[float]:
    """Warm up once, then time ``repeat`` rounds of ``tasks`` tasks."""
    times = []
    for r in range(repeat + 1):
        t0 = time.perf_counter()
        with context():
            futures = [
                client.submit(count_primes, 0, stop + i, pure=False, key=f"r{r}-{i}")
                for i in range(tasks)
            ]
        client.gather(futures)
        if r:  # round 0 warms up (imports, first calls)
            times.append(time.perf_counter() - t0)
    return times


def no_annotation() -> Any:
    return annotate()


def run_config(name: str, args: argparse.Namespace, stop: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dashboard_address": None, "processes": True}
    if name == "processes":
        kwargs.update(n_workers=2, threads_per_worker=1)
    else:
        kwargs.update(n_workers=1, threads_per_worker=2)
    if name == "subinterp":
        kwargs["plugins"] = {SubinterpreterPlugin(default=True)}
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        client.wait_for_workers(kwargs["n_workers"], timeout=120)
        times = rounds(client, args.tasks, stop, args.repeat, no_annotation)
        memory = list(client.run(worker_memory).values())
    return {
        "config": name,
        "times": times,
        "median": statistics.median(times),
        "best": min(times),
        "worker_rss": sum(m[0] for m in memory),
        "with_nannies_rss": sum(m[0] + m[1] for m in memory),
    }


def table(results: list[dict[str, Any]]) -> str:
    base = next((r["median"] for r in results if r["config"] == "threads"), None)
    procs = next((r["median"] for r in results if r["config"] == "processes"), None)
    lines = [
        "| executor | median s | best s | x threads | vs processes | worker RSS MiB "
        "| + nannies MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        speedup = f"{base / r['median']:.2f}x" if base else "-"
        vs_procs = f"{(r['median'] / procs - 1) * 100:+.0f}%" if procs else "-"
        lines.append(
            f"| {r['config']} | {r['median']:.2f} | {r['best']:.2f} | {speedup} | {vs_procs} "
            f"| {r['worker_rss'] / 2**20:.0f} | {r['with_nannies_rss'] / 2**20:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.3, help="one task's time alone")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--configs", default="subinterp,threads,processes", help="comma-separated subset"
    )
    parser.add_argument("--scheduler", help="time an existing cluster's workers instead")
    parser.add_argument("--annotate", help="with --scheduler: dask.annotate(executor=NAME)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    stop = calibrate(args.seconds)
    load = os.getloadavg()
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.tasks} tasks of "
        f"count_primes(0, ~{stop}) (~{args.seconds}s each alone), {args.repeat} rounds"
    )
    results: list[dict[str, Any]] = []
    if args.scheduler:
        with Client(args.scheduler) as client:

            def context() -> Any:
                return annotate(executor=args.annotate) if args.annotate else annotate()

            times = rounds(client, args.tasks, stop, args.repeat, context)
            memory = list(client.run(worker_memory).values())
            results.append(
                {
                    "config": f"cluster {args.scheduler}" + (f" ({args.annotate})" * bool(args.annotate)),
                    "times": times,
                    "median": statistics.median(times),
                    "best": min(times),
                    "worker_rss": sum(m[0] for m in memory),
                    "with_nannies_rss": sum(m[0] + m[1] for m in memory),
                }
            )
    else:
        for name in args.configs.split(","):
            results.append(run_config(name, args, stop))
            print(f"  {name}: rounds {', '.join(f'{t:.2f}' for t in results[-1]['times'])}")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version, "load": load, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
