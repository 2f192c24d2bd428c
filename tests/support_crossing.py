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
