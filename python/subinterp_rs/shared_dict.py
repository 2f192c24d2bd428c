"""``SharedDict``: a concurrent mapping of the process, which every interpreter opens by name.

The mapping lives in the native runtime, not in any interpreter: its keys and values are kept
as plain data, so any interpreter (main or a subinterpreter, in any thread) reads and updates
it, and closing an interpreter loses nothing. Values cross as data, without pickle: ``None``,
``bool``, ``int``, ``float``, ``str``, ``bytes``, tuples of these and the built-in containers
of them (``list``, ``dict``, ``set``, ...; exact types); keys are ``str``, ``int``
(64 bits; ``True``/``False`` are the keys ``1``/``0``, as in a ``dict``), ``bytes`` or tuples of
these. Anything else raises :class:`~subinterp_rs.NotShareableError`. Entries are spread over
sharded locks, so interpreters in different threads working on different keys do not wait for
each other::

    from subinterp_rs import SharedDict

    hits = SharedDict("hits")
    hits.increment("page")          # atomic, from any interpreter
    hits["config"] = ("fast", 3)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, overload

from . import _native_api

__all__ = ["SharedDict"]

_MISSING: Final[Any] = object()


class SharedDict:
    """The shared dict named ``name``, created (empty, holding at most ``maxsize`` keys, 0:
    no bound) if no open one has that name.

    Opening the same name in any interpreter of the process gives the same mapping. It stays
    until :meth:`close` (by any interpreter), not bound to the interpreters that use it. Each
    operation is atomic; :meth:`increment`, :meth:`compare_and_set` and :meth:`setdefault`
    read and write in one step. ``len()`` and iteration are snapshots (taken shard by shard).
    The object itself crosses into other interpreters by name (pickle).

    Raises:
        TypeError: ``name`` is not a ``str`` or ``maxsize`` not an ``int``.
        ValueError: ``name`` is empty or ``maxsize`` negative.
    """

    __slots__ = ("_id", "_maxsize", "_name")

    def __init__(self, name: str, maxsize: int = 0) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if not name:
            raise ValueError("name must not be empty")
        if not isinstance(maxsize, int) or isinstance(maxsize, bool):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize}")
        self._name = name
        self._id, self._maxsize = _native_api.shareddict_open(name, maxsize)

    @property
    def name(self) -> str:
        """The name it was opened by."""
        return self._name

    @property
    def maxsize(self) -> int:
        """The most keys it holds (0: no bound), set by whoever created it."""
        return self._maxsize

    @property
    def closed(self) -> bool:
        """Whether it was closed (by any interpreter)."""
        return _native_api.shareddict_is_closed(self._id)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self)} keys"
        return f"<SharedDict {self._name!r} {state}>"

    def __reduce__(self) -> tuple[type[SharedDict], tuple[str, int]]:
        return (SharedDict, (self._name, self._maxsize))

    def __getitem__(self, key: Any) -> Any:
        found, value = _native_api.shareddict_get(self._id, key)
        if not found:
            raise KeyError(key)
        return value

    @overload
    def get(self, key: Any) -> Any: ...
    @overload
    def get(self, key: Any, default: Any) -> Any: ...
    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        found, value = _native_api.shareddict_get(self._id, key)
        return value if found else default

    def __contains__(self, key: object) -> bool:
        found, _ = _native_api.shareddict_get(self._id, key)
        return found

    def __setitem__(self, key: Any, value: Any) -> None:
        """Raises :class:`~subinterp_rs.SharedDictFullError` for a new key at ``maxsize``."""
        _native_api.shareddict_set(self._id, key, value)

    def __delitem__(self, key: Any) -> None:
        found, _ = _native_api.shareddict_pop(self._id, key)
        if not found:
            raise KeyError(key)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (``default`` if it has none, else
        ``KeyError``)."""
        found, value = _native_api.shareddict_pop(self._id, key)
        if found:
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``, set to ``default`` first if it has none (atomically)."""
        return _native_api.shareddict_setdefault(self._id, key, default)

    def compare_and_set(self, key: Any, expected: Any, new: Any) -> bool:
        """Set ``key`` to ``new`` if its value is ``expected`` now, atomically; whether it
        did. ``expected=SharedDict.ABSENT``: only if ``key`` has no value. Values compare as
        data: same type and value (``1``, ``1.0`` and ``True`` differ here)."""
        absent = expected is SharedDict.ABSENT
        return _native_api.shareddict_compare_and_set(
            self._id, key, None if absent else expected, new, absent
        )

    def increment(self, key: Any, delta: int | float = 1, default: int | float = 0) -> Any:
        """Add ``delta`` to the number at ``key`` (``default`` if it has none) atomically and
        return the new value. ``TypeError`` if the value is not an ``int`` or ``float``,
        ``OverflowError`` if an ``int`` sum does not fit 64 bits."""
        return _native_api.shareddict_increment(self._id, key, delta, default)

    def __len__(self) -> int:
        return _native_api.shareddict_len(self._id)

    def items(self) -> list[tuple[Any, Any]]:
        """A snapshot of the ``(key, value)`` pairs."""
        return _native_api.shareddict_items(self._id)

    def keys(self) -> list[Any]:
        """A snapshot of the keys."""
        return [k for k, _ in self.items()]

    def values(self) -> list[Any]:
        """A snapshot of the values."""
        return [v for _, v in self.items()]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def to_dict(self) -> dict[Any, Any]:
        """A snapshot as a ``dict``."""
        return dict(self.items())

    def update(self, other: dict[Any, Any] | None = None, /, **kwargs: Any) -> None:
        """Set each key of ``other`` and ``kwargs`` (one at a time, not atomically)."""
        for key, value in {**(other or {}), **kwargs}.items():
            self[key] = value

    def clear(self) -> None:
        """Remove every key."""
        _native_api.shareddict_clear(self._id)

    def close(self) -> None:
        """Close it for every interpreter of the process: its entries are dropped, and every
        handle then raises :class:`~subinterp_rs.SharedDictClosedError`. Opening the name
        again makes a new, empty one."""
        _native_api.shareddict_close(self._id)

    ABSENT: Final[Any] = _MISSING
    """For :meth:`compare_and_set`: the key has no value."""
