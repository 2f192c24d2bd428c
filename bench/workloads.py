"""What the benchmarks run in other interpreters, threads and processes.

Module level and importable by name (``bench.workloads.add``), so that every kind of worker
finds them: a subinterpreter imports this module, a ``multiprocessing`` child too. Keep its
imports to modules every isolated interpreter can load (the standard library's pure-Python
ones): it is imported inside each subinterpreter a case uses.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = [
    "PickledDict",
    "PickledList",
    "add",
    "calibrate_primes",
    "count_primes",
    "mp_idle",
    "mp_queue_consumer",
    "mp_worker",
    "nbytes",
    "noargs",
    "size_of",
]


def add(a: int, b: int) -> int:
    """The round-trip call: two small ints in, one out."""
    return a + b


def size_of(value: Any) -> int:
    """What a crossing call does inside: ``len(value)`` (the stdlib's ``call`` needs a
    module-level function)."""
    return len(value)


class PickledDict(dict[str, int]):
    """A ``dict`` subclass: it crosses by pickle (ours and the stdlib's), the reference for the
    built-in containers crossing as data."""


class PickledList(list[tuple[int, str, float]]):
    """A ``list`` subclass: it crosses by pickle, as :class:`PickledDict`."""


def noargs() -> None:
    """For the 3.13 stdlib's ``call()``, which takes no arguments and returns nothing; also the
    target of started-and-joined threads and processes."""


def nbytes(buf: bytes | memoryview) -> int:
    """What a buffer call does inside: look at the buffer's length."""
    return len(buf)


def count_primes(limit: int) -> int:
    """CPU-bound pure Python: the number of primes below ``limit``, by trial division."""
    count = 0
    for n in range(2, limit):
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


def calibrate_primes(seconds: float, start: int = 10_000, min_took: float = 0.05) -> int:
    """A ``limit`` for which ``count_primes(limit)`` takes about ``seconds`` in this thread:
    timed from ``start``, doubled until one run takes ``min_took``, then scaled (trial division
    up to n costs about n**1.4 here)."""
    limit = start
    while True:
        t0 = time.perf_counter()
        count_primes(limit)
        took = time.perf_counter() - t0
        if took >= min_took:
            break
        limit *= 2
    return max(limit, int(limit * (seconds / took) ** (1 / 1.4)))


def mp_worker(conn: Connection) -> None:
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


def mp_queue_consumer(q: Any, done: Any) -> None:
    """A process that takes batches from ``q``: a count, then that many items; it says
    ``"done"`` on ``done`` after each batch and stops at ``None``."""
    done.put("ready")
    while True:
        count = q.get()
        if count is None:
            break
        for _ in range(count):
            q.get()
        done.put("done")


def mp_idle(conn: Connection) -> None:
    """An idle process for the memory case: sends its pid, then waits."""
    conn.send(os.getpid())
    conn.recv()
