"""Pickling for values that are not shareable, as the native module's fallback.

Runs in the sending interpreter (``dumps``) and in the receiving one (``loads``). Beyond plain
pickle it handles what pickling by reference cannot:

* functions of a script's ``__main__`` travel both ways at once: by reference (found in the
  receiver's ``__main__``, else by running the script there as ``__mp_main__``, as
  ``multiprocessing``'s spawn does, and as the 3.14 stdlib does, so ``if __name__ ==
  "__main__"`` blocks do not run) and by value (code, defaults, closure, and the globals it
  uses, recursively, as ``cloudpickle`` does). The receiver takes the reference when the
  script runs there, else the value: a script whose top level imports a module that cannot
  load in a subinterpreter (psutil, numpy, ...) still has its tasks run. Which way each
  function went is told by :func:`travelled` (docs/travel.md);
* stateless nested functions and lambdas (no closure, no globals but builtins): by value,
  like the 3.14 stdlib;
* with ``closures=True`` (the low-level ``Subinterpreter.call``): closures and nested functions
  by value, their cells' contents pickled recursively;
* modules among the globals a function by value uses, by name: imported where they are used, and if
  one cannot be imported there, a stand-in that raises the reason when it is used.

Functions by value run with the receiver's ``__main__`` as their globals (like the 3.14
stdlib), or its ``__mp_main__`` when the script ran there; the globals they use are copied
into that namespace each time they cross.
"""

from __future__ import annotations

import builtins
import dis
import importlib
import io
import marshal
import os
import pickle
import sys
import types
import weakref
from typing import Any, cast

__all__ = ["dumps", "loads", "travelled"]

_BUILTIN_NAMES = frozenset(dir(builtins))
_UNKNOWN: Any = object()
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"})
_MAIN_MODULES = ("__main__", "__mp_main__")

# Receiver side, per interpreter (each has its own copy of this module).
_script_failed: dict[str, str] = {}
"""Scripts that could not run here as ``__mp_main__``: path -> the reason (run once only)."""
_skeletons: weakref.WeakSet[types.FunctionType] = weakref.WeakSet()
"""Functions made here by value whose state (globals, defaults, cells) is still to be set."""
_made_by_value: weakref.WeakSet[types.FunctionType] = weakref.WeakSet()
"""Every function made here by value (found again in ``__main__``, they are not its own)."""
_travelled: dict[tuple[str, str], str] = {}
"""``(module, qualname)`` of each ``__main__`` function received -> ``"reference"`` or
``"value"``, the way it last came in (see :func:`travelled`)."""


def travelled(module: str, qualname: str) -> str | None:
    """How the function ``module.qualname`` of the sender's ``__main__`` last came into this
    interpreter: ``"reference"`` (found in the script run here as ``__mp_main__``, or in this
    interpreter's ``__main__``), ``"value"`` (rebuilt from its code and globals), or ``None``
    if it never came in."""
    return _travelled.get((module, qualname))


def _main_file() -> str | None:
    """The script ``__main__`` runs from, if it is a real file (not ``-c`` or a REPL)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path if isinstance(path, str) and os.path.isfile(path) else None


def _walk(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _run_script(path: str) -> types.ModuleType:
    """The script at ``path`` run here as ``__mp_main__`` (once; a failure is remembered and
    raised again as :class:`_ScriptFailed` without running the script again)."""
    mod = sys.modules.get("__mp_main__")
    if mod is not None and getattr(mod, "__file__", None) == path:
        return mod
    if path in _script_failed:
        raise _ScriptFailed(_script_failed[path])
    mod = types.ModuleType("__mp_main__")
    mod.__file__ = path
    sys.modules["__mp_main__"] = mod
    try:
        with io.open_code(path) as f:
            source = f.read()
        exec(compile(source, path, "exec"), mod.__dict__)
    except Exception as exc:
        del sys.modules["__mp_main__"]
        _script_failed[path] = f"{type(exc).__name__}: {exc}"
        raise _ScriptFailed(_script_failed[path]) from exc
    except BaseException:
        del sys.modules["__mp_main__"]
        raise
    return mod


class _ScriptFailed(Exception):
    """The sender's script could not run here (its reason is the message)."""


def _load_main_attr(qualname: str, path: str | None) -> Any:
    """Find ``__main__.<qualname>`` of the sending interpreter here."""
    main = sys.modules.get("__main__")
    try:
        return _walk(main, qualname)
    except AttributeError:
        if path is None:
            raise
    try:
        mod = _run_script(path)
    except _ScriptFailed as exc:
        raise ImportError(main_unavailable(qualname, path, str(exc), None)) from None
    return _walk(mod, qualname)


def main_unavailable(
    qualname: str, path: str | None, script_error: str | None, by_value_error: str | None
) -> str:
    """The one message for a function or class of the sender's ``__main__`` that can cross
    neither by reference (``script_error``: why running the script here failed, or why the
    name is not in it) nor by value (``by_value_error``: why it could not be sent so, or
    ``None`` for a class, which only crosses by reference)."""
    where = f"the script {path!r}" if path else "the sender's __main__"
    parts = [f"__main__.{qualname} cannot be rebuilt in this interpreter."]
    if script_error is not None:
        parts.append(f"By reference: running {where} here as __mp_main__ failed ({script_error}).")
    if by_value_error is not None:
        parts.append(f"By value: {by_value_error}.")
    else:
        parts.append("By value: classes only cross by reference.")
    parts.append(
        "Move it to a module that imports only what loads in a subinterpreter, or keep the "
        "script's top-level imports to such modules (import the others under "
        "`if __name__ == '__main__':`), or use a process pool."
    )
    return " ".join(parts)


_names_cache: dict[types.CodeType, frozenset[str]] = {}
_marshal_cache: dict[types.CodeType, bytes] = {}
_CACHE_SIZE = 1024


def _global_names(code: types.CodeType) -> frozenset[str]:
    """The global names ``code`` and the code nested in it use (cached)."""
    found = _names_cache.get(code)
    if found is not None:
        return found
    names = {
        i.argval
        for i in dis.get_instructions(code)
        if i.opname in _GLOBAL_OPS and isinstance(i.argval, str)
    }
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    if len(_names_cache) >= _CACHE_SIZE:
        _names_cache.clear()
    found = _names_cache[code] = frozenset(names)
    return found


def _marshalled(code: types.CodeType) -> bytes:
    """``marshal.dumps(code)`` (cached)."""
    data = _marshal_cache.get(code)
    if data is None:
        if len(_marshal_cache) >= _CACHE_SIZE:
            _marshal_cache.clear()
        data = _marshal_cache[code] = marshal.dumps(code)
    return data


def _is_stateless(func: types.FunctionType) -> bool:
    code = func.__code__
    if func.__closure__ or code.co_freevars:
        return False
    return all(n in _BUILTIN_NAMES for n in _global_names(code))


def _globals_used(func: types.FunctionType) -> dict[str, Any]:
    """The globals ``func`` uses, modules among them as :class:`_ModuleByName`."""
    ns = func.__globals__
    used: dict[str, Any] = {}
    for name in sorted(_global_names(func.__code__)):
        if name in ns:
            value = ns[name]
            used[name] = _ModuleByName(value.__name__) if _importable_module(value) else value
    return used


def _importable_module(obj: object) -> bool:
    return (
        isinstance(obj, types.ModuleType)
        and obj.__name__ not in _MAIN_MODULES
        and sys.modules.get(obj.__name__) is obj
    )


class _ModuleByName:
    """A module among the globals of a function by value: imported by name where it lands."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_import_module, (self.name,))


def _namespace(path: str | None) -> dict[str, Any]:
    """Where a function of the sender's ``__main__`` rebuilt by value finds its globals here:
    the script's ``__mp_main__`` if it ran here, else this interpreter's ``__main__``."""
    mod = sys.modules.get("__mp_main__")
    if path is not None and mod is not None and getattr(mod, "__file__", None) == path:
        return vars(mod)
    return vars(sys.modules["__main__"])


def _make_function(
    code_bytes: bytes,
    module: str | None,
    name: str,
    qualname: str,
    defaults: tuple[Any, ...] | None,
    kwdefaults: dict[str, Any] | None,
    cells: tuple[Any, ...] | None,
) -> types.FunctionType:
    """A function by value without the globals it uses (a nested function, or a ``__main__``
    one whose globals could not be pickled): it finds them in the receiver's ``__main__``."""
    code = marshal.loads(code_bytes)
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
            _marshalled(func.__code__),
            func.__module__,
            func.__name__,
            func.__qualname__,
            func.__defaults__,
            func.__kwdefaults__,
            cells,
        ),
    )


def _main_function(
    module: str,
    qualname: str,
    path: str | None,
    code_bytes: bytes | None,
    ncells: int,
    by_value_error: str | None,
) -> types.FunctionType:
    """A function of the sender's ``__main__``: by reference when that works here (it then
    ignores the state :func:`_set_main_function` gets), else an empty function made from its
    code, which :func:`_set_main_function` completes (globals, defaults, cells)."""
    script_error: str | None = None
    if path is not None and "<" not in qualname:
        try:
            try:
                found = _walk(sys.modules.get("__main__"), qualname)
                if found in _made_by_value:  # put there with the globals of another
                    raise AttributeError(qualname)
            except AttributeError:
                found = _walk(_run_script(path), qualname)
        except _ScriptFailed as exc:
            script_error = str(exc)
        except AttributeError:
            script_error = f"the script defines no {qualname!r} at its top level"
        else:
            if isinstance(found, types.FunctionType):
                _travelled[(module, qualname)] = "reference"
                return found
            script_error = f"{qualname!r} is a {type(found).__name__} there, not a function"
    if code_bytes is None:
        raise ImportError(main_unavailable(qualname, path, script_error, by_value_error))
    code = marshal.loads(code_bytes)
    closure = tuple(types.CellType() for _ in range(ncells)) if ncells else None
    func = types.FunctionType(code, _namespace(path), code.co_name, None, closure)
    func.__qualname__ = qualname
    func.__module__ = module
    _skeletons.add(func)
    _made_by_value.add(func)
    _travelled[(module, qualname)] = "value"
    return func


def _set_main_function(func: types.FunctionType, state: tuple[Any, ...]) -> None:
    """Completes a function :func:`_main_function` made by value (nothing for one it found)."""
    if func not in _skeletons:
        return
    _skeletons.discard(func)
    used, defaults, kwdefaults, cells, attrs = state
    func.__globals__.update(used)
    func.__defaults__ = defaults
    func.__kwdefaults__ = kwdefaults
    if cells is not None and func.__closure__ is not None:
        for cell, value in zip(func.__closure__, cells, strict=True):
            cell.cell_contents = value
    if attrs:
        func.__dict__.update(attrs)


class _Unimportable(types.ModuleType):
    """Stands in for a module a function by value uses that cannot be imported here; using it
    raises why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        self.__reason = reason

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_Unimportable__"):
            raise AttributeError(attr)
        raise ImportError(
            f"module {self.__name__!r} (used by a function of the sender's __main__, which "
            f"came by value) cannot be imported in this interpreter: {self.__reason}"
        )


def _import_module(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        return _Unimportable(name, f"{type(exc).__name__}: {exc}")


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, closures: bool, by_value_error: str | None) -> None:
        # Positional on purpose: CPython 3.12.1 caches the keyword names of a C function in
        # whichever interpreter first calls it with keywords, and crashes at exit when that
        # was a subinterpreter.
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self._closures = closures
        self._main_path_seen: object = _UNKNOWN
        # None: functions of __main__ go with their globals; else why they cannot.
        self._by_value_error = by_value_error

    @property
    def _main_path(self) -> str | None:
        """The script of ``__main__`` (looked up when first needed in each dump: a pickler is
        kept for the next one)."""
        path = self._main_path_seen
        if path is _UNKNOWN:
            path = self._main_path_seen = _main_file()
        return cast("str | None", path)

    def forget(self) -> None:
        """Ready for the next dump: no memo, ``__main__``'s script looked up again."""
        self.clear_memo()
        self._main_path_seen = _UNKNOWN

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (types.FunctionType, type)):
            module = getattr(obj, "__module__", None)
            qualname = getattr(obj, "__qualname__", "")
            if module in _MAIN_MODULES and isinstance(obj, types.FunctionType):
                return self._main_function(obj, qualname)
            if module in _MAIN_MODULES and "<" not in qualname:
                return (_load_main_attr, (qualname, self._main_path))
            if (
                isinstance(obj, types.FunctionType)
                and "<" in qualname
                and (self._closures or _is_stateless(obj))
            ):
                return _function_by_value(obj)
        return NotImplemented

    def _main_function(self, func: types.FunctionType, qualname: str) -> Any:
        nested = "<" in qualname
        if nested and not (self._closures or _is_stateless(func)):
            return NotImplemented  # pickle refuses a local object, as before
        if self._by_value_error is not None:
            if nested or self._main_path is None:
                # Nothing to find it by there: by value, its globals the receiver's __main__.
                return _function_by_value(func)
            ref_only = (func.__module__, qualname, self._main_path, None, 0, self._by_value_error)
            return (_main_function, ref_only)
        cells = tuple(c.cell_contents for c in func.__closure__) if func.__closure__ else None
        state = (
            _globals_used(func),
            func.__defaults__,
            func.__kwdefaults__,
            cells,
            dict(func.__dict__) or None,
        )
        args = (
            func.__module__,
            qualname,
            self._main_path,
            _marshalled(func.__code__),
            len(cells) if cells else 0,
            None,
        )
        return (_main_function, args, state, None, None, _set_main_function)


class _CachedPickler:
    """A pickler with its buffer, kept for the next :func:`dumps` of this interpreter."""

    __slots__ = ("buf", "pickler")

    def __init__(self, closures: bool) -> None:
        self.buf = io.BytesIO()
        self.pickler = _Pickler(self.buf, closures, None)


# Free picklers of this interpreter (each interpreter imports its own copy of this module),
# one list per ``closures`` flag. A dumps() takes one (or makes one) and gives it back after:
# list.pop and list.append are atomic, so threads and nested calls never share one.
_FREE: tuple[list[_CachedPickler], list[_CachedPickler]] = ([], [])
_FREE_MAX = 4
# A buffer that grew past this is not kept (its memory would stay held).
_KEEP_BYTES = 1 << 20


def dumps(obj: object, closures: bool = False) -> bytes:
    """Pickle ``obj`` for another interpreter: functions of ``__main__`` both by reference and
    by value; if what they use cannot be pickled, by reference only (or, without a script, by
    value without their globals)."""
    free = _FREE[closures]
    try:
        cached = free.pop()
    except IndexError:
        cached = _CachedPickler(closures)
    buf, pickler = cached.buf, cached.pickler
    try:
        pickler.dump(obj)
    except Exception as exc:  # this pickler is not kept
        buf = io.BytesIO()
        _Pickler(buf, closures, f"{type(exc).__name__}: {exc}").dump(obj)
        return buf.getvalue()
    data = buf.getvalue()
    keep = buf.tell() <= _KEEP_BYTES
    buf.seek(0)
    buf.truncate()
    pickler.forget()
    if keep and len(free) < _FREE_MAX:
        free.append(cached)
    return data


loads = pickle.loads
"""Rebuild what :func:`dumps` made (``pickle.loads``)."""
