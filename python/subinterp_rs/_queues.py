"""Cross-interpreter queues of the PEP 734 facade (the stdlib's
``concurrent.interpreters._queues``), over the native queue functions.

Unlike the 3.14 stdlib, blocking ``put()``/``get()`` wait natively (GIL released) and honour a
float ``timeout`` exactly: no polling, no truncation to whole seconds.
"""

from __future__ import annotations

import operator
import threading
import weakref
from typing import Any, Self

from . import _native_api
from ._arguments import check_id, check_timeout
from ._errors import (
    ItemInterpreterDestroyed,
    QueueEmpty,
    QueueError,
    QueueFull,
    QueueNotFoundError,
)
from ._unbound import (
    UNBOUND,
    UNBOUND_ERROR,
    UNBOUND_REMOVE,
    UnboundItem,
    UnboundOp,
    resolve_unbound,
    serialize_unbound,
    unbound_from_flag,
)

__all__ = [
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "ItemInterpreterDestroyed",
    "Queue",
    "QueueEmpty",
    "QueueError",
    "QueueFull",
    "QueueNotFoundError",
    "create",
    "list_all",
]


def create(maxsize: int = 0, *, unbounditems: UnboundItem | UnboundOp = UNBOUND) -> Queue:
    """Return a new cross-interpreter queue.

    The queue may be used to pass data safely between interpreters. ``maxsize <= 0`` means
    unbounded. ``unbounditems`` sets the default for :meth:`Queue.put`; see that method for
    the supported values. The default, ``UNBOUND``, replaces the unbound item.
    """
    maxsize = operator.index(maxsize)
    unboundop = serialize_unbound(unbounditems)
    qid = _native_api.queue_create(maxsize, unboundop)
    try:
        self = Queue(qid)
    finally:
        # Queue(qid) took its own handle reference; drop the one queue_create() gave us.
        _native_api.queue_release(qid)
    self._set_unbound(unboundop, unbounditems)
    return self


def list_all() -> list[Queue]:
    """Return a list of all open queues."""
    queues = []
    for qid, unboundop, _ in _native_api.queue_list_all():
        try:
            self = Queue(qid)
        except QueueNotFoundError:
            continue  # released after it was listed
        if self._unbound is None:
            self._set_unbound(unboundop)
        queues.append(self)
    return queues


_known_queues: weakref.WeakValueDictionary[int, Queue] = weakref.WeakValueDictionary()
_known_lock = threading.RLock()


class Queue:
    """A cross-interpreter queue.

    There is one ``Queue`` object per queue id in each interpreter; it holds a handle
    reference to the queue, and the queue (with its items) is freed when the last one goes.
    Queues are shareable: put one in another queue, or pass it to ``prepare_main()`` or
    ``call()``, and the other interpreter gets its own ``Queue`` for the same queue.
    """

    _id: int
    _unbound: tuple[int, UnboundItem | UnboundOp] | None
    _maxsize: int | None
    _released: bool

    def __new__(cls, id: int, /) -> Self:
        # There is only one instance for any given ID.
        id = check_id(id, "queue")
        with _known_lock:
            known = _known_queues.get(id)
            if isinstance(known, cls) and not known._released:
                return known
            _native_api.queue_bind(id)  # QueueNotFoundError if it does not exist
            self = super().__new__(cls)
            self._id = id
            self._unbound = None
            self._maxsize = None
            self._released = False
            _known_queues[id] = self
            return self

    def __del__(
        self,
        *,
        # Module globals may be gone when this runs at interpreter exit (gh-135729).
        _release: Any = _native_api.queue_release,
        _not_found: type[Exception] = QueueNotFoundError,
    ) -> None:
        if getattr(self, "_released", True):
            return
        self._released = True
        try:  # noqa: SIM105 (no contextlib: globals may be gone)
            _release(self._id)
        except _not_found:
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._id})"

    def __hash__(self) -> int:
        return hash(self._id)

    # for pickling (and crossing to another interpreter):
    def __reduce__(self) -> tuple[type[Self], tuple[int]]:
        return (type(self), (self._id,))

    def _set_unbound(
        self, op: int, items: UnboundItem | UnboundOp | None = None
    ) -> tuple[int, UnboundItem | UnboundOp]:
        if items is None:
            items = unbound_from_flag(op)
        unbound = (op, items)
        self._unbound = unbound
        return unbound

    @property
    def id(self) -> int:
        """The queue's process-wide id."""
        return self._id

    @property
    def unbounditems(self) -> UnboundItem | UnboundOp:
        """The default ``unbounditems`` of :meth:`put`, set by ``create_queue()``."""
        unbound = self._unbound
        if unbound is None:
            op, _ = _native_api.queue_get_defaults(self._id)
            unbound = self._set_unbound(op)
        return unbound[1]

    @property
    def maxsize(self) -> int:
        """The most items the queue holds; ``<= 0`` means unbounded."""
        if self._maxsize is None:
            self._maxsize = _native_api.queue_get_maxsize(self._id)
        return self._maxsize

    def empty(self) -> bool:
        """Whether the queue has no items (a snapshot)."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Whether the queue holds ``maxsize`` items (a snapshot)."""
        return _native_api.queue_is_full(self._id)

    def qsize(self) -> int:
        """How many items the queue holds (a snapshot)."""
        return _native_api.queue_get_count(self._id)

    def put(
        self,
        obj: object,
        block: bool = True,
        timeout: float | None = None,
        *,
        unbounditems: UnboundItem | UnboundOp | None = None,
    ) -> None:
        """Add the object to the queue.

        If ``block`` is true, this blocks while the queue is full, for at most ``timeout``
        seconds (a float, honoured exactly) if it is not ``None``, then raises
        :class:`QueueFull`. If ``block`` is false, it raises ``QueueFull`` at once instead.

        The object received through :meth:`get` is a new one, equivalent to the original
        and not sharing any data with it, except for cross-interpreter types (like
        ``Queue``) and ``memoryview``, whose underlying data is shared. Shareable objects
        (see ``interpreters.is_shareable()``) are sent efficiently; other objects are
        pickled.

        ``unbounditems`` controls what :meth:`get` does with the object if the current
        interpreter (calling ``put()``) is destroyed before it is taken:

        * ``None`` (the default): the queue's default, set by ``create_queue()``, usually
          ``UNBOUND``;
        * ``UNBOUND``: ``get()`` returns ``UNBOUND`` in place of the item;
        * ``UNBOUND_ERROR``: ``get()`` raises :class:`ItemInterpreterDestroyed` for it
          (the queue stays usable; the next ``get()`` returns the next item);
        * ``UNBOUND_REMOVE``: the item is removed from the queue at once (so ``put()`` and
          ``get()`` calls no longer balance).
        """
        unboundop = -1 if unbounditems is None else serialize_unbound(unbounditems)
        timeout = check_timeout(timeout) if block else None
        _native_api.queue_put(self._id, obj, unboundop, bool(block), timeout)

    def put_nowait(
        self, obj: object, *, unbounditems: UnboundItem | UnboundOp | None = None
    ) -> None:
        """Like ``put(obj, block=False)``: raise :class:`QueueFull` if the queue is full."""
        unboundop = -1 if unbounditems is None else serialize_unbound(unbounditems)
        _native_api.queue_put(self._id, obj, unboundop, False, None)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Return the next object from the queue.

        If ``block`` is true, this blocks while the queue is empty, for at most ``timeout``
        seconds (a float, honoured exactly) if it is not ``None``, then raises
        :class:`QueueEmpty`. If ``block`` is false, it raises ``QueueEmpty`` at once.

        If the next item's original interpreter has been destroyed, what comes out is
        decided by the ``unbounditems`` it was put with (see :meth:`put`).
        """
        timeout = check_timeout(timeout) if block else None
        obj, unboundop = _native_api.queue_get(self._id, bool(block), timeout)
        if unboundop is not None:
            return resolve_unbound(unboundop)
        return obj

    def get_nowait(self) -> Any:
        """Like ``get(block=False)``: raise :class:`QueueEmpty` if the queue is empty."""
        obj, unboundop = _native_api.queue_get(self._id, False, None)
        if unboundop is not None:
            return resolve_unbound(unboundop)
        return obj


# Queues that cross into this interpreter come out as this class.
_native_api.register_queue_type(Queue)
