"""Smoke test of an installed subinterp-rs (a wheel or an sdist build), run by scripts/wheels.sh.

Run it with the Python of a fresh venv that has only subinterp-rs installed, from a directory
outside the repository, so that the in-tree package cannot be the one imported::

    /tmp/x/venv/bin/python wheel_smoke.py --venv /tmp/x/venv

It checks that the package comes from that venv's site-packages (not editable), then uses the
low-level ``Subinterpreter`` (create, exec, call, prepare_main, errors, close, parallel
calls), the PEP 734 facade (create, call, prepare_main, exec, queues in both directions,
call_in_thread), the executor, the GIL of each interpreter (3.13+; what a free-threaded build
changes), and that ``list_all()`` is back to the main interpreter alone. ``--venv`` is
optional (cibuildwheel's test venv, in .github/workflows/release.yml, runs it without).
Any failure raises (exit status 1); the last line is ``wheel smoke: OK`` and the status 0.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.metadata
import json
import math
import operator
import os
import sys
import sysconfig
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from subinterp_rs.interpreters import Queue

TIMEOUT = 30.0  # seconds for any one blocking wait


def step(name: str) -> None:
    print(f"  - {name}", flush=True)


def relay_doubled(inbox: Queue, outbox: Queue) -> None:
    """Runs in a subinterpreter (a function of this script: crosses as ``__main__``'s)."""
    outbox.put(("doubled", inbox.get(timeout=TIMEOUT) * 2))


def check_installed(venv: str | None) -> None:
    import subinterp_rs
    from subinterp_rs import _native

    step("installed package")
    pkg_dir = os.path.dirname(os.path.realpath(subinterp_rs.__file__))
    site_dirs = {os.path.realpath(sysconfig.get_path(key)) for key in ("purelib", "platlib")}
    assert os.path.dirname(pkg_dir) in site_dirs, (
        f"subinterp_rs imported from {pkg_dir}, not from site-packages {sorted(site_dirs)}"
    )
    assert sys.prefix != sys.base_prefix, f"not running in a venv: sys.prefix={sys.prefix}"
    if venv is not None:
        want = os.path.realpath(venv)
        assert os.path.realpath(sys.prefix) == want, f"sys.prefix {sys.prefix} is not {want}"
        assert pkg_dir.startswith(want + os.sep), f"{pkg_dir} is not inside {want}"
    native = os.path.realpath(_native.__file__ or "")
    assert os.path.dirname(native) == pkg_dir, f"_native from {native}, package in {pkg_dir}"
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    assert native.endswith(suffix), f"{native} does not end with {suffix}"
    for name in ("py.typed", "_native.pyi", "interpreters.py", "futures.py"):
        assert os.path.isfile(os.path.join(pkg_dir, name)), f"{name} missing from {pkg_dir}"
    dist = importlib.metadata.distribution("subinterp-rs")
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    assert not direct_url.get("dir_info", {}).get("editable"), f"editable: {direct_url}"
    requires = dist.requires or []
    assert not [r for r in requires if "extra ==" not in r], f"runtime deps: {requires}"
    print(f"    subinterp-rs {dist.version} at {pkg_dir}")
    print(f"    native module {os.path.basename(native)}; installed from {direct_url.get('url')}")


def check_lowlevel() -> None:
    from subinterp_rs import ExecutionFailed, InterpreterError, Subinterpreter
    from subinterp_rs.demo import count_primes

    main_id = Subinterpreter.main().id
    assert Subinterpreter.current().id == main_id

    step("Subinterpreter: create, exec, call, prepare_main, errors, close")
    si = Subinterpreter.create()
    assert si.owned and si and si.id != main_id, si
    si.exec("import math; x = math.factorial(20)")
    assert si.call(eval, "x") == math.factorial(20)  # exec's state stays in its __main__
    assert si.call(divmod, 17, 5) == (3, 2)
    assert si.call(operator.mul, "ab", 3) == "ababab"
    # The package imports inside the isolated interpreter too (the same installed copy), and
    # that interpreter is not the main one.
    si.exec(
        "import subinterp_rs\n"
        "where = subinterp_rs.__file__\n"
        "me = subinterp_rs.Subinterpreter.current().id\n"
    )
    import subinterp_rs

    assert si.call(eval, "where") == subinterp_rs.__file__
    assert si.call(eval, "me") == si.id
    si.prepare_main(greeting="hello", numbers=(1, 2, 3))
    assert si.call(eval, "greeting * sum(numbers)") == "hello" * 6
    try:
        si.exec("raise ValueError(greeting)")
    except ExecutionFailed as exc:
        assert exc.excinfo.type.__name__ == "ValueError", exc.excinfo
        assert exc.excinfo.msg == "hello", exc.excinfo
    else:
        raise AssertionError("exec of a raise did not raise ExecutionFailed")
    si.close()
    assert not si and si.id == -1
    try:
        si.exec("pass")
    except InterpreterError:
        pass
    else:
        raise AssertionError("exec on a closed Subinterpreter did not raise")

    step("Subinterpreter: parallel calls from threads")
    ranges = [(0, 20_000), (20_000, 40_000)]
    interps = [Subinterpreter.create() for _ in ranges]
    results: list[int | None] = [None] * len(ranges)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = interps[i].call(count_primes, *ranges[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(ranges))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive(), "a thread driving a subinterpreter hangs"
    for s in interps:
        s.close()
    assert not errors, errors
    assert results == [count_primes(*r) for r in ranges], results


def check_interpreters() -> None:
    from subinterp_rs import interpreters

    step("interpreters: create, call, prepare_main, exec")
    main = interpreters.get_main()
    interp = interpreters.create()
    assert interp.id != main.id
    assert interp.call(divmod, 17, 5) == (3, 2)
    assert interp.call(math.gcd, 84, 36) == 12
    interp.prepare_main(factor=3)
    interp.exec("scaled = [factor * i for i in range(4)]")
    assert interp.call(eval, "scaled") == [0, 3, 6, 9]
    assert {i.id for i in interpreters.list_all()} == {main.id, interp.id}

    step("interpreters: queues, main -> sub -> main and sub -> main")
    to_sub = interpreters.create_queue()
    from_sub = interpreters.create_queue(maxsize=4)
    interp.prepare_main(to_sub=to_sub, from_sub=from_sub)
    to_sub.put(("data", 14))
    interp.exec(
        "tag, n = to_sub.get(timeout=5)\nfrom_sub.put((tag.upper(), n * factor))",
    )
    assert from_sub.get(timeout=TIMEOUT) == ("DATA", 42)
    interp.exec("from_sub.put(b'bytes from the sub'); from_sub.put({'not': ['shareable']})")
    assert from_sub.get(timeout=TIMEOUT) == b"bytes from the sub"
    assert from_sub.get(timeout=TIMEOUT) == {"not": ["shareable"]}  # crossed by pickle
    assert from_sub.empty()
    # A blocking get in the subinterpreter, woken by a put from main.
    t = interp.call_in_thread(relay_doubled, to_sub, from_sub)
    time.sleep(0.05)
    to_sub.put(21)
    assert from_sub.get(timeout=TIMEOUT) == ("doubled", 42)
    t.join(TIMEOUT)
    assert not t.is_alive(), "call_in_thread did not finish"
    interp.close()
    assert [i.id for i in interpreters.list_all()] == [main.id]


def check_gil() -> None:
    """The GIL of the main interpreter and of the package's interpreters, own or shared.

    On a free-threaded build (3.14t) the native module declares that it needs the GIL, so
    importing the package enables the main interpreter's, and each interpreter the package
    creates enables its own, unless PYTHON_GIL=0 (-X gil=0) keeps them off. A default build
    always has them (3.13+ can say so; 3.12 cannot ask).
    """
    is_enabled = getattr(sys, "_is_gil_enabled", None)  # 3.13+ (mypy checks as 3.12)
    if is_enabled is None:
        return
    from subinterp_rs import InterpreterConfig, Subinterpreter

    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    forced_off = free_threaded and (
        os.environ.get("PYTHON_GIL") == "0" or sys._xoptions.get("gil") == "0"
    )
    want = not forced_off
    kind = "free-threaded" if free_threaded else "default"
    step(f"GIL ({kind} build): {'enabled' if want else 'off (PYTHON_GIL=0)'} in every interpreter")
    assert is_enabled() is want, f"main interpreter: GIL enabled {is_enabled()}, want {want}"
    for config in (InterpreterConfig.isolated(), InterpreterConfig.legacy()):
        with Subinterpreter.create(config) as si:
            si.exec("import sys; enabled = sys._is_gil_enabled()")
            got = si.call(eval, "enabled")
            assert got is want, f"gil={config.gil!r} interpreter: GIL enabled {got}, want {want}"


def check_executor() -> None:
    from subinterp_rs import interpreters
    from subinterp_rs.demo import count_primes
    from subinterp_rs.futures import InterpreterPoolExecutor

    step("InterpreterPoolExecutor: submit, map")
    with InterpreterPoolExecutor(max_workers=2) as pool:
        assert pool.submit(math.factorial, 12).result(timeout=TIMEOUT) == math.factorial(12)
        starts = [0, 5_000, 10_000, 15_000]
        got = list(pool.map(count_primes, starts, [s + 5_000 for s in starts], timeout=TIMEOUT))
        assert got == [count_primes(s, s + 5_000) for s in starts], got
        assert pool.submit(lambda: 6 * 7).result(timeout=TIMEOUT) == 42  # by value
    main = interpreters.get_main()
    assert [i.id for i in interpreters.list_all()] == [main.id], "workers left behind"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--venv", help="the venv the package must be installed in")
    args = parser.parse_args()
    # Imported here: this script's top level also runs in subinterpreters (relay_doubled is
    # found there by running it as __mp_main__), where faulthandler does not load on 3.12.
    import faulthandler

    faulthandler.dump_traceback_later(240, exit=True)  # a hang fails instead of blocking CI
    t0 = time.perf_counter()
    print(f"wheel smoke: Python {sys.version.split()[0]} at {sys.executable}", flush=True)
    check_installed(args.venv)
    check_lowlevel()
    check_interpreters()
    check_executor()
    check_gil()
    from subinterp_rs import interpreters

    assert [i.id for i in interpreters.list_all()] == [interpreters.get_main().id]
    print(f"wheel smoke: OK ({time.perf_counter() - t0:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
