"""Parallel CPU-bound pure Python with the PEP 734 API.

Each worker is an interpreter with its own GIL, driven from a thread of a plain
``ThreadPoolExecutor``: ``interp.call(func, *args)`` runs ``func`` inside the interpreter and
returns its result, releasing this interpreter's GIL meanwhile, so N calls from N threads run
on N cores. The same code works with the 3.14 stdlib: replace the import by
``from concurrent import interpreters``.

    python examples/parallel_cpu.py [--workers N] [--samples S]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

from subinterp_rs import interpreters


def hits_in_quarter_circle(seed: int, samples: int) -> int:
    """Monte Carlo: how many of ``samples`` pseudo-random points of the unit square fall in
    the quarter circle. Deterministic for a seed (a 64-bit LCG), pure integer arithmetic.

    The function uses no globals and is not a closure, so it crosses into another interpreter
    as code; a function that needs module state should live in an importable module.
    """
    x = seed
    hits = 0
    for _ in range(samples):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFF_FFFF_FFFF_FFFF
        a = x >> 40
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFF_FFFF_FFFF_FFFF
        b = x >> 40
        if a * a + b * b < 1 << 48:
            hits += 1
    return hits


def main() -> int:
    parser = argparse.ArgumentParser(description="Parallel CPU work in subinterpreters.")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--samples", type=int, default=300_000, help="points per worker")
    args = parser.parse_args()
    n: int = args.workers
    samples: int = args.samples
    seeds = list(range(1, n + 1))

    print(f"{n} workers x {samples:,} samples", flush=True)
    t0 = time.perf_counter()
    sequential = [hits_in_quarter_circle(seed, samples) for seed in seeds]
    t_seq = time.perf_counter() - t0
    print(f"sequential, one interpreter:  {t_seq:6.3f} s", flush=True)

    interps = [interpreters.create() for _ in range(n)]
    try:
        with ThreadPoolExecutor(max_workers=n) as pool:
            t0 = time.perf_counter()
            parallel = list(
                pool.map(
                    lambda interp, seed: interp.call(hits_in_quarter_circle, seed, samples),
                    interps,
                    seeds,
                )
            )
            t_par = time.perf_counter() - t0
    finally:
        for interp in interps:
            interp.close()
    print(f"{n} interpreters in {n} threads: {t_par:6.3f} s  ({t_seq / t_par:.2f}x)")

    pi = 4 * sum(parallel) / (n * samples)
    print(f"pi is about {pi:.4f}")
    if parallel != sequential:
        print(f"MISMATCH: {parallel} != {sequential}")
        return 1
    print("parallel results match the sequential ones")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
