"""``python -m bench.bench_retention``: what the process keeps of each closed interpreter, with
real imports, and how much executors made and shut down in a loop grow it.

Each row runs in a fresh child process, which first imports the row's modules in main (so
that main's own import does not count, and as the package does for the stdlib's extension
modules on 3.12 and 3.13), makes two warm-up cycles, reads the resident set size after
``gc.collect()`` and ``malloc_trim(0)`` (``scripts/_rss.py``), runs ``--cycles`` cycles, reads
it again and reports the growth per cycle:

* ``interpreter``: create an isolated interpreter, import the modules in it, close it, with
  this package's :class:`~subinterp_rs.Subinterpreter` and with the stdlib's low-level module
  (``_interpreters``, ``_xxsubinterpreters`` on 3.12);
* ``executor``: an executor with 2 workers whose initializer imports the modules in each
  worker, a ``map`` of 8 calls, ``shutdown()``: this package's, without and with
  ``reuse=True``, and the stdlib's ``InterpreterPoolExecutor`` (3.14+).

The modules: none (a bare interpreter), ``json, decimal``, and real packages (``--package``,
repeated; default ``sympy`` and ``networkx``, those installed). A row whose import fails
inside (sympy needs ``_ctypes``, which isolated interpreters refuse on 3.12) says so.
``--json PATH`` writes the rows (``docs/assets/retention/`` has those the docs show:
``docs/executor.md``); the table (Markdown) goes to stdout. Not part of ``python -m
bench`` (it needs no pyperf). The packages are not dependencies of the project; the docs'
figures were made with them installed apart (both are pure Python)::

    pip install --target target/bench-pkgs sympy networkx
    scripts/test.sh run 3.13 -- env PYTHONPATH=$PWD/target/bench-pkgs \
        python -m bench.bench_retention --cycles 8 --json target/retention-3.13.json
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

_SCRIPTS = str(Path(__file__).resolve().parent.parent / "scripts")
if _SCRIPTS not in sys.path:
    sys.path.insert(0, _SCRIPTS)
import _rss  # noqa: E402

WARM_UP = 2
ROOT = Path(__file__).resolve().parent.parent


def _imports(modules: str) -> str:
    return f"import {modules}" if modules else "pass"


def _interpreter_cycle(impl: str, modules: str) -> Any:
    """A function running one cycle: create, import ``modules`` inside, close."""
    code = _imports(modules)
    if impl == "ours":
        from subinterp_rs import Subinterpreter

        def ours() -> None:
            with Subinterpreter.create() as interp:
                interp.exec(code)

        return ours
    try:
        ll = importlib.import_module("_interpreters")  # 3.13+
    except ImportError:
        ll = importlib.import_module("_xxsubinterpreters")  # 3.12

        def stdlib_312() -> None:
            i = ll.create(isolated=True)
            try:
                ll.run_string(i, code)
            finally:
                ll.destroy(i)

        return stdlib_312

    def stdlib() -> None:
        i = ll.create(ll.new_config("isolated"))
        try:
            if ll.exec(i, code) is not None:
                raise RuntimeError(f"{code!r} failed in interpreter {i}")
        finally:
            ll.destroy(i)

    return stdlib


def _executor_cycle(impl: str, modules: str) -> Any:
    """A function running one cycle: an executor of 2 workers importing ``modules`` in each
    (its initializer), 8 calls, shut down."""
    initargs = (_imports(modules),)
    if impl == "stdlib":
        from concurrent.futures import InterpreterPoolExecutor as Std  # type: ignore[attr-defined]

        def stdlib() -> None:
            with Std(max_workers=2, initializer=exec, initargs=initargs) as pool:
                assert list(pool.map(abs, range(-8, 0))) == list(range(8, 0, -1))

        return stdlib
    from subinterp_rs.futures import InterpreterPoolExecutor

    reuse = impl == "ours, reuse=True"

    def ours() -> None:
        with InterpreterPoolExecutor(
            max_workers=2, initializer=exec, initargs=initargs, prewarm=True, reuse=reuse
        ) as pool:
            assert list(pool.map(abs, range(-8, 0))) == list(range(8, 0, -1))

    return ours


def child(case: str, impl: str, modules: str, cycles: int) -> dict[str, Any]:
    """One row, measured in this (fresh) process."""
    if modules:
        exec(_imports(modules), {})
    if impl != "ours":
        from subinterp_rs import _preimport

        _preimport.import_in_main_first(legacy=False)  # what our create does, for the stdlib
    run = (_interpreter_cycle if case == "interpreter" else _executor_cycle)(impl, modules)
    for _ in range(WARM_UP):
        run()
    before = _rss.settled_rss()
    for _ in range(cycles):
        run()
    after = _rss.settled_rss()
    gc.collect()
    return {"per_cycle": (after - before) / cycles, "before": before, "after": after}


def _packages(names: list[str] | None) -> list[str]:
    """The real packages to import: those of ``names`` (default: sympy, networkx) installed."""
    found = [n for n in names or ["sympy", "networkx"] if importlib.util.find_spec(n)]
    if names and len(found) < len(names):
        raise SystemExit(f"not installed: {sorted(set(names) - set(found))}")
    return found


def _error(stderr: str) -> str:
    """The last line of a child's traceback, cut to its first sentence."""
    last = (stderr.strip().splitlines() or ["?"])[-1]
    return last.split(": the extension module")[0][:100]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument(
        "--package", action="append", help="a real package (default: sympy, networkx)"
    )
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    import_sets = ["", "json, decimal", *_packages(args.package)]
    rows: list[dict[str, Any]] = []
    impls = {
        "interpreter": ["ours", "stdlib"],
        "executor": ["ours", "ours, reuse=True"]
        + (["stdlib"] if sys.version_info >= (3, 14) else []),
    }
    version = sys.version.split()[0]
    for case, names in impls.items():
        for modules in import_sets:
            for impl in names:
                cmd = [sys.executable, "-m", "bench.bench_retention", "--child"]
                cmd += [json.dumps([case, impl, modules, args.cycles])]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
                row: dict[str, Any] = {
                    "python": version,
                    "case": case,
                    "impl": impl,
                    "imports": modules or "(none)",
                    "cycles": args.cycles,
                }
                if done.returncode:
                    row["error"] = _error(done.stderr)
                else:
                    row.update(json.loads(done.stdout.strip().splitlines()[-1]))
                rows.append(row)
                shown = row.get("error") or f"{row['per_cycle'] / _rss.MIB:.2f} MiB"
                print(f"{case} {impl} [{row['imports']}]: {shown}", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    print(f"\nPython {version}, {args.cycles} cycles after {WARM_UP}, load {load:.1f}\n")
    print("| case | imports | impl | growth per cycle |")
    print("|---|---|---|---|")
    for row in rows:
        shown = row.get("error") or f"{row['per_cycle'] / _rss.MIB:+.2f} MiB"
        print(f"| {row['case']} | {row['imports']} | {row['impl']} | {shown} |")
    if args.json:
        args.json.write_text(json.dumps({"load": load, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        case, impl, modules, cycles = json.loads(sys.argv[2])
        print(json.dumps(child(case, impl, modules, cycles)), flush=True)
    else:
        main()
