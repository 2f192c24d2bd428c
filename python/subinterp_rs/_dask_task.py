"""What :mod:`subinterp_rs.dask` runs inside a dask worker's task slots (subinterpreters).

Imported by name in each slot's interpreter, where ``distributed`` cannot be imported (its
``psutil`` refuses isolated interpreters): so this module imports only the standard library,
and ``cloudpickle`` and ``tblib`` (pure Python) when they are there.

One call of :func:`run` is one task: the task's function and arguments come in as one
pickle, what happened goes back as ``(status, payload, text)``, all shareable values, so no
exception ever escapes (``ExecutionFailed`` is for the interpreter's own failures only):

========================  ==============================================================
status                    payload, text
========================  ==============================================================
:data:`OK`                the pickled result; ``""``
:data:`RAISED`            the pickled exception, its traceback and chain kept by tblib
                          (``b""`` if it cannot be pickled); the formatted exception
:data:`NOT_LOADED`        ``b""``; why the function or arguments could not be unpickled
                          here (a module that does not import in a subinterpreter, ...)
:data:`REFUSED`           ``b""``; the task raised ``ImportError`` for an extension module
                          that refuses subinterpreters (``numpy``, ``psutil``, ...)
:data:`RESULT_NOT_SENT`   ``b""``; why the result could not be pickled
:data:`LOAD_REFUSED`      ``b""``; unpickling the function or arguments imported a module
                          that refuses subinterpreters (the main interpreter may then send
                          that module's functions by value)
========================  ==============================================================

The main interpreter calls :func:`rehearse` once before any slot exists: it runs every path
of :func:`run` there first, so that C functions called with keywords on these paths (the
``pickle.Pickler`` cloudpickle makes, ...) cache their keyword names in the main interpreter:
CPython 3.12 keeps that cache in whichever interpreter calls first, and crashes at exit when
that interpreter was a closed subinterpreter.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pickle
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

__all__ = [
    "LOAD_REFUSED",
    "NOT_LOADED",
    "OK",
    "RAISED",
    "REFUSED",
    "RESULT_NOT_SENT",
    "dumps",
    "refuses_subinterpreters",
    "rehearse",
    "run",
    "warm",
]

OK: Final = 0
RAISED: Final = 1
NOT_LOADED: Final = 2
REFUSED: Final = 3
RESULT_NOT_SENT: Final = 4
LOAD_REFUSED: Final = 5

Outcome = tuple[int, bytes, str]

_REFUSAL_WORDS: Final = "subinterpreter"
"""In the ``ImportError`` of an extension module that refuses isolated interpreters: CPython's
"module X does not support loading in subinterpreters", PyO3's "PyO3 modules do not yet support
subinterpreters"."""


def dumps(obj: object, by_value: frozenset[str] = frozenset()) -> bytes:
    """Pickle ``obj`` with cloudpickle (functions and classes of ``__main__``, lambdas and
    closures by value), or plain pickle without it.

    ``by_value``: modules whose functions and classes go by value too, with the globals they
    use, rather than by reference (a module that cannot be imported in a subinterpreter, because it
    imports numpy or distributed, may still have functions that run there).
    """
    try:
        import cloudpickle
    except ImportError:
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    if not by_value:
        data: bytes = cloudpickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        return data
    buf = io.BytesIO()
    _by_value_pickler(cloudpickle)(buf, by_value).dump(obj)
    return buf.getvalue()


_BY_VALUE_PICKLER: Any = None


def _by_value_pickler(cloudpickle: Any) -> Any:
    """A cloudpickle ``Pickler`` that sends the functions and classes of some modules by value
    (made once: its base class is cloudpickle's; it relies on cloudpickle's reducers of dynamic
    functions and classes, which :func:`can_send_by_value` checks are there)."""
    global _BY_VALUE_PICKLER
    if _BY_VALUE_PICKLER is None:
        base = cloudpickle.Pickler
        class_reduce = cloudpickle.cloudpickle._dynamic_class_reduce

        def __init__(self: Any, file: io.BytesIO, modules: frozenset[str]) -> None:
            base.__init__(self, file, pickle.HIGHEST_PROTOCOL)
            self.modules = modules

        def _function_reduce(self: Any, obj: Any) -> Any:
            if getattr(obj, "__module__", None) in self.modules:
                return self._dynamic_function_reduce(obj)
            return base._function_reduce(self, obj)

        def reducer_override(self: Any, obj: Any) -> Any:
            # Its classes too; cloudpickle tracks a class sent by value, so that the copy
            # made inside comes back as the original class here.
            if isinstance(obj, type) and getattr(obj, "__module__", None) in self.modules:
                return class_reduce(obj)
            return base.reducer_override(self, obj)

        # Made with type() rather than a class statement: a class defined in a function
        # would be a second, nameless "ByValuePickler" to stubtest.
        _BY_VALUE_PICKLER = type(
            "ByValuePickler",
            (base,),
            {
                "__init__": __init__,
                "_function_reduce": _function_reduce,
                "reducer_override": reducer_override,
            },
        )
    return _BY_VALUE_PICKLER


def can_send_by_value() -> bool:
    """Whether this cloudpickle lets :func:`dumps` send a module's functions by value."""
    try:
        import cloudpickle
    except ImportError:
        return False
    pickler = cloudpickle.Pickler
    return (
        hasattr(pickler, "_function_reduce")
        and hasattr(pickler, "_dynamic_function_reduce")
        and hasattr(getattr(cloudpickle, "cloudpickle", None), "_dynamic_class_reduce")
    )


def set_path(path: tuple[str, ...]) -> None:
    """Make ``sys.path`` the main interpreter's."""
    sys.path[:] = path
    importlib.invalidate_caches()


def warm(path: tuple[str, ...], /) -> None:
    """Run once when a slot starts: the main interpreter's ``sys.path``, and the modules every
    task needs imported now rather than by the first task."""
    set_path(path)
    for name in ("cloudpickle", "tblib.pickling_support"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def refuses_subinterpreters(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception in its chain) is the ``ImportError`` of an extension
    module that does not load in isolated subinterpreters."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ImportError) and _REFUSAL_WORDS in str(cur).lower():
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _describe(exc: BaseException, tb: TracebackType | None) -> str:
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _dump_exception(exc: BaseException) -> bytes:
    """The exception, pickled with its traceback and its cause/context chain (tblib), or
    ``b""`` if it cannot be pickled."""
    try:
        from tblib import pickling_support
    except ImportError:
        exc.__traceback__ = None
    else:
        pickling_support.install(exc)
    try:
        return dumps(exc)
    except Exception:
        return b""


def run(payload: bytes, path: tuple[str, ...] | None, /) -> Outcome:
    """Unpickle ``(fn, args, kwargs)`` from ``payload`` and call ``fn(*args, **kwargs)``;
    ``path``, when given, becomes ``sys.path`` first (it changed in the main interpreter)."""
    if path is not None:
        set_path(path)
    try:
        fn, args, kwargs = pickle.loads(payload)
    except Exception as exc:
        status = LOAD_REFUSED if refuses_subinterpreters(exc) else NOT_LOADED
        return (status, b"", _describe(exc, exc.__traceback__))
    try:
        result = fn(*args, **kwargs)
    except (SystemExit, KeyboardInterrupt):
        raise  # ExecutionFailed: the executor reports them without stopping the worker
    except BaseException as exc:
        # The task's own frames only: this function's frame is not part of its traceback.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        exc.__traceback__ = tb
        text = _describe(exc, tb)
        if refuses_subinterpreters(exc):
            return (REFUSED, b"", text)
        return (RAISED, _dump_exception(exc), text)
    try:
        return (OK, dumps(result), "")
    except Exception as exc:
        return (RESULT_NOT_SENT, b"", _describe(exc, exc.__traceback__))


def _rehearsal_ok(x: int) -> list[int]:
    return [x, x]


def _rehearsal_raise(x: int) -> None:
    raise ValueError(x) from KeyError(x)


def rehearse() -> None:
    """Run every path of :func:`run` (and :func:`warm`) in the calling (main) interpreter
    (see the module's docstring for why)."""
    warm(tuple(sys.path))
    cases: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (_rehearsal_ok, (1,)),
        (_rehearsal_raise, (2,)),
        (lambda: (i for i in range(0)), ()),  # a result that cannot be pickled
    ]
    for fn, args in cases:
        status, payload, _ = run(dumps((fn, args, {})), None)
        if status in (OK, RAISED) and payload:
            pickle.loads(payload)
    if can_send_by_value():
        run(dumps((_rehearsal_ok, (3,), {}), frozenset({__name__})), None)
    run(b"not a pickle", None)
