"""Every stdlib extension module imported in two isolated interpreters, closed in both orders,
then imported in main: one process per module, so a crash fails one test.

On CPython 3.12 and 3.13 several of them (``_datetime``, ``_decimal``, ``_zoneinfo``...) crashed
the process this way until the package imported them in main first (``_preimport``). One
interpreter per process cannot see that: the crash needs a second interpreter importing the
module after the first set up its shared state. Also the public modules built on them, and the
same program through the executor, the PEP 734 module and the asyncio pool.
"""

from __future__ import annotations

import os
import sys
import sysconfig

import pytest
from _helpers import assert_ok

# Public modules whose C parts crashed 3.12 or 3.13 (they import them).
PUBLIC = (
    "asyncio",
    "calendar",
    "datetime",
    "decimal",
    "email.utils",
    "fractions",
    "hashlib",
    "hmac",
    "http.client",
    "secrets",
    "sqlite3",
    "ssl",
    "statistics",
    "tomllib",
    "urllib.request",
    "zoneinfo",
)


def extension_modules() -> list[str]:
    """The stdlib's extension modules on this Python: built in, or in lib-dynload."""
    names = set(sys.builtin_module_names)
    shared = sysconfig.get_config_var("DESTSHARED")
    if shared and os.path.isdir(shared):
        for entry in os.listdir(shared):
            if entry.endswith((".so", ".pyd")):
                names.add(entry.split(".", 1)[0])
    return sorted(names)


# Imports `module` in two interpreters of `config` (an isolated one may refuse it with
# ImportError: an extension module without multi-interpreter support) and closes them,
# first-made first; then the same with a new pair closed the other way round; then imports it
# in main. Prints what each import did and OK; a crash is a dead child.
CHILD = """
import importlib, sys
from subinterp_rs import ExecutionFailed, InterpreterConfig, Subinterpreter
module, config = sys.argv[1], sys.argv[2]
cfg = InterpreterConfig.legacy() if config == "legacy" else InterpreterConfig.isolated()
for order in ("ab", "ba"):
    a, b = Subinterpreter.create(cfg), Subinterpreter.create(cfg)
    for si in (a, b):
        try:
            si.exec(f"import {module}")
            print(order, "sub: ok")
        except ExecutionFailed as exc:
            assert exc.excinfo.type.__name__ in ("ImportError", "ModuleNotFoundError"), exc
            print(order, "sub:", exc.excinfo.type.__name__)
    for si in (a, b) if order == "ab" else (b, a):
        si.close()
try:
    importlib.import_module(module)
    print("main: ok")
except ImportError as exc:
    print("main:", type(exc).__name__)
print("OK")
"""


@pytest.mark.parametrize("module", extension_modules() + list(PUBLIC))
def test_two_isolated_interpreters_both_orders_then_main(module: str) -> None:
    assert_ok(CHILD, args=(module, "isolated"))


@pytest.mark.parametrize("module", extension_modules())
def test_two_legacy_interpreters_both_orders_then_main(module: str) -> None:
    # Legacy interpreters load single-phase modules, which crashed 3.12 (_ctypes, _tkinter...).
    assert_ok(CHILD, args=(module, "legacy"))


def test_datetime_in_executor_workers() -> None:
    # The program of the report: an executor whose tasks use datetime died at shutdown.
    assert_ok(
        """
        import datetime
        from subinterp_rs.futures import InterpreterPoolExecutor
        with InterpreterPoolExecutor(2) as pool:
            got = list(pool.map(eval, [
                f"(__import__('datetime').date(2024, 1, 1) "
                f"+ __import__('datetime').timedelta(days={n})).isoformat()"
                for n in range(8)
            ]))
        assert got == [(datetime.date(2024, 1, 1) + datetime.timedelta(days=n)).isoformat()
                       for n in range(8)], got
        print("OK")
        """
    )


def test_first_import_in_subinterpreters_then_main() -> None:
    # Before main ever imports them: subinterpreters first, closed, then main (3.12 aborted
    # here for decimal, datetime and zoneinfo even with one subinterpreter).
    assert_ok(
        """
        import sys
        from subinterp_rs import Subinterpreter
        mods = ["decimal", "datetime", "zoneinfo", "asyncio", "hashlib", "calendar"]
        assert not any(m in sys.modules for m in ("decimal", "zoneinfo")), sys.modules.keys()
        for _ in range(2):
            si = Subinterpreter.create()
            si.exec("import " + ", ".join(mods))
            assert si.call(eval, "str(__import__('decimal').Decimal('1.10') * 3)") == "3.30"
            si.close()
        import decimal, datetime, zoneinfo
        assert str(decimal.Decimal("1.10") * 3) == "3.30"
        print("OK")
        """
    )


def test_pep734_and_asyncio_pool() -> None:
    assert_ok(
        """
        import asyncio
        from subinterp_rs import interpreters
        from subinterp_rs.aio import AsyncInterpreterPool
        interps = [interpreters.create() for _ in range(2)]
        for interp in interps:
            interp.exec("import datetime, decimal, zoneinfo, sqlite3, tomllib")
        assert interps[1].call(eval, "tomllib.loads('a = 1')['a']") == 1
        for interp in reversed(interps):
            interp.close()

        async def main():
            async with AsyncInterpreterPool(2) as pool:
                return await asyncio.gather(*(
                    pool.run(eval, "__import__('zoneinfo').ZoneInfo('UTC').key")
                    for _ in range(4)
                ))
        assert asyncio.run(main()) == ["UTC"] * 4
        print("OK")
        """
    )
