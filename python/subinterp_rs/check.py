"""Which modules load in subinterpreters: ``python -m subinterp_rs.check [MODULE ...]``.

Each module is imported in a fresh interpreter of the chosen config, each attempt in a child
process of its own, so a crash is a result (with its signal), not a dead run. A result says:

* ``loads``: it imports;
* ``loads-without-accelerators``: it imports, but an extension module it loads in the main
  interpreter is missing inside (PyYAML without libyaml, ``msgpack`` on its pure-Python
  fallback, simplejson without its speedups): slower, same results;
* ``refuses``: the import raises (``reason``: the exception); for the isolated config,
  ``legacy_loads`` says whether the legacy config would load it;
* ``crashes``: the child process died (``signal``: the signal's number, or its exit status).

::

    python -m subinterp_rs.check yaml msgpack psutil
    python -m subinterp_rs.check --json --config legacy numpy

Without modules it checks every top-level module of the environment (``pkgutil``), a few at a
time. :func:`check` does the same and returns :class:`Result`\\ s.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import importlib.util
import json
import os
import pkgutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from typing import Final, Literal

__all__ = ["CONFIGS", "Result", "all_modules", "check", "main"]


CONFIGS: Final = ("isolated", "legacy")
"""The configs a module can be checked under (``InterpreterConfig.isolated()``/``legacy()``)."""

SKIPPED: Final = frozenset(
    {"antigravity", "this", "__hello__", "__phello__", "idlelib", "turtledemo", "__main__"}
)
"""Top-level modules the default run leaves out: importing them has effects (a browser, a
poem, a window), not answers."""

# Run in the child: import in main, then in a fresh interpreter; one JSON line on stdout.
_PROBE = r"""
import json, sys
name, config = sys.argv[1], sys.argv[2]

def extensions():
    from importlib.machinery import ExtensionFileLoader
    return sorted(n for n, m in list(sys.modules.items())
                  if isinstance(getattr(getattr(m, "__spec__", None), "loader", None),
                                ExtensionFileLoader))

before = set(extensions())
try:
    __import__(name)
    main_error = None
except BaseException as exc:
    main_error = f"{type(exc).__name__}: {exc}"
in_main = sorted(set(extensions()) - before)

from subinterp_rs import ExecutionFailed, InterpreterConfig, Subinterpreter
cfg = InterpreterConfig.legacy() if config == "legacy" else InterpreterConfig.isolated()
inside_error = None
inside = []
if main_error is None:
    si = Subinterpreter.create(cfg)
    try:
        try:
            si.exec("import " + name)
        except ExecutionFailed as exc:
            # CPython's reason, without the advice subinterp_rs adds to it
            msg = exc.excinfo.msg.split(": the extension module ", 1)[0]
            inside_error = f"{exc.excinfo.type.__name__}: {msg}"
        else:
            si.prepare_main(wanted=tuple(in_main))
            si.exec(
                "import sys\n"
                "__missing = tuple(n for n in wanted if n not in sys.modules)\n"
            )
            inside = list(si.call(eval, "__missing"))
    finally:
        si.close()
print(json.dumps({"main_error": main_error, "inside_error": inside_error, "missing": inside}))
sys.stdout.flush()
"""


@dataclasses.dataclass(frozen=True)
class Result:
    """What importing ``module`` in a fresh interpreter of ``config`` did."""

    module: str
    config: Literal["isolated", "legacy"]
    status: Literal["loads", "loads-without-accelerators", "refuses", "crashes"]
    reason: str | None = None
    """Why it refuses (the exception, ``"Type: message"``), or how the child died."""
    missing_extensions: tuple[str, ...] = ()
    """For ``loads-without-accelerators``: the extension modules loaded in main, not inside."""
    signal: int | None = None
    """For ``crashes``: the signal that ended the child (or ``None``: it exited with an error)."""
    legacy_loads: bool | None = None
    """For a refusal under ``isolated``: whether the legacy config loads it (``None``: not
    asked)."""
    python: str = dataclasses.field(default_factory=lambda: sys.version.split()[0])
    """The CPython version that ran the check."""


def _attempt(module: str, config: Literal["isolated", "legacy"], timeout: float) -> Result:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, module, config],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else None,
        )
    except subprocess.TimeoutExpired:
        return Result(module, config, "crashes", f"no answer within {timeout:g} s (hung)")
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")), None)
    if proc.returncode < 0:
        sig = -proc.returncode
        return Result(module, config, "crashes", _signal_name(sig), signal=sig)
    if line is None:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return Result(module, config, "crashes", tail[0])
    answer = json.loads(line)
    if answer["main_error"] is not None:
        return Result(module, config, "refuses", "in main too: " + answer["main_error"])
    if answer["inside_error"] is not None:
        return Result(module, config, "refuses", answer["inside_error"])
    if answer["missing"]:
        return Result(
            module,
            config,
            "loads-without-accelerators",
            missing_extensions=tuple(answer["missing"]),
        )
    if proc.returncode != 0:
        return Result(module, config, "crashes", f"exit status {proc.returncode} after loading")
    return Result(module, config, "loads")


def _signal_name(sig: int) -> str:
    try:
        return f"killed by {signal.Signals(sig).name}"
    except ValueError:
        return f"killed by signal {sig}"


def _check_one(module: str, config: Literal["isolated", "legacy"], timeout: float) -> Result:
    result = _attempt(module, config, timeout)
    if (
        result.status == "refuses"
        and config == "isolated"
        and result.reason is not None
        and not result.reason.startswith("in main too")
    ):
        legacy = _attempt(module, "legacy", timeout)
        result = dataclasses.replace(result, legacy_loads=legacy.status.startswith("loads"))
    return result


def all_modules() -> list[str]:
    """Every top-level module of this environment (``pkgutil.iter_modules()`` and the
    built-in ones), without :data:`SKIPPED`, sorted."""
    names = {m.name for m in pkgutil.iter_modules()} | set(sys.builtin_module_names)
    return sorted(n for n in names if n not in SKIPPED and n.isidentifier())


def check(
    modules: Iterable[str] | None = None,
    *,
    config: Literal["isolated", "legacy"] = "isolated",
    timeout: float = 120.0,
    jobs: int | None = None,
) -> list[Result]:
    """Import each of ``modules`` (default: :func:`all_modules`) in a fresh interpreter of
    ``config``, each in a child process; the results in the order given.

    Raises:
        ValueError: an unknown config, an empty module name, ``timeout`` or ``jobs`` < 1.
        ModuleNotFoundError: a module this environment does not have.
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}: use one of {', '.join(CONFIGS)}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0, got {timeout!r}")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs!r}")
    names = all_modules() if modules is None else list(modules)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a module name must be a non-empty str, got {name!r}")
        if modules is not None and _find(name) is None:
            raise ModuleNotFoundError(f"no module named {name!r} in this environment", name=name)
    workers = jobs or max(1, min(8, (os.cpu_count() or 1)))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda n: _check_one(n, config, timeout), names))


def _find(name: str) -> object:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _row(r: Result) -> str:
    detail = r.reason or ""
    if r.missing_extensions:
        detail = "missing inside: " + ", ".join(r.missing_extensions)
    if r.legacy_loads is not None:
        detail += "; legacy config: " + ("loads" if r.legacy_loads else "refuses too")
    return f"{r.module:28} {r.status:28} {detail}"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; exit status 0 (2 for bad arguments, as argparse)."""
    parser = argparse.ArgumentParser(
        prog="python -m subinterp_rs.check",
        description="Import modules in fresh subinterpreters, each in a child process, and "
        "say which load, which lose their accelerators, which refuse and which crash.",
    )
    parser.add_argument("modules", nargs="*", help="default: every top-level module")
    parser.add_argument("--json", action="store_true", help="one JSON list of results")
    parser.add_argument("--config", choices=CONFIGS, default="isolated")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per attempt")
    parser.add_argument("--jobs", type=int, default=None, help="attempts at once")
    opts = parser.parse_args(argv)
    try:
        results = check(
            opts.modules or None, config=opts.config, timeout=opts.timeout, jobs=opts.jobs
        )
    except (ValueError, ModuleNotFoundError) as exc:
        parser.error(str(exc))
    if opts.json:
        print(json.dumps([dataclasses.asdict(r) for r in results], indent=1))
    else:
        print(f"CPython {sys.version.split()[0]}, config {opts.config}")
        for r in results:
            print(_row(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
