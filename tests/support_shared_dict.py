"""Tasks of tests/test_shared_dict.py, run inside worker interpreters (imported there by
name)."""

from __future__ import annotations

from subinterp_rs import SharedDict


def increment_many(name: str, keys: tuple[str, ...], rounds: int) -> int:
    """``rounds`` increments of each key of shared dict ``name``; how many it made."""
    d = SharedDict(name)
    for _ in range(rounds):
        for key in keys:
            d.increment(key)
    return rounds * len(keys)


def cas_increment_many(name: str, key: str, rounds: int) -> int:
    """``rounds`` increments of ``key`` by compare-and-set loops; how many retries it took."""
    d = SharedDict(name)
    d.setdefault(key, 0)
    retries = 0
    for _ in range(rounds):
        while True:
            current = d[key]
            if d.compare_and_set(key, current, current + 1):
                break
            retries += 1
    return retries


def write_and_leave(name: str, n: int) -> int:
    """Write ``n`` keys into shared dict ``name`` (the caller then closes this interpreter)."""
    d = SharedDict(name)
    for i in range(n):
        d[f"k{i}"] = (i, float(i), str(i), bytes([i % 256]))
    return len(d)


def get_by_name(name: str, key: str) -> object:
    """``SharedDict(name)[key]``."""
    return SharedDict(name)[key]


def increment_through(d: SharedDict, key: str) -> object:
    """``d.increment(key)`` with a handle that crossed as an argument."""
    return d.increment(key)
