"""subinterp_rs: CPython subinterpreters with their own GIL, from Python 3.12 on.

The low-level API (this module) mirrors the Rust core, which mirrors pybind11's
``subinterpreter.h``::

    from subinterp_rs import Subinterpreter, InterpreterConfig

    with Subinterpreter.create() as si:        # isolated: own GIL
        si.exec("import math; x = math.factorial(20)")
        assert si.call(divmod, 17, 5) == (3, 2)

``subinterp_rs.interpreters`` is a drop-in for the 3.14 stdlib ``concurrent.interpreters``
(PEP 734) on every supported Python, and ``subinterp_rs.futures`` has the executor.
"""

# Re-exports only: the classes live in _subinterpreter, the exceptions in _errors; the process
# guards (exit hook, sys.exit/excepthook, fork refusal) install themselves in _process_guards
# when _native_api, the one module that calls the native extension, is first imported.
from ._errors import (
    ExcInfo,
    ExcTypeInfo,
    ExecutionFailed,
    InterpreterError,
    InterpreterNotFoundError,
    ItemInterpreterDestroyed,
    NotShareableError,
    QueueEmpty,
    QueueError,
    QueueFull,
    QueueNotFoundError,
    SharedDictClosedError,
    SharedDictError,
    SharedDictFullError,
)
from ._subinterpreter import GilKind as GilKind
from ._subinterpreter import InterpreterConfig, Subinterpreter
from .shared_dict import SharedDict

__all__ = [
    "ExcInfo",
    "ExcTypeInfo",
    "ExecutionFailed",
    "InterpreterConfig",
    "InterpreterError",
    "InterpreterNotFoundError",
    "ItemInterpreterDestroyed",
    "NotShareableError",
    "QueueEmpty",
    "QueueError",
    "QueueFull",
    "QueueNotFoundError",
    "SharedDict",
    "SharedDictClosedError",
    "SharedDictError",
    "SharedDictFullError",
    "Subinterpreter",
]
