"""Subinterpreters, high level: a drop-in for the 3.14 stdlib ``concurrent.interpreters``
(PEP 734) on Python 3.12, 3.13, 3.14 and 3.15.

Replace ``from concurrent import interpreters`` with ``from subinterp_rs import interpreters``
and the program runs the same way::

    from subinterp_rs import interpreters

    interp = interpreters.create()          # isolated: its own GIL
    interp.exec("import math; print(math.pi)")
    assert interp.call(divmod, 17, 5) == (3, 2)
    queue = interpreters.create_queue()
    interp.prepare_main(queue=queue)
    interp.exec("queue.put('hello')")
    assert queue.get(timeout=1.5) == "hello"

Differences from the stdlib, all deliberate: queue timeouts are floats honoured exactly
(the stdlib truncates them to whole seconds and polls every 10 ms), and blocking queue calls
wait natively.
"""

from __future__ import annotations

import builtins
import contextlib
import threading
import weakref
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any, Final, ParamSpec, Self, TypeVar

from . import _native_api
from . import _queues as _queues  # the stdlib has the queue classes there too
from ._arguments import check_id, script_for_exec
from ._errors import ExcInfo as ExcInfo
from ._errors import (
    ExecutionFailed,
    InterpreterError,
    InterpreterNotFoundError,
    NotShareableError,
    QueueEmpty,
    QueueFull,
)
from ._errors import ItemInterpreterDestroyed as ItemInterpreterDestroyed
from ._errors import QueueError as QueueError
from ._errors import QueueNotFoundError as QueueNotFoundError
from ._preimport import import_in_main_first, setup_for_new_interpreter
from ._queues import Queue
from ._queues import create as create_queue
from ._subinterpreter import InterpreterConfig
from ._unbound import UNBOUND as UNBOUND
from ._unbound import UNBOUND_ERROR as UNBOUND_ERROR
from ._unbound import UNBOUND_REMOVE as UNBOUND_REMOVE
from ._unbound import UnboundItem as UnboundItem

# The same names as the stdlib's; UNBOUND*, QueueError, QueueNotFoundError and
# ItemInterpreterDestroyed are here too (the stdlib has them in its _queues module).
__all__ = [
    "ExecutionFailed",
    "Interpreter",
    "InterpreterError",
    "InterpreterNotFoundError",
    "NotShareableError",
    "Queue",
    "QueueEmpty",
    "QueueFull",
    "create",
    "create_queue",
    "get_current",
    "get_main",
    "is_shareable",
    "list_all",
]


def create() -> Interpreter:
    """Return a new (idle) Python interpreter.

    It is isolated (its own GIL, allocator and module state; threads allowed, no fork, exec
    or daemon threads) and lives until ``close()``, or until the last ``Interpreter`` object
    for it is gone, or until the process exits.
    """
    global _creating
    import_in_main_first()
    with _known_lock:
        _creating += 1
    try:
        # The native side starts it with one handle reference (the stdlib's `reqrefs`), so
        # nothing elsewhere can close it before our object owns a reference of its own.
        setup = setup_for_new_interpreter(isolated=True)
        id = _native_api.create(InterpreterConfig(), _native_api.WHENCE_STDLIB, setup)
        try:
            interp = Interpreter(id, _ownsref=True)
        except BaseException:
            with contextlib.suppress(InterpreterError):
                _native_api.destroy(id)
            raise
        _native_api.decref(id)  # the object holds its own now
        return interp
    finally:
        with _known_lock:
            _creating -= 1
            if not _creating:
                _creations.notify_all()


def list_all() -> list[Interpreter]:
    """Return all existing interpreters."""
    interps = []
    for id, whence in _native_api.list_all():
        try:
            interps.append(Interpreter(id, _whence=whence))
        except InterpreterNotFoundError:
            continue  # it was destroyed after it was listed
    return interps


def get_current() -> Interpreter:
    """Return the currently running interpreter."""
    id, whence = _native_api.get_current()
    return Interpreter(id, _whence=whence)


def get_main() -> Interpreter:
    """Return the main interpreter."""
    id, whence = _native_api.get_main()
    return Interpreter(id, _whence=whence)


def is_shareable(obj: object) -> bool:
    """Return ``True`` if the object's data may be shared between interpreters without
    pickling (``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, tuples of these,
    buffers and queues)."""
    return _native_api.is_shareable(obj)


_P = ParamSpec("_P")
_R = TypeVar("_R")

_known: weakref.WeakValueDictionary[int, Interpreter] = weakref.WeakValueDictionary()
_known_lock = threading.RLock()
# A new interpreter has no handle reference until create() gives it one: until then, an
# Interpreter object made for it elsewhere in this interpreter (list_all() in another thread)
# must not take and drop one, which would destroy it. Such objects wait for create() calls.
_creations = threading.Condition(_known_lock)
_creating = 0


class Interpreter:
    """A single Python interpreter.

    Attributes:

    ``id`` - the unique process-global ID number for the interpreter
    ``whence`` - indicates where the interpreter was created

    There is one ``Interpreter`` object per interpreter id in each interpreter. If the
    interpreter wasn't created by this module (``create()``, here or in the stdlib) then any
    method that modifies it fails: ``close()``, ``prepare_main()``, ``exec()`` and
    ``call()``.
    """

    _WHENCE_TO_STR: Final[Mapping[int, str]] = {
        _native_api.WHENCE_UNKNOWN: "unknown",
        _native_api.WHENCE_RUNTIME: "runtime init",
        _native_api.WHENCE_LEGACY_CAPI: "legacy C-API",
        _native_api.WHENCE_CAPI: "C-API",
        _native_api.WHENCE_XI: "cross-interpreter C-API",
        _native_api.WHENCE_STDLIB: "_interpreters module",
    }

    _id: int
    _whence: int
    _ownsref: bool
    _dead: bool

    def __new__(cls, id: int, /, _whence: int | None = None, _ownsref: bool | None = None) -> Self:
        # There is only one instance for any given ID.
        id = check_id(id, "interpreter")
        if _whence is None:
            # InterpreterNotFoundError if it does not exist (any more).
            _whence = _native_api.WHENCE_STDLIB if _ownsref else _native_api.whence(id)
        with _known_lock:
            known = _known.get(id)
            if known is not None and (known._dead or not isinstance(known, cls)):
                known = None
            if _ownsref is None:
                if known is not None:
                    return known
                # Like the stdlib: an object for an interpreter that this module created
                # keeps it alive. (One the stdlib's own _interpreters made is not ours.)
                _ownsref = _whence == _native_api.WHENCE_STDLIB and _native_api.is_owned(id)
                if not _ownsref and _whence == _native_api.WHENCE_STDLIB:
                    # Not owned any more: gone (InterpreterNotFoundError here), listed, then
                    # destroyed by the collector while an earlier object was made
                    # (gh-155997). Main's and C-API ones are never collected so.
                    _native_api.whence(id)
                while _ownsref and _creating:
                    _creations.wait()
                    known = _known.get(id)
                    if known is not None and not known._dead and isinstance(known, cls):
                        return known
            elif known is not None:
                if _ownsref and not known._ownsref:
                    # create()'s interpreter got an object before create() got here (with
                    # what list_all() said while it was being made): make it the owner.
                    _native_api.incref(id)
                    known._ownsref = True
                    known._whence = _native_api.WHENCE_STDLIB
                return known
            # Allocate first, as the stdlib does: an allocation can run the cyclic collector,
            # which may destroy this very interpreter (its last object was in a cycle); the
            # incref below then says it is gone (list_all() skips it, gh-155997).
            self = super().__new__(cls)
            if _ownsref:
                _native_api.incref(id)  # InterpreterNotFoundError if it does not exist
            self._id = id
            self._whence = _whence
            self._ownsref = bool(_ownsref)
            self._dead = False
            _known[id] = self
            return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._id})"

    def __hash__(self) -> int:
        return hash(self._id)

    def __del__(self) -> None:
        self._dead = True
        self._decref()

    # for pickling (and crossing to another interpreter):
    def __reduce__(self) -> tuple[type[Self], tuple[int]]:
        return (type(self), (self._id,))

    def _decref(
        self,
        *,
        # Module globals may be gone when this runs at interpreter exit (gh-135729).
        _not_found: type[Exception] = InterpreterNotFoundError,
        _interp_decref: Callable[[int], None] = _native_api.decref,
    ) -> None:
        if not getattr(self, "_ownsref", False):
            return
        self._ownsref = False
        try:  # noqa: SIM105 (no contextlib: globals may be gone)
            _interp_decref(self._id)
        except _not_found:
            pass

    @property
    def id(self) -> int:
        """The interpreter's process-global id."""
        return self._id

    @property
    def whence(self) -> str:
        """Where the interpreter was created: ``"runtime init"`` (main),
        ``"_interpreters module"`` (``create()``), ``"C-API"``, ``"legacy C-API"``,
        ``"cross-interpreter C-API"`` or ``"unknown"``."""
        return self._WHENCE_TO_STR.get(self._whence, "unknown")

    def is_running(self) -> bool:
        """Return whether or not the identified interpreter is running."""
        return _native_api.is_running(self._id)

    # Everything past here is available only to interpreters created by
    # interpreters.create().

    def _check_ours(self, action: str) -> int:
        if self._whence != _native_api.WHENCE_STDLIB:
            raise InterpreterError(
                f"cannot {action} unrecognized interpreter {self._id} (whence: "
                f"{self.whence}); only interpreters made by interpreters.create() allow it"
            )
        return self._id

    def close(self) -> None:
        """Finalize and destroy the interpreter.

        Like the end of a program, this first waits for the (non-daemon) ``threading``
        threads the interpreter started: they are joined, in this thread, before it is
        finalized. Attempting to destroy the current interpreter, or one that is running,
        results in an :class:`InterpreterError`. An interpreter the stdlib's
        ``_interpreters.create()`` made (whence ``"_interpreters module"``) is closed with
        the stdlib's ``_interpreters.destroy()``, as ``concurrent.interpreters`` does.
        """
        _native_api.destroy(self._check_ours("destroy"))

    def prepare_main(self, ns: Mapping[str, object] | None = None, /, **kwargs: object) -> None:
        """Bind the given values into the interpreter's ``__main__``.

        The values must be shareable (see :func:`is_shareable`); queues are. Raises
        :class:`NotShareableError` otherwise, and then binds nothing.
        """
        values: dict[str, object] = dict(ns, **kwargs) if ns is not None else kwargs
        id = self._check_ours("update __main__ for")
        if not values:
            raise ValueError("prepare_main() needs at least one name to bind, got none")
        for name in values:
            if not isinstance(name, str):
                raise TypeError(f"names to bind must be str, got {name!r}")
            if "\0" in name:
                raise ValueError(f"names to bind cannot contain NUL characters: {name!r}")
        _native_api.set_main_attrs(id, values)

    # The annotations of the public methods are typeshed's for concurrent.interpreters, so
    # mypy checks calls as it does against the stdlib.
    def exec(self, code: str | CodeType | Callable[[], object], /) -> None:
        """Run the given source code in the interpreter.

        This is essentially the same as calling the builtin ``exec`` with this interpreter,
        using the ``__dict__`` of its ``__main__`` module as both globals and locals.
        ``code`` is source (``str``), a function that takes no arguments (its body runs,
        with ``__main__`` as its globals), or a code object.

        There is no return value.

        If the code raises an unhandled exception then an :class:`ExecutionFailed` exception
        is raised, which summarizes the unhandled exception. The actual exception is
        discarded because objects cannot be shared between interpreters.

        This blocks the current Python thread until done. During that time, the previous
        interpreter is allowed to run in other threads.
        """
        id = self._check_ours("exec code for")
        try:
            _native_api.exec(id, script_for_exec(code))
        except ExecutionFailed as failed:
            excinfo = failed.excinfo
        except (InterpreterError, NotShareableError) as exc:
            # Raised from here, as the stdlib's: the same frames in the traceback.
            raise exc.with_traceback(None)  # noqa: B904 (the same exception)
        else:
            return
        # Raised here, outside the handler, as the stdlib's: the same frames and line.
        raise ExecutionFailed(excinfo)

    def _call(
        self, callable: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        id = self._check_ours("make a call in")
        if not builtins.callable(callable):  # (the parameter hides the builtin)
            raise TypeError(f"expected a callable, got {callable!r}")
        try:
            return _native_api.call(id, callable, args, kwargs or None)
        except ExecutionFailed as failed:
            excinfo = failed.excinfo
        except (InterpreterError, NotShareableError) as exc:
            # Raised from here, as the stdlib's: the same frames in the traceback.
            raise exc.with_traceback(None)  # noqa: B904 (the same exception)
        # Raised here, outside the handler, as the stdlib's: the same frames and line.
        raise ExecutionFailed(excinfo)

    def call(self, callable: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """Call the object in the interpreter with given args/kwargs.

        Nearly all callables, args, kwargs, and return values are supported. All
        "shareable" objects are supported, as are "stateless" functions (meaning
        non-closures that do not use any globals). This method will fall back to pickle.

        If the callable raises an exception then the error display (including full
        traceback) is sent back between the interpreters and an :class:`ExecutionFailed`
        exception is raised, much like what happens with :meth:`exec`.
        """
        result: _R = self._call(callable, args, kwargs)
        return result

    def call_in_thread(
        self, callable: Callable[_P, object], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> threading.Thread:
        """Return a new (started) thread that calls the object in the interpreter.

        The return value and any raised exception are discarded.
        """
        t = threading.Thread(target=self._call, args=(callable, args, kwargs))
        t.start()
        return t
