"""Functions for tests/test_crossing_data.py that cross into subinterpreters by name.

Not a test module: subinterpreters import it (pytest puts tests/ on sys.path, and they
inherit it), so it imports only the standard library.
"""

from __future__ import annotations

from typing import Any


def identity(x: Any) -> Any:
    """``x`` itself (what crosses back is a copy of what crossed in)."""
    return x


def ids_inside(x: Any) -> tuple[bool, bool]:
    """For ``[a, a, c]`` with ``c = [c]``: whether both ``a`` are one object, whether ``c``
    holds itself, as seen inside."""
    return x[0] is x[1], x[2][0] is x[2]


def mutate(x: list[Any]) -> list[Any]:
    """Appends to ``x`` and returns it (the caller's list must not change)."""
    x.append("inside")
    return x


def big_list(n: int) -> list[int]:
    """``list(range(n))``."""
    return list(range(n))


def nested(depth: int) -> list[Any]:
    """``depth`` lists, each holding the next."""
    out: list[Any] = []
    for _ in range(depth):
        out = [out]
    return out


def depth_of(x: Any) -> int:
    """How many lists are nested in ``x`` (as :func:`nested` made it)."""
    n = 0
    while x:
        x = x[0]
        n += 1
    return n


def class_of_main() -> object:
    """An instance of a class defined in this interpreter's ``__main__`` only (it cannot be
    unpickled in the caller's)."""
    import __main__

    ns: dict[str, Any] = {}
    exec("class OnlyHere:\n    pass\n", __main__.__dict__, ns)
    cls = ns["OnlyHere"]
    cls.__module__ = "__main__"
    __main__.OnlyHere = cls
    return [cls()]


def lookups(d: dict[str, int], keys: list[str]) -> list[int]:
    """``[d[k] for k in keys]``."""
    return [d[k] for k in keys]


_last: list[str] = []


def keys_as_last_time(d: dict[str, int]) -> list[bool]:
    """For each key of ``d``, whether it is the very object that was that key (by position)
    in the dict of the previous call (an interned key found again)."""
    global _last
    prev, _last = _last, list(d)
    return [a is b for a, b in zip(prev, d, strict=False)]


class Text(str):
    """A ``str`` subclass: it crosses by pickle (inside containers too)."""


def identity_of(x: Any) -> Any:
    """A copy of ``x`` made inside (by ``copy.deepcopy``), so that what crosses back is an
    object of this interpreter with its own reference counts."""
    import copy

    return copy.deepcopy(x)


_last_items: list[Any] = []


def items_as_last_time(xs: list[Any]) -> list[bool]:
    """For each item of ``xs``, whether it is the very object that was that item (by position)
    in the list of the previous call (an interned scalar found again)."""
    global _last_items
    prev, _last_items = _last_items, list(xs)
    return [a is b for a, b in zip(prev, xs, strict=False)]


def inner_as_last_time(xs: list[Any]) -> list[bool]:
    """For each item of ``xs`` (a container), whether its first item is the very object that
    was there in the previous call."""
    global _last_inner
    prev, _last_inner = _last_inner, [x[0] for x in xs]
    return [a is b for a, b in zip(prev, _last_inner, strict=False)]


_last_inner: list[Any] = []


def mutate_inner(xs: list[tuple[Any, list[Any]]]) -> list[tuple[Any, list[Any]]]:
    """Appends to the list inside each ``(x, list)`` of ``xs`` and returns ``xs``."""
    for _, inner in xs:
        inner.append("inside")
    return xs


def dict_facts(d: dict[str, Any]) -> tuple[int, list[str], Any, bool]:
    """Length, first 5 keys, first value, and whether the collector tracks ``d``."""
    import gc

    return len(d), list(d)[:5], next(iter(d.values())), gc.is_tracked(d)


def mutate_dict(d: dict[str, Any]) -> dict[str, Any]:
    """Changes ``d`` and what it holds, and returns it."""
    del d["alpha"]
    d["beta"].append("inside")
    d["gamma"]["y"] = 4
    d["new"] = 5
    return d


def cycle_through(box: list[dict[str, Any]]) -> tuple[bool, bool]:
    """Takes the dict out of ``box``, makes it hold itself, drops it, and tells whether the
    collector freed it."""
    import gc
    import weakref

    class Marker:
        pass

    d = box.pop()
    d["self"] = d
    d["marker"] = m = Marker()
    ref = weakref.ref(m)
    del d, m
    gc.collect()
    return ref() is None, gc.isenabled()


def float_bits_deep(x: Any) -> Any:
    """``x`` with every float replaced by its IEEE 754 bits and each tuple by a list of
    ``(type name, item)``: equal for two values only if their types and bits are."""
    import struct

    if isinstance(x, float):
        return ("float", struct.unpack("<Q", struct.pack("<d", x))[0])
    if isinstance(x, (tuple, list)):
        return (type(x).__name__, [float_bits_deep(i) for i in x])
    return (type(x).__name__, x)


def float_bits(xs: list[float]) -> list[int]:
    """The IEEE 754 bits of each float of ``xs`` (NaN payloads and the sign of zero too)."""
    import struct

    return [struct.unpack("<Q", struct.pack("<d", x))[0] for x in xs]
