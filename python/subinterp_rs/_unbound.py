"""The ``UNBOUND*`` markers of the PEP 734 facade's queues: what ``Queue.get()`` does with an
item whose interpreter was destroyed (the stdlib's ``concurrent.interpreters._crossinterp``),
and their mapping onto the native module's flags.
"""

from __future__ import annotations

from typing import Final, final

from . import _native_api
from ._errors import ItemInterpreterDestroyed

__all__ = [
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "UnboundItem",
    "UnboundOp",
    "resolve_unbound",
    "serialize_unbound",
    "unbound_from_flag",
]

_MODULE: Final = "subinterp_rs.interpreters"


@final
class UnboundItem:
    """Represents a queue item no longer bound to an interpreter: ``UNBOUND``.

    An item is unbound when the interpreter that put it in the queue is destroyed.
    ``Queue.get()`` returns ``UNBOUND`` in its place (the default behaviour). There is one
    instance: ``UnboundItem()`` returns it.
    """

    __slots__ = ()

    def __new__(cls) -> UnboundItem:
        return UNBOUND

    def __repr__(self) -> str:
        return f"{_MODULE}.UNBOUND"

    def __reduce__(self) -> str:
        return "UNBOUND"

    def __copy__(self) -> UnboundItem:
        return self

    def __deepcopy__(self, memo: object) -> UnboundItem:
        return self


@final
class UnboundOp:
    """A ``unbounditems`` policy other than ``UNBOUND``: ``UNBOUND_ERROR`` or
    ``UNBOUND_REMOVE``. There is one instance of each."""

    __slots__ = ("_name",)

    _name: str

    def __new__(cls, name: str) -> UnboundOp:
        """``UnboundOp("UNBOUND_ERROR")`` is ``UNBOUND_ERROR``; likewise ``UNBOUND_REMOVE``."""
        try:
            return _UNBOUND_OPS[name]
        except KeyError:
            raise ValueError(
                f"unknown unbound op {name!r}: use {_MODULE}.UNBOUND_ERROR or "
                f"{_MODULE}.UNBOUND_REMOVE"
            ) from None

    @classmethod
    def _make(cls, name: str) -> UnboundOp:
        self = object.__new__(cls)
        self._name = name
        _UNBOUND_OPS[name] = self
        return self

    def __repr__(self) -> str:
        return f"{_MODULE}.{self._name}"

    def __reduce__(self) -> str:
        return self._name

    def __copy__(self) -> UnboundOp:
        return self

    def __deepcopy__(self, memo: object) -> UnboundOp:
        return self


_UNBOUND_OPS: dict[str, UnboundOp] = {}

UNBOUND: Final[UnboundItem] = object.__new__(UnboundItem)
"""``get()`` returns this in place of an item whose interpreter was destroyed."""
UNBOUND_ERROR: Final[UnboundOp] = UnboundOp._make("UNBOUND_ERROR")
"""``get()`` raises ``ItemInterpreterDestroyed`` for an item whose interpreter was destroyed."""
UNBOUND_REMOVE: Final[UnboundOp] = UnboundOp._make("UNBOUND_REMOVE")
"""An item whose interpreter is destroyed is removed from the queue at once."""


def serialize_unbound(unbounditems: object) -> int:
    """The native flag of an ``unbounditems`` value (``NotImplementedError`` like the stdlib
    for anything else)."""
    if unbounditems is UNBOUND:
        return _native_api.UNBOUND_REPLACE
    if unbounditems is UNBOUND_ERROR:
        return _native_api.UNBOUND_ERROR
    if unbounditems is UNBOUND_REMOVE:
        return _native_api.UNBOUND_REMOVE
    raise NotImplementedError(
        f"unsupported unbound replacement op {unbounditems!r}; use UNBOUND, UNBOUND_ERROR "
        "or UNBOUND_REMOVE (from subinterp_rs.interpreters)"
    )


def unbound_from_flag(flag: int) -> UnboundItem | UnboundOp:
    """The ``unbounditems`` value of a native flag."""
    if flag == _native_api.UNBOUND_REPLACE:
        return UNBOUND
    if flag == _native_api.UNBOUND_ERROR:
        return UNBOUND_ERROR
    if flag == _native_api.UNBOUND_REMOVE:
        return UNBOUND_REMOVE
    raise NotImplementedError(f"unsupported unbound replacement op {flag!r}")


def resolve_unbound(flag: int) -> UnboundItem:
    """What ``get()`` gives for an unbound item of this flag: ``UNBOUND``, or raise."""
    if flag == _native_api.UNBOUND_REPLACE:
        return UNBOUND
    if flag == _native_api.UNBOUND_ERROR:
        raise ItemInterpreterDestroyed("item's original interpreter destroyed")
    # UNBOUND_REMOVE items never come out of a queue.
    raise NotImplementedError(f"unsupported unbound replacement op {flag!r}")
