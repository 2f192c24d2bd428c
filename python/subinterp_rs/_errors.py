"""Exceptions of subinterp_rs, defined in Python and raised by the native module.

They mirror the 3.14 stdlib ``concurrent.interpreters`` exceptions: same names, same bases,
same ``ExecutionFailed.excinfo`` shape. The native module imports this module (in whichever
interpreter raises) to find the classes, so it must stay importable with no native code.
"""

from __future__ import annotations

import queue
import sys
import types
from typing import TYPE_CHECKING, NamedTuple

__all__ = [
    "ExcInfo",
    "ExcTypeInfo",
    "ExecutionFailed",
    "InterpreterError",
    "InterpreterNotFoundError",
    "ItemInterpreterDestroyed",
    "NotShareableError",
    "QueueEmpty",
    "QueueError",
    "QueueFull",
    "QueueNotFoundError",
    "SharedDictClosedError",
    "SharedDictError",
    "SharedDictFullError",
]


if TYPE_CHECKING or sys.version_info < (3, 14):

    class InterpreterError(Exception):
        """A cross-interpreter operation failed."""

    class InterpreterNotFoundError(InterpreterError):
        """An interpreter was not found (never existed, or already closed)."""

    class NotShareableError(ValueError, TypeError):
        """An object cannot cross to another interpreter (not shareable, and pickle
        failed)."""

else:
    # 3.14+: the stdlib's own classes, as `concurrent.interpreters` re-exports them, so that
    # code mixing this module with the stdlib's (or with `_interpreters`) catches either's
    # errors, and they pickle as `concurrent.interpreters.InterpreterError`. (3.13's
    # `_interpreters` classes claim a module `interpreters` that does not exist: they would not
    # pickle; 3.12 has none.)
    from _interpreters import (
        InterpreterError,
        InterpreterNotFoundError,
        NotShareableError,
    )


class ExcTypeInfo(types.SimpleNamespace):
    """The type of an exception raised in another interpreter: ``__name__``,
    ``__qualname__`` and ``__module__``, like the stdlib's ``excinfo.type``."""

    def __init__(self, name: str, qualname: str, module: str) -> None:
        super().__init__(__name__=name, __qualname__=qualname, __module__=module)

    def __reduce__(self) -> tuple[type[ExcTypeInfo], tuple[str, str, str]]:
        return (type(self), (self.__name__, self.__qualname__, self.__module__))


class ExcInfo(NamedTuple):
    """An uncaught exception of another interpreter, as interpreter-neutral text."""

    type: ExcTypeInfo
    msg: str
    formatted: str
    errdisplay: str


_EXEC_FAILURE_STR = """
{superstr}

Uncaught in the interpreter:

{formatted}
""".strip()


class ExecutionFailed(InterpreterError):
    """An unhandled exception happened during ``exec()`` or ``call()``.

    ``excinfo`` describes it (``type``, ``msg``, ``formatted``, ``errdisplay``); the exception
    object itself stayed in its interpreter, since objects never cross.
    """

    excinfo: ExcInfo

    def __init__(self, excinfo: ExcInfo) -> None:
        msg = excinfo.formatted
        if not msg:
            if excinfo.type and excinfo.msg:
                msg = f"{excinfo.type.__name__}: {excinfo.msg}"
            else:
                msg = excinfo.type.__name__ or excinfo.msg
        super().__init__(msg)
        self.excinfo = excinfo

    def __str__(self) -> str:
        try:
            formatted = self.excinfo.errdisplay
        except Exception:
            return super().__str__()
        return _EXEC_FAILURE_STR.format(superstr=super().__str__(), formatted=formatted)

    def __reduce__(self) -> tuple[type[ExecutionFailed], tuple[ExcInfo]]:
        return (type(self), (self.excinfo,))


class QueueError(InterpreterError, RuntimeError):
    """A cross-interpreter queue operation failed."""


class QueueNotFoundError(QueueError):
    """The queue does not exist (every handle to it was released)."""


class QueueEmpty(QueueError, queue.Empty):
    """Raised by ``get_nowait()``, and by ``get()`` on timeout, when the queue is empty."""


class QueueFull(QueueError, queue.Full):
    """Raised by ``put_nowait()``, and by ``put()`` on timeout, when the queue is full."""


class ItemInterpreterDestroyed(QueueError):
    """Raised by ``get()`` for an item whose interpreter was closed (``UNBOUND_ERROR``)."""


class SharedDictError(Exception):
    """A :class:`~subinterp_rs.SharedDict` operation failed."""


class SharedDictClosedError(SharedDictError, ValueError):
    """The shared dict was closed (by any interpreter)."""


class SharedDictFullError(SharedDictError):
    """A new key would exceed the shared dict's ``maxsize``."""
