"""Pickling for values that are not shareable, as the native module's fallback.

Runs in the sending interpreter (``dumps``) and in the receiving one (``loads``). Beyond plain
pickle it handles what pickling by reference cannot:

* functions and classes defined in a script's ``__main__``: found in the receiver's
  ``__main__``, else by running the script there as ``__mp_main__`` (as ``multiprocessing``'s
  spawn does, and as the 3.14 stdlib does), so ``if __name__ == "__main__"`` blocks do not run;
* stateless nested functions and lambdas (no closure, no globals but builtins): by value,
  like the 3.14 stdlib;
* with ``closures=True`` (the low-level ``Subinterpreter.call``): closures and nested functions
  by value, their cells' contents pickled recursively, globals taken from their module there.
"""

from __future__ import annotations

import builtins
import dis
import io
import marshal
import os
import pickle
import sys
import types
from typing import Any

__all__ = ["dumps", "loads"]

_BUILTIN_NAMES = frozenset(dir(builtins))
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"})


def _main_file() -> str | None:
    """The script ``__main__`` runs from, if it is a real file (not ``-c`` or a REPL)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path if isinstance(path, str) and os.path.isfile(path) else None


def _walk(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _load_main_attr(qualname: str, path: str | None) -> Any:
    """Find ``__main__.<qualname>`` of the sending interpreter here."""
    main = sys.modules.get("__main__")
    try:
        return _walk(main, qualname)
    except AttributeError:
        if path is None:
            raise
    mod = sys.modules.get("__mp_main__")
    if mod is None or getattr(mod, "__file__", None) != path:
        mod = types.ModuleType("__mp_main__")
        mod.__file__ = path
        with io.open_code(path) as f:
            source = f.read()
        sys.modules["__mp_main__"] = mod
        try:
            exec(compile(source, path, "exec"), mod.__dict__)
        except BaseException:
            del sys.modules["__mp_main__"]
            raise
    return _walk(mod, qualname)


def _is_stateless(func: types.FunctionType) -> bool:
    code = func.__code__
    if func.__closure__ or code.co_freevars:
        return False
    names = {i.argval for i in dis.get_instructions(code) if i.opname in _GLOBAL_OPS}
    return all(isinstance(n, str) and n in _BUILTIN_NAMES for n in names)


def _make_function(
    code_bytes: bytes,
    module: str | None,
    name: str,
    qualname: str,
    defaults: tuple[Any, ...] | None,
    kwdefaults: dict[str, Any] | None,
    cells: tuple[Any, ...] | None,
) -> types.FunctionType:
    code = marshal.loads(code_bytes)
    # Like the 3.14 stdlib, a function sent by value runs in the receiver's __main__.
    globals_ns: dict[str, Any] = vars(sys.modules["__main__"])
    closure = tuple(types.CellType(v) for v in cells) if cells is not None else None
    func = types.FunctionType(code, globals_ns, name, defaults, closure)
    func.__kwdefaults__ = kwdefaults
    func.__qualname__ = qualname
    if module is not None:
        func.__module__ = module
    return func


def _function_by_value(func: types.FunctionType) -> tuple[Any, ...]:
    cells = tuple(c.cell_contents for c in func.__closure__) if func.__closure__ else None
    return (
        _make_function,
        (
            marshal.dumps(func.__code__),
            func.__module__,
            func.__name__,
            func.__qualname__,
            func.__defaults__,
            func.__kwdefaults__,
            cells,
        ),
    )


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, closures: bool) -> None:
        # Positional on purpose: CPython 3.12.1 caches the keyword names of a C function in
        # whichever interpreter first calls it with keywords, and crashes at exit when that
        # was a subinterpreter.
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self._closures = closures
        self._main_path = _main_file()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (types.FunctionType, type)):
            module = getattr(obj, "__module__", None)
            qualname = getattr(obj, "__qualname__", "")
            if module in ("__main__", "__mp_main__") and "<" not in qualname:
                if self._main_path is None and isinstance(obj, types.FunctionType):
                    # No script to load there (-c, REPL, stdin): send the function itself;
                    # its globals are the receiver's __main__.
                    return _function_by_value(obj)
                return (_load_main_attr, (qualname, self._main_path))
            if (
                isinstance(obj, types.FunctionType)
                and "<" in qualname
                and (self._closures or _is_stateless(obj))
            ):
                return _function_by_value(obj)
        return NotImplemented


def dumps(obj: object, closures: bool = False) -> bytes:
    """Pickle ``obj`` for another interpreter."""
    buf = io.BytesIO()
    _Pickler(buf, closures).dump(obj)
    return buf.getvalue()


def loads(data: bytes) -> object:
    """Rebuild what :func:`dumps` made."""
    return pickle.loads(data)
