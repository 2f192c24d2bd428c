"""A producer/consumer pipeline between interpreters over PEP 734 queues.

    producer interpreter --tasks--> K worker interpreters --results--> main interpreter

Queues are shareable: passing one to ``interp.call_in_thread(func, queue, ...)`` gives the
function in the other interpreter a handle to the same queue. Items cross as
interpreter-neutral data (ints, strings, tuples of them, None here); ``tasks`` is bounded, so
the producer waits whenever the workers fall behind. Each worker answers ``None`` once it has
seen the stop marker, so the main interpreter knows when everything has arrived.

    python examples/pipeline.py [--items N] [--workers K]
"""

from __future__ import annotations

import argparse
import os
import time

from subinterp_rs import interpreters


def produce(tasks: interpreters.Queue, count: int, workers: int) -> None:
    """Runs in the producer interpreter: the numbers 1..count, then one stop marker a worker."""
    for n in range(1, count + 1):
        tasks.put(n)
    for _ in range(workers):
        tasks.put(None)


def transform(tasks: interpreters.Queue, results: interpreters.Queue) -> None:
    """Runs in each worker interpreter: the length of the Collatz chain of every number."""
    while True:
        n = tasks.get()
        if n is None:
            results.put(None)
            return
        x, steps = n, 0
        while x != 1:
            x = x // 2 if x % 2 == 0 else 3 * x + 1
            steps += 1
        results.put((n, steps))


def main() -> int:
    parser = argparse.ArgumentParser(description="A pipeline between interpreters.")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    args = parser.parse_args()
    count: int = args.items
    k: int = args.workers

    tasks = interpreters.create_queue(maxsize=64)
    results = interpreters.create_queue()
    producer = interpreters.create()
    workers = [interpreters.create() for _ in range(k)]
    print(f"pipeline: 1 producer -> {k} workers -> main, {count:,} items", flush=True)

    t0 = time.perf_counter()
    threads = [producer.call_in_thread(produce, tasks, count, k)]
    threads += [w.call_in_thread(transform, tasks, results) for w in workers]
    steps: dict[int, int] = {}
    finished = 0
    while finished < k:
        item = results.get(timeout=60)  # QueueEmpty if a stage died
        if item is None:
            finished += 1
            print(f"  worker done ({finished}/{k})", flush=True)
            continue
        n, s = item
        steps[n] = s
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    for interp in (producer, *workers):
        interp.close()

    print(f"processed {len(steps):,} items in {took:.3f} s")
    if sorted(steps) != list(range(1, count + 1)):
        print("MISSING OR DUPLICATE ITEMS")
        return 1
    longest = max(steps, key=lambda n: (steps[n], -n))
    print(f"longest Collatz chain below {count + 1:,}: {longest:,} with {steps[longest]} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
