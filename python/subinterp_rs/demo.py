"""Demo: CPU-bound pure Python in N subinterpreters (each with its own GIL) vs N threads.

Run it with ``python -m subinterp_rs.demo`` (or ``make demo``). It counts the primes below a
limit, split into N shares, three ways:

1. sequentially, in this thread;
2. in N threads of this interpreter, which take turns holding the one GIL;
3. in N threads that each drive their own subinterpreter, through the low-level API
   (:meth:`Subinterpreter.create`, :meth:`Subinterpreter.call`): N GILs, so truly parallel.

The limit is calibrated so that the sequential run takes about ``--seconds`` (default 1.5 s);
``--limit`` sets it directly. N defaults to ``os.cpu_count()``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence

from subinterp_rs import Subinterpreter

__all__ = ["count_primes", "count_primes_share", "main"]


def count_primes(start: int, stop: int) -> int:
    """The number of primes in ``range(start, stop)``, by trial division (pure Python)."""
    count = 0
    for n in range(max(start, 2), stop):
        if n % 2 == 0:
            count += n == 2
            continue
        d = 3
        while d * d <= n:
            if n % d == 0:
                break
            d += 2
        else:
            count += 1
    return count


def count_primes_share(limit: int, index: int, workers: int, block: int = 1000) -> int:
    """Worker ``index`` of ``workers``: the primes below ``limit`` in its blocks.

    ``range(limit)`` is cut into blocks of ``block`` numbers dealt out in turn (block ``j``
    to worker ``j % workers``), so every worker gets a fair share of the large, expensive
    numbers. Defined at module level so that a subinterpreter can import it:
    :meth:`Subinterpreter.call` pickles it by reference (``subinterp_rs.demo.count_primes_share``).
    """
    total = 0
    for lo in range(index * block, limit, workers * block):
        total += count_primes(lo, min(lo + block, limit))
    return total


def _shares(limit: int, workers: int) -> list[tuple[int, int, int]]:
    return [(limit, i, workers) for i in range(workers)]


_print_lock = threading.Lock()


def _progress(label: str, msg: str) -> None:
    with _print_lock:  # whole lines, even from several threads
        print(f"  [{label}] {msg}", flush=True)


def _calibrate(seconds: float, start: int = 20_000, min_took: float = 0.1) -> int:
    """A limit for which ``count_primes(0, limit)`` takes about ``seconds`` here: timed from
    ``start``, doubled until a run takes ``min_took``, then scaled."""
    limit = start
    while True:
        t0 = time.perf_counter()
        count_primes(0, limit)
        took = time.perf_counter() - t0
        if took >= min_took:
            break
        limit *= 2
    # Trial division costs about n**1.5 / log(n) for numbers up to n: close enough to n**1.4.
    return max(limit, int(limit * (seconds / took) ** (1 / 1.4)))


def run_sequential(shares: Sequence[tuple[int, int, int]]) -> int:
    total = 0
    for i, share in enumerate(shares):
        total += count_primes_share(*share)
        _progress("sequential", f"share {i + 1}/{len(shares)} done")
    return total


def _in_threads(label: str, n: int, work: Callable[[int], int]) -> int:
    """Run ``work(i)`` for ``i`` in ``range(n)`` in ``n`` threads; the sum of the results."""
    results: list[int | None] = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            results[i] = work(i)
            _progress(label, f"worker {i + 1}/{n} done")
        except BaseException as exc:  # reported in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), name=f"{label}-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(r for r in results if r is not None)


def run_threads(shares: Sequence[tuple[int, int, int]]) -> int:
    return _in_threads("threads", len(shares), lambda i: count_primes_share(*shares[i]))


def run_subinterpreters(
    shares: Sequence[tuple[int, int, int]], interps: Sequence[Subinterpreter]
) -> int:
    return _in_threads(
        "subinterpreters", len(shares), lambda i: interps[i].call(count_primes_share, *shares[i])
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m subinterp_rs.demo",
        description="CPU-bound pure Python in N subinterpreters vs N threads vs sequential.",
    )
    parser.add_argument(
        "-n",
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="number of threads / subinterpreters (default: os.cpu_count())",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=1.5,
        help="calibrate the job to take about this long sequentially (default 1.5)",
    )
    parser.add_argument("--limit", type=int, help="count the primes below LIMIT (no calibration)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    n: int = args.workers
    print(
        f"subinterp_rs demo: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {n} workers",
        flush=True,
    )
    if args.limit is None:
        print(f"calibrating a job of about {args.seconds:g} s ...", flush=True)
        limit = _calibrate(args.seconds)
    else:
        limit = args.limit
    shares = _shares(limit, n)
    print(f"job: count the primes below {limit:,}, in {n} shares", flush=True)

    print("1/3 sequential, one thread:", flush=True)
    t0 = time.perf_counter()
    expected = run_sequential(shares)
    t_seq = time.perf_counter() - t0

    print(f"2/3 {n} threads in one interpreter (one shared GIL):", flush=True)
    t0 = time.perf_counter()
    got_threads = run_threads(shares)
    t_threads = time.perf_counter() - t0

    print(f"3/3 {n} subinterpreters, each driven by its own thread (one GIL each):", flush=True)
    t0 = time.perf_counter()
    interps = [Subinterpreter.create() for _ in range(n)]
    _progress("subinterpreters", f"created {n} in {time.perf_counter() - t0:.3f} s")
    try:
        # Warm up: the first call imports this module in each interpreter.
        _in_threads("warm-up", n, lambda i: interps[i].call(count_primes, 0, 0))
        t_setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        got_interps = run_subinterpreters(shares, interps)
        t_interps = time.perf_counter() - t0
    finally:
        for si in interps:
            si.close()

    ok = expected == got_threads == got_interps
    width = max(len(f"{n} subinterpreters"), len("sequential"))
    print()
    print(f"{'sequential':<{width}}  {t_seq:7.3f} s   1.00x   ({expected:,} primes)")
    print(f"{f'{n} threads':<{width}}  {t_threads:7.3f} s   {t_seq / t_threads:4.2f}x")
    print(
        f"{f'{n} subinterpreters':<{width}}  {t_interps:7.3f} s   {t_seq / t_interps:4.2f}x"
        f"   (+ {t_setup:.3f} s to create them and import the job in each)"
    )
    if ok:
        print("all three agree on the result")
        return 0
    print(f"MISMATCH: sequential {expected}, threads {got_threads}, subinterpreters {got_interps}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
