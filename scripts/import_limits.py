"""Which modules import in isolated and in legacy subinterpreters, on this Python.

    python scripts/import_limits.py                      (in a venv with subinterp_rs)
    python scripts/import_limits.py --json out-3.12.json
    python scripts/import_limits.py --merge out-3.12.json out-3.13.json ... [--compact]
    python scripts/import_limits.py --crash-scan [--no-preimport] [MODULE ...]

Each module is imported in two fresh interpreters of each kind (``Subinterpreter.create()`` and
``Subinterpreter.create(InterpreterConfig.legacy())``), which are then closed, and then in the
main interpreter; once closing the first-made first and once the other way round, each attempt
in a child process of its own, so that one module that crashes cannot hide the others. (One
interpreter per process hides the crashes of 3.12 and 3.13 where the second interpreter
importing a module uses state the first one set up.) A module the main interpreter cannot
import is "not installed". For stdlib modules with a pure-Python fallback (``decimal``,
``datetime``, ``hashlib``...) the row says which implementation was loaded.

``--crash-scan`` runs that two-interpreter round (isolated, or ``--config legacy``) over every
stdlib extension module and every top-level stdlib module (or the MODULEs given) and prints
those that crash;
``--no-preimport`` leaves out the package's fix (the modules ``subinterp_rs._preimport`` imports
in main before the first subinterpreter), which is how its lists were measured.

Prints a markdown table; ``--json`` also writes the results, and ``--merge`` prints one table
for several Pythons' results (rows: modules; columns: each Python's isolated and legacy), or
with ``--compact`` only the modules an isolated interpreter fails to import somewhere (the
table in README.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import sysconfig
from typing import TypedDict

# (module, C modules whose presence in sys.modules afterwards tells which implementation
# loaded: the public module falls back to pure Python when they are refused).
MODULES: list[tuple[str, tuple[str, ...]]] = [
    ("_decimal", ()),
    ("decimal", ("_decimal",)),
    ("_datetime", ()),
    ("datetime", ("_datetime",)),
    ("_zoneinfo", ()),
    ("zoneinfo", ("_zoneinfo",)),
    ("calendar", ()),
    ("tomllib", ()),
    ("http.client", ()),
    ("urllib.request", ()),
    ("fractions", ()),
    ("statistics", ()),
    ("_asyncio", ()),
    ("asyncio", ("_asyncio",)),
    ("_ctypes", ()),
    ("ctypes", ()),
    ("readline", ()),
    ("_curses", ()),
    ("_tkinter", ()),
    ("sqlite3", ()),
    ("ssl", ()),
    ("_hashlib", ()),
    ("hashlib", ("_hashlib",)),
    ("zlib", ()),
    ("lzma", ()),
    ("bz2", ()),
    ("pyexpat", ()),
    ("xml.etree.ElementTree", ("_elementtree",)),
    ("array", ()),
    ("_pickle", ()),
    ("_json", ()),
    ("select", ()),
    ("socket", ()),
    ("mmap", ()),
    ("_multiprocessing", ()),
    ("_lsprof", ()),
    ("numpy", ()),
    ("psutil", ()),
]

CONFIGS = ("isolated", "legacy")

# Run in the child: import `module` in two fresh interpreters of `config`, close them in
# `order` ("ab": first-made first), import it in main; print one JSON line (the first
# interpreter's result). argv: module config order preimport accel...
CHILD = """
import importlib, json, sys
import subinterp_rs._preimport
from subinterp_rs import ExecutionFailed, InterpreterConfig, Subinterpreter
module, config, order, preimport, *accel = sys.argv[1:]
if preimport == "no":
    subinterp_rs._preimport._done = subinterp_rs._preimport._done_legacy = True  # no fix
cfg = InterpreterConfig.legacy() if config == "legacy" else InterpreterConfig.isolated()
pair = [Subinterpreter.create(cfg), Subinterpreter.create(cfg)]
results = []
for si in pair:
    try:
        si.exec(f"import sys, {module}")
        loaded = [m for m in accel if si.call(eval, f"{m!r} in sys.modules")]
        missing = [m for m in accel if m not in loaded]
        results.append({"ok": True, "fallback": missing})
    except ExecutionFailed as exc:
        results.append({"ok": False, "error": exc.excinfo.type.__name__, "msg": exc.excinfo.msg})
for si in (pair if order == "ab" else pair[::-1]):
    si.close()
try:
    importlib.import_module(module)
except ImportError:
    pass
print(json.dumps(results[0]), flush=True)
"""


class Result(TypedDict, total=False):
    ok: bool
    fallback: list[str]
    error: str
    msg: str
    skipped: str
    exit_crash: str


def version() -> str:
    v = sys.version_info
    debug = "d" if hasattr(sys, "gettotalrefcount") else ""
    return f"{v.major}.{v.minor}{debug}"


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def attempt(
    module: str, config: str, accel: tuple[str, ...], timeout: float, preimport: bool = True
) -> Result:
    """Both orders of closing; the first result, or the first crash."""
    result: Result = {}
    for order in ("ab", "ba"):
        result = attempt_order(module, config, order, accel, timeout, preimport)
        if not result.get("ok", True) and result.get("error") in ("crash", "hang"):
            return result
        if "exit_crash" in result:
            return result
    return result


def attempt_order(
    module: str, config: str, order: str, accel: tuple[str, ...], timeout: float, preimport: bool
) -> Result:
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                module,
                config,
                order,
                "yes" if preimport else "no",
                *accel,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "hang", "msg": f"no result within {timeout:g} s"}
    lines = proc.stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result: Result = json.loads(lines[-1])
        if proc.returncode != 0:
            # Imported and closed, then the process died: at exit, in CPython's finalization.
            result["exit_crash"] = exit_text(proc.returncode)
        return result
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"ok": False, "error": "crash", "msg": f"{exit_text(proc.returncode)}: {tail}"}


def exit_text(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def stdlib_modules() -> list[str]:
    """Every stdlib extension module (built in, or in lib-dynload) and top-level module, less
    those whose import has effects outside the process (a browser, a window, the terminal)."""
    names = set(sys.builtin_module_names) | set(sys.stdlib_module_names)
    shared = sysconfig.get_config_var("DESTSHARED")
    if shared and os.path.isdir(shared):
        names |= {e.split(".", 1)[0] for e in os.listdir(shared) if e.endswith(".so")}
    return sorted(names - {"antigravity", "this", "idlelib", "turtledemo", "turtle", "tkinter"})


def crash_scan(modules: list[str], timeout: float, preimport: bool, config: str) -> int:
    """Print the modules whose two-interpreter round crashes; the number of them."""
    print(
        f"Python {sys.version.split()[0]}: {len(modules)} modules, two {config} interpreters "
        f"each, closed in both orders, then main ({'with' if preimport else 'without'} "
        "the package's imports in main first)",
        flush=True,
    )
    crashed = 0
    for module in modules:
        if not installed(module):
            continue
        r = attempt(module, config, (), timeout, preimport)
        if r.get("error") in ("crash", "hang") or "exit_crash" in r:
            crashed += 1
            print(f"CRASH {module}: {r.get('exit_crash') or r.get('msg')}", flush=True)
    print(f"{crashed} of {len(modules)} crash")
    return crashed


def measure(timeout: float) -> dict[str, dict[str, Result]]:
    results: dict[str, dict[str, Result]] = {}
    for module, accel in MODULES:
        if not installed(module):
            results[module] = {c: {"skipped": "not installed"} for c in CONFIGS}
            continue
        results[module] = {c: attempt(module, c, accel, timeout) for c in CONFIGS}
    return results


def cell(r: Result, short: bool = False) -> str:
    if "skipped" in r:
        return "n/a"
    if r.get("ok"):
        fallback = r.get("fallback") or []
        if not fallback:
            text = "ok"
        elif short:
            text = "ok (pure Python)"
        else:
            text = f"ok, without `{'`, `'.join(fallback)}`"
        if "exit_crash" in r:
            text += (
                ", **crash at exit**" if short else f", then **crash at exit** ({r['exit_crash']})"
            )
        return text
    msg = r.get("msg", "")
    if r.get("error") == "ImportError" and "does not support loading in subinterpreters" in msg:
        return "**no**" if short else "**no** (not multi-interpreter)"
    if short:
        return f"**no** ({r.get('error')})"
    return f"**no** ({r.get('error')}: {msg[:60]})"


def table(runs: dict[str, dict[str, dict[str, Result]]]) -> str:
    versions = list(runs)
    head = ["module"] + [f"{v} {c}" for v in versions for c in CONFIGS]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for module, _ in MODULES:
        cells = [
            cell(runs[v].get(module, {}).get(c, {"skipped": "?"}))
            for v in versions
            for c in CONFIGS
        ]
        rows.append(f"| `{module}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def compact(runs: dict[str, dict[str, dict[str, Result]]], versions: dict[str, str]) -> str:
    """The isolated column of each Python, only for modules that fail somewhere, and a line
    each for the modules that import everywhere and for the legacy results."""
    head = ["module", *(f"{versions[v]} isolated" for v in runs)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    clean = []
    for module, _ in MODULES:
        cells = [
            cell(runs[v].get(module, {}).get("isolated", {"skipped": "?"}), short=True)
            for v in runs
        ]
        if all(c in ("ok", "n/a") for c in cells):
            clean.append(f"`{module}`")
        else:
            rows.append(f"| `{module}` | " + " | ".join(cells) + " |")
    legacy_bad = [
        f"`{module}` on {versions[v]}"
        for module, _ in MODULES
        for v in runs
        if cell(runs[v].get(module, {}).get("legacy", {"skipped": "?"})) not in ("ok", "n/a")
    ]
    rows.append("")
    rows.append(f"Isolated, on every version: {', '.join(clean)} import.")
    rows.append(
        "Legacy: every module imports on every version."
        if not legacy_bad
        else f"Legacy failures: {', '.join(legacy_bad)}."
    )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--merge", nargs="+", metavar="FILE", help="one table of JSON results")
    parser.add_argument(
        "--compact", action="store_true", help="with --merge: only isolated failures"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt")
    parser.add_argument(
        "--crash-scan", action="store_true", help="every stdlib module: which crash"
    )
    parser.add_argument(
        "--no-preimport", action="store_true", help="with --crash-scan: without the fix"
    )
    parser.add_argument(
        "--config", choices=CONFIGS, default="isolated", help="with --crash-scan: the config"
    )
    parser.add_argument("modules", nargs="*", help="with --crash-scan: these modules only")
    args = parser.parse_args()
    if args.crash_scan:
        crash_scan(
            args.modules or stdlib_modules(), args.timeout, not args.no_preimport, args.config
        )
        return 0
    if args.merge:
        runs: dict[str, dict[str, dict[str, Result]]] = {}
        versions: dict[str, str] = {}
        for path in args.merge:
            with open(path) as f:
                data = json.load(f)
            # Keyed by the full version: 3.13.0 and the newest 3.13 are two columns.
            key = data["version"].split()[0] + ("d" if data["python"].endswith("d") else "")
            runs[key] = data["results"]
            versions[key] = key
        print(compact(runs, versions) if args.compact else table(runs))
        return 0
    results = measure(args.timeout)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"python": version(), "version": sys.version, "results": results}, f, indent=1
            )
    print(f"Python {sys.version.split()[0]} ({version()})\n")
    print(table({version(): results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
