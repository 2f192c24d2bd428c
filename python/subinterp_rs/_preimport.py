"""Stdlib modules that the main interpreter must import before any subinterpreter does.

On CPython 3.12 and 3.13 some stdlib extension modules keep process-wide state (static types,
cached objects, a single-phase module's saved copy) that is set up by whichever interpreter
imports them first. When that is an isolated subinterpreter (own GIL, own allocator), the state
is allocated from the subinterpreter's memory: once it is closed, the next interpreter that
imports the module, or the process at exit, frees or uses memory that is no longer there, and
the process aborts (``double free``, ``munmap_chunk(): invalid pointer``) or segfaults. CPython
3.14 fixed these modules; the stdlib's own ``_interpreters`` crashes the same way on 3.12/3.13.

The fix: the main interpreter imports the module first, so the shared state is main's and
outlives every subinterpreter. :func:`import_in_main_first` does that once, on the first
interpreter the package creates (not at ``import subinterp_rs``: programs that never create one
pay nothing). Every creation path of the package calls it: ``Subinterpreter.create``, the PEP 734
``interpreters.create`` and so the executor and the asyncio pool.

The lists are measured, not guessed (``scripts/import_limits.py --crash-scan``): every stdlib
extension module and every top-level stdlib module imported in two isolated interpreters,
closed in both orders, then imported in main, one process per module. The modules that crash
and the smallest set of imports in main that makes all of them pass:

- 3.12 (3.12.1): ``_datetime``, ``_decimal``, ``_zoneinfo``, ``_asyncio`` and ``hashlib`` (its
  import calls ``_hashlib`` functions with keyword arguments, whose argument parser caches a
  tuple allocated by the first caller), and ``_testsinglephase`` (CPython's test module of
  single-phase init: refusing it in an isolated interpreter corrupts it). Through them also
  ``datetime``, ``decimal``, ``zoneinfo``, ``asyncio``, ``calendar``, ``email.utils``,
  ``fractions``, ``hmac``, ``secrets``, ``ssl``, ``sqlite3``, ``statistics``, ``tomllib``,
  ``http.client``, ``urllib.request``, ``smtplib`` and more.
- 3.13 (3.13.0 and 3.13.18): ``_datetime`` and ``_zoneinfo``; through them ``datetime``,
  ``zoneinfo``, ``calendar``, ``sqlite3``, ``tomllib``, ``plistlib``, ``mailbox``, ...
- 3.14, 3.15: none.

Interpreters that load single-phase extension modules (a config with
``check_multi_interp_extensions=False``, as ``InterpreterConfig.legacy()``) crash 3.12 with
more: a single-phase module keeps a copy of its first importer's module dict, which is gone
once that interpreter is closed. Before the first such interpreter, main also imports the
stdlib's single-phase modules of 3.12 that crash that way (``--crash-scan --config legacy``):
``_ctypes``, ``_tkinter``, ``_testcapi``, ``_testbuffer`` (and ``_testsinglephase``, above).

A module missing from this Python (say ``_decimal`` in a build without it) is skipped: it is
missing inside every interpreter too.

One module cannot be made to load: on 3.12, ``_zoneinfo`` in an isolated interpreter needs the
C ``datetime`` (``_datetime``), which isolated interpreters refuse before 3.13, and failed with
an ``AttributeError`` (``datetime_CAPI``). :func:`setup_for_new_interpreter` makes its import
raise a clear ``ImportError`` there instead, naming the module and the versions, so that
``zoneinfo`` falls back to its pure-Python implementation, as ``datetime`` and ``decimal`` do.
"""

from __future__ import annotations

import contextlib
import marshal
import sys

from . import _native_api

__all__ = [
    "FIRST_IN_MAIN",
    "FIRST_IN_MAIN_LEGACY",
    "REFUSED_IN_ISOLATED",
    "import_in_main_first",
    "setup_for_new_interpreter",
]

FIRST_IN_MAIN: dict[tuple[int, int], tuple[str, ...]] = {
    (3, 12): ("_datetime", "_decimal", "_zoneinfo", "_asyncio", "hashlib", "_testsinglephase"),
    (3, 13): ("_datetime", "_zoneinfo"),
}
"""Per ``sys.version_info[:2]``: the modules main imports before the first subinterpreter."""

FIRST_IN_MAIN_LEGACY: dict[tuple[int, int], tuple[str, ...]] = {
    (3, 12): ("_ctypes", "_tkinter", "_testcapi", "_testbuffer"),
}
"""Per ``sys.version_info[:2]``: the modules main imports before the first subinterpreter that
loads single-phase extension modules (``check_multi_interp_extensions=False``)."""

REFUSED_IN_ISOLATED: dict[tuple[int, int], dict[str, str]] = {
    (3, 12): {
        "_zoneinfo": "it needs the C datetime module (_datetime), which isolated "
        "interpreters refuse before CPython 3.13 (zoneinfo falls back to pure Python)",
    },
}
"""Per ``sys.version_info[:2]``: extension modules an isolated interpreter refuses with a clear
``ImportError`` (name: why), where CPython fails in a less clear way."""

_VERSION = (sys.version_info[0], sys.version_info[1])
_MODULES = FIRST_IN_MAIN.get(_VERSION, ())
_LEGACY_MODULES = FIRST_IN_MAIN_LEGACY.get(_VERSION, ())
_REFUSED = REFUSED_IN_ISOLATED.get(_VERSION, {})
_done = not _MODULES
_done_legacy = not _LEGACY_MODULES

# Run in a new isolated interpreter: a meta path finder that refuses _REFUSED's modules.
_GUARD = """
import sys
class _RefusedInIsolated:
    refused = {refused!r}
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        why = cls.refused.get(name)
        if why is not None:
            raise ImportError(
                f"{{name}} cannot be imported in an isolated subinterpreter on CPython "
                f"{version}: {{why}}; use InterpreterConfig.legacy() or CPython 3.13+",
                name=name,
            )
        return None
sys.meta_path.insert(0, _RefusedInIsolated)
del _RefusedInIsolated, sys
"""


# Run in every new isolated interpreter: an extension module that refuses isolated
# interpreters raises an ImportError that names it and says what to do, not only CPython's
# "does not support loading in subinterpreters".
_EXPLAIN_SOURCE = """
def _explain():
    # importlib's own loader, loaded at start-up (importlib.machinery would be an import
    # more in every new interpreter: milliseconds of its creation).
    from _frozen_importlib_external import ExtensionFileLoader
    create = ExtensionFileLoader.create_module
    def create_module(self, spec):
        try:
            return create(self, spec)
        except ImportError as exc:
            if "subinterpreters" not in str(exc):
                raise
            top = spec.name.partition(".")[0]
            raise ImportError(
                f"{exc}: the extension module {spec.name!r} (of package {top!r}) cannot "
                "be loaded in an isolated subinterpreter (it does not support several "
                "interpreters). Run this work in an interpreter made with "
                "InterpreterConfig.legacy() (which shares main's GIL), or in a process pool "
                "(concurrent.futures.ProcessPoolExecutor); `python -m subinterp_rs.check "
                f"{top}` tells what loads where.",
                name=exc.name or spec.name,
                path=exc.path,
            ) from None
    ExtensionFileLoader.create_module = create_module
_explain()
"""
# Both run in a namespace of their own, not __main__: a function kept by importlib whose
# globals were __main__'s would keep __main__ (and what it holds) alive into the
# interpreter's finalization.


def setup_for_new_interpreter(*, isolated: bool) -> bytes | None:
    """The set-up code of a new interpreter whose config checks extension modules
    (``isolated``), as a marshalled code object for ``_native_api.create(setup=...)``: an
    extension module that refuses it raises an ``ImportError`` that names it and says what to
    do, and the modules of :data:`REFUSED_IN_ISOLATED` raise a clear one. ``None``: nothing to
    set up.

    Compiled once, here; the native create unmarshals and runs it in the new interpreter while
    the thread state that created it is still attached: no compile, no import and no second
    visit per creation (each was a fraction of a millisecond). Marshal's format is read by the
    same CPython that wrote it, in the same process."""
    global _setup_isolated
    if not isolated:
        return None
    if _setup_isolated is None:
        source = _EXPLAIN_SOURCE
        if _REFUSED:
            source += _GUARD.format(refused=_REFUSED, version=f"{_VERSION[0]}.{_VERSION[1]}")
        _setup_isolated = marshal.dumps(compile(source, "<subinterp_rs set-up>", "exec"))
    return _setup_isolated


_setup_isolated: bytes | None = None


def import_in_main_first(*, legacy: bool = False) -> None:
    """Import this Python's :data:`FIRST_IN_MAIN` modules (and, for an interpreter that loads
    single-phase extension modules, ``legacy``, its :data:`FIRST_IN_MAIN_LEGACY` ones), once,
    if called in the main interpreter (in a subinterpreter it does nothing: that one was
    created by main, which did it already). Cheap after the first call."""
    global _done, _done_legacy
    if _done and (_done_legacy or not legacy):
        return
    if _native_api.get_current()[0] != 0:
        return
    if not _done:
        _import_all(_MODULES)
        _done = True
    if legacy and not _done_legacy:
        _import_all(_LEGACY_MODULES)
        _done_legacy = True


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        # Not built on this Python: no interpreter can import it.
        with contextlib.suppress(ImportError):
            __import__(name)
