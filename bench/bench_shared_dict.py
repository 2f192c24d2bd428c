"""``python -m bench.bench_shared_dict``: :class:`subinterp_rs.SharedDict` against a
``multiprocessing.Manager().dict()`` and a ``dict`` behind a ``threading.Lock``, in one run.

Each contender does the same work with 2 workers: ``OPS`` steps each, a step being a set and a
get of keys drawn from ``KEYS`` keys and an increment of the worker's own counter (atomic in
the shared dict, under the lock elsewhere). The throughput in operations per second is reported
beside the ``dict`` + ``Lock`` one. The rounds are interleaved (every contender once per round,
in a rotating order) so a shared machine's load hits each alike; the table gives the median.

* ``shared dict, 2 interpreters``: 2 subinterpreters (own GILs) in 2 threads;
* ``shared dict, 1 interpreter``: one thread of main;
* ``dict + Lock, 2 threads``: 2 threads of main (one GIL), the lock around each operation;
* ``Manager().dict(), 2 processes``: 2 worker processes talking to the manager's process.

``--json PATH`` writes the rounds. Not part of ``python -m bench`` (it needs no pyperf).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from subinterp_rs import SharedDict, Subinterpreter

OPS = 20_000
KEYS = 1_000


def shared_dict_work(name: str, worker: int, ops: int) -> float:
    """``ops`` sets and gets (and ``ops`` increments) on shared dict ``name``; seconds."""
    d = SharedDict(name)
    t0 = time.perf_counter()
    for i in range(ops):
        key = f"k{(i * 7 + worker) % KEYS}"
        d[key] = i
        d.get(key)
        d.increment(f"n{worker}")
    return time.perf_counter() - t0


def locked_dict_work(d: dict[str, Any], lock: threading.Lock, worker: int, ops: int) -> float:
    """The same on a plain ``dict``, each operation under ``lock``."""
    t0 = time.perf_counter()
    for i in range(ops):
        key = f"k{(i * 7 + worker) % KEYS}"
        with lock:
            d[key] = i
        with lock:
            d.get(key)
        with lock:
            d[f"n{worker}"] = d.get(f"n{worker}", 0) + 1
    return time.perf_counter() - t0


def manager_dict_work(d: Any, lock: Any, worker: int, ops: int) -> float:
    """The same on a manager's dict (its lock around the increment)."""
    t0 = time.perf_counter()
    for i in range(ops):
        key = f"k{(i * 7 + worker) % KEYS}"
        d[key] = i
        d.get(key)
        with lock:
            d[f"n{worker}"] = d.get(f"n{worker}", 0) + 1
    return time.perf_counter() - t0


def in_threads(fns: list[Callable[[], float]]) -> float:
    """Run each of ``fns`` in a thread of its own, together; wall seconds."""
    threads = [threading.Thread(target=f) for f in fns]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


class Contenders:
    def __init__(self, ops: int) -> None:
        self.ops = ops
        self.interps = [Subinterpreter.create(), Subinterpreter.create()]
        for si in self.interps:  # warm: the module imported in each
            si.call(shared_dict_work, "bench-warm", 0, 10)
        ctx = multiprocessing.get_context("spawn")
        self.manager = ctx.Manager()
        self.pool = ProcessPoolExecutor(2, mp_context=ctx)
        self.mdict = self.manager.dict()
        self.mlock = self.manager.Lock()
        list(self.pool.map(manager_dict_work, [self.mdict] * 2, [self.mlock] * 2, [0, 1], [10, 10]))

    def close(self) -> None:
        for si in self.interps:
            si.close()
        self.pool.shutdown()
        self.manager.shutdown()

    def shared_two(self) -> float:
        name = f"bench-{time.perf_counter_ns()}"
        d = SharedDict(name)
        wall = in_threads(
            [
                functools.partial(si.call, shared_dict_work, name, w, self.ops)
                for w, si in enumerate(self.interps)
            ]
        )
        assert d["n0"] + d["n1"] == 2 * self.ops
        d.close()
        return wall

    def shared_one(self) -> float:
        name = f"bench-{time.perf_counter_ns()}"
        d = SharedDict(name)
        wall = shared_dict_work(name, 0, self.ops)
        d.close()
        return wall

    def locked_two(self) -> float:
        d: dict[str, Any] = {}
        lock = threading.Lock()
        wall = in_threads(
            [functools.partial(locked_dict_work, d, lock, w, self.ops) for w in (0, 1)]
        )
        assert d["n0"] + d["n1"] == 2 * self.ops
        return wall

    def manager_two(self) -> float:
        self.mdict.clear()
        t0 = time.perf_counter()
        list(
            self.pool.map(
                manager_dict_work, [self.mdict] * 2, [self.mlock] * 2, [0, 1], [self.ops] * 2
            )
        )
        wall = time.perf_counter() - t0
        assert self.mdict["n0"] + self.mdict["n1"] == 2 * self.ops
        return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=OPS)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args(argv)
    c = Contenders(opts.ops)
    cases: dict[str, tuple[Callable[[], float], int]] = {
        "shared dict, 2 interpreters": (c.shared_two, 2),
        "shared dict, 1 interpreter": (c.shared_one, 1),
        "dict + Lock, 2 threads": (c.locked_two, 2),
        "Manager().dict(), 2 processes": (c.manager_two, 2),
    }
    names = list(cases)
    rounds: dict[str, list[float]] = {n: [] for n in names}
    try:
        for r in range(opts.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                fn, workers = cases[name]
                wall = fn()
                # 3 operations per step (set, get, increment)
                rounds[name].append(3 * workers * opts.ops / wall)
            print(f"round {r + 1}/{opts.rounds} done", file=sys.stderr)
    finally:
        c.close()
    base = statistics.median(rounds["dict + Lock, 2 threads"])
    print(f"Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}, {opts.ops} steps")
    print(f"{'contender':32} {'ops/s':>12} {'vs dict+Lock':>13}")
    for name in names:
        med = statistics.median(rounds[name])
        print(f"{name:32} {med:12,.0f} {med / base:12.2f}x")
    if opts.json:
        opts.json.write_text(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "load": os.getloadavg()[0],
                    "ops": opts.ops,
                    "rounds": rounds,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
