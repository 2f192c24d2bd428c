"""Checks and conversions of the PEP 734 facade's arguments, as the stdlib makes them: an
interpreter or queue ID, a queue timeout, and an ``Interpreter.exec()`` script turned into
source or a code object the way the 3.14 stdlib does.
"""

from __future__ import annotations

import math
import threading
from types import CodeType, FunctionType
from typing import Final

__all__ = ["check_id", "check_timeout", "script_code", "script_for_exec"]


# The longest wait the native side is asked for; longer ones (and inf) mean "forever".
_TIMEOUT_MAX: Final = float(threading.TIMEOUT_MAX)


_ID_MAX: Final = 2**63 - 1


def check_id(id: int, what: str) -> int:
    """Validate an interpreter or queue ID (``what``: which, for the messages) as the stdlib
    does: an ``int`` from 0 to ``2**63 - 1``, returned as a plain ``int``."""
    if not isinstance(id, int):
        raise TypeError(f"id must be an int, got {id!r}")
    id = int(id)
    if id < 0:
        raise ValueError(f"{what} ID must be a non-negative int, got {id}")
    if id > _ID_MAX:
        raise OverflowError(f"{what} ID {id} is too big")
    return id


def check_timeout(timeout: float | None) -> float | None:
    """Validate a queue timeout: ``None`` (or an endless one) blocks forever, otherwise a
    non-negative number of seconds, kept exact (no truncation to whole seconds)."""
    if timeout is None:
        return None
    value = float(timeout)  # TypeError/ValueError for non-numbers, like the stdlib's int()
    if math.isnan(value):
        raise ValueError("timeout value must be a number of seconds, got nan")
    if value < 0:
        raise ValueError("timeout value must be non-negative")
    if value >= _TIMEOUT_MAX:
        return None
    return value


# -- Interpreter.exec() scripts ------------------------------------------------------------------

_CO_VARARGS: Final = 0x0004
_CO_VARKEYWORDS: Final = 0x0008
_CO_GENERATOR: Final = 0x0020
_CO_COROUTINE: Final = 0x0080
_CO_ITERABLE_COROUTINE: Final = 0x0100
_CO_ASYNC_GENERATOR: Final = 0x0200
_CO_NOT_A_SCRIPT: Final = (
    _CO_GENERATOR | _CO_COROUTINE | _CO_ITERABLE_COROUTINE | _CO_ASYNC_GENERATOR
)


_LOAD_CONSTANT_OPS: Final = frozenset({"LOAD_CONST", "LOAD_COMMON_CONSTANT"})  # 3.15: the latter


def _loads_none(ins: object) -> bool:
    opname = getattr(ins, "opname", None)
    return opname in _LOAD_CONSTANT_OPS and getattr(ins, "argval", 0) is None


def _returns_only_none(code: CodeType) -> bool:
    # The same check as CPython's _PyCode_ReturnsOnlyNone(): every return returns None.
    import dis  # only needed for functions and code objects

    prev: dis.Instruction | None = None
    for ins in dis.get_instructions(code):
        if ins.opname == "RETURN_CONST":  # 3.12, 3.13
            if ins.argval is not None:
                return False
        elif ins.opname == "RETURN_VALUE" and not _loads_none(prev):
            return False
        prev = ins
    return True


def _verify_script(code: CodeType) -> None:
    if code.co_freevars:
        raise ValueError("closures not supported")
    if (
        code.co_argcount
        or code.co_posonlyargcount
        or code.co_kwonlyargcount
        or code.co_flags & (_CO_VARARGS | _CO_VARKEYWORDS)
    ):
        raise ValueError("code with args not supported")
    if code.co_flags & _CO_NOT_A_SCRIPT or not _returns_only_none(code):
        raise ValueError("code that returns a value is not a script")


_CHECKED_SOURCES: Final[dict[str, None]] = {}
_CHECKED_SOURCES_MAX: Final = 256


def _checked_source(source: str) -> str:
    # Compiled here once per distinct source, for the SyntaxError the stdlib raises in the
    # caller; the target compiles it again (and keeps that code object per interpreter).
    if source not in _CHECKED_SOURCES:
        compile(source, "<script>", "exec", dont_inherit=True, optimize=0)
        if len(_CHECKED_SOURCES) >= _CHECKED_SOURCES_MAX:
            _CHECKED_SOURCES.clear()
        _CHECKED_SOURCES[source] = None
    return source


def script_for_exec(script: object) -> str | CodeType:
    """What ``Interpreter.exec()`` hands to the native module for ``script``.

    Source text crosses as text: it is checked here once per distinct source (a
    ``SyntaxError`` is raised in the caller, as with the stdlib) and compiled in the target
    once per interpreter, so repeated ``exec`` of the same source neither compiles nor
    marshals anything. Everything else goes through :func:`script_code`.
    """
    if type(script) is str:
        return _checked_source(script)
    return script_code(script)


def script_code(script: object) -> CodeType:
    """The code object ``Interpreter.exec()`` runs for ``script``, as the 3.14 stdlib does.

    Source (``str`` or a buffer) is compiled here, in the calling interpreter, as
    ``<script>`` (a ``SyntaxError`` is raised here); a function stands for its body (it must
    take no arguments, have no closure and return nothing), run with the target's
    ``__main__`` as globals; a code object must satisfy the same rules.
    """
    if isinstance(script, str | bytes | bytearray | memoryview):
        # Never inherit this module's __future__ flags (annotations!); keep asserts.
        return compile(script, "<script>", "exec", dont_inherit=True, optimize=0)
    if isinstance(script, FunctionType):
        code = script.__code__
    elif isinstance(script, CodeType):
        code = script
    else:
        raise TypeError(
            f"unsupported script {script!r}: pass source code (str), a function without "
            "arguments, or a code object"
        )
    _verify_script(code)
    return code
