"""Benchmark: a dask worker whose 2 task slots are subinterpreters (subinterp_rs.dask) against
the default thread executor and against 2 worker processes of 1 thread.

    python bench/bench_dask.py [--tasks 8] [--seconds 0.3] [--repeat 5] [--json out.json]
    python bench/bench_dask.py --scheduler tcp://HOST:8786 [--tasks N]   # an existing cluster

Each configuration is a ``LocalCluster`` of worker processes (``processes=True``); all are
started and warmed first, then ``--repeat`` rounds are run, each round timing ``--tasks``
pure-Python CPU-bound tasks (``subinterp_rs.demo.count_primes``, sized to take ``--seconds``
each alone) on every configuration in turn (the order rotating), from submit to the last
result: on a shared machine a change of load then hits every configuration alike.

Printed: the median and best round, the ratio of the thread executor's median to each, and
the resident memory (RSS) of the worker processes (and of their nannies) after the rounds.
The machine's load average is printed too: on a busy machine every figure is slower and
noisier.

``--scheduler`` times the rounds on the workers of an existing cluster instead (see
docs/dask.md: start them with and without ``--preload subinterp_rs.dask``).
"""

from __future__ import annotations

import argparse
import contextlib
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


def one_round(client: Client, tasks: int, stop: int, tag: str, context: Callable[[], Any]) -> float:
    """The seconds ``tasks`` tasks take, from the first submit to the last result."""
    t0 = time.perf_counter()
    with context():
        futures = [
            client.submit(count_primes, 0, stop + i, pure=False, key=f"{tag}-{i}")
            for i in range(tasks)
        ]
    client.gather(futures)
    return time.perf_counter() - t0


def no_annotation() -> Any:
    return annotate()


def summary(name: str, times: list[float], client: Client) -> dict[str, Any]:
    memory = list(client.run(worker_memory).values())
    return {
        "config": name,
        "times": times,
        "median": statistics.median(times),
        "best": min(times),
        "worker_rss": sum(m[0] for m in memory),
        "with_nannies_rss": sum(m[0] + m[1] for m in memory),
    }


def cluster_kwargs(name: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dashboard_address": None, "processes": True}
    if name == "processes":
        kwargs.update(n_workers=2, threads_per_worker=1)
    else:
        kwargs.update(n_workers=1, threads_per_worker=2)
    if name == "subinterp":
        kwargs["plugins"] = {SubinterpreterPlugin(default=True)}
    elif name != "threads" and name != "processes":
        raise SystemExit(f"unknown configuration {name!r}: subinterp, threads or processes")
    return kwargs


def run_configs(names: list[str], args: argparse.Namespace, stop: int) -> list[dict[str, Any]]:
    with contextlib.ExitStack() as stack:
        clients = {}
        for name in names:
            kwargs = cluster_kwargs(name)
            cluster = stack.enter_context(LocalCluster(**kwargs))
            client = stack.enter_context(Client(cluster, set_as_default=False))
            client.wait_for_workers(kwargs["n_workers"], timeout=120)
            one_round(client, args.tasks, stop, "warm", no_annotation)
            clients[name] = client
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.repeat):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                times[name].append(
                    one_round(clients[name], args.tasks, stop, f"r{r}", no_annotation)
                )
        for name in names:
            print(f"  {name}: rounds {', '.join(f'{t:.2f}' for t in times[name])}")
        return [summary(name, times[name], clients[name]) for name in names]


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

            one_round(client, args.tasks, stop, "warm", context)
            times = [
                one_round(client, args.tasks, stop, f"r{r}", context) for r in range(args.repeat)
            ]
            name = f"cluster {args.scheduler}" + (f" ({args.annotate})" if args.annotate else "")
            results.append(summary(name, times, client))
    else:
        results = run_configs(args.configs.split(","), args, stop)
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version, "load": load, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
