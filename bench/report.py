"""Results of a run: rows, the project's targets, the tables.

A report (what ``python -m bench`` writes as ``report.json``) holds the machine, the rows of
every case (from pyperf's JSON for the timed cases, from ``bench.harness`` for the others)
and the targets judged on them. ``python -m bench.report REPORT.json [--markdown]`` prints
one again: as the text table, or as the Markdown the documentation's benchmarks page
includes (``docs/assets/bench/``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from typing import Any, Final

__all__ = [
    "Row",
    "Target",
    "evaluate_targets",
    "format_markdown",
    "format_table",
    "format_targets",
    "machine_info",
    "rows_from_pyperf",
]

KIB: Final = 1024
MIB: Final = 1024 * 1024


@dataclasses.dataclass
class Row:
    """One measurement: ``value`` in ``unit`` (the median of ``samples``)."""

    case: str
    op: str
    impl: str
    role: str
    """Who it is: see ``bench.contenders``."""
    unit: str
    """``s`` (per operation), ``B/s``, ``items/s``, ``x`` (speedup) or ``B`` (memory)."""
    value: float | None
    samples: list[float] = dataclasses.field(default_factory=list)
    note: str = ""
    status: str = "ok"
    """``ok``, ``skipped`` (not available here) or ``error``."""

    @property
    def higher_is_better(self) -> bool:
        return self.unit not in ("s", "B")

    def formatted(self) -> str:
        """The value with its unit, or why there is none."""
        if self.status != "ok":
            return f"{self.status}: {self.note}"
        return fmt_value(self.value, self.unit)


@dataclasses.dataclass
class Target:
    """A goal stated as a ratio (ours against another, or a speedup against a core count)."""

    name: str
    goal: float
    ratio: float | None
    status: str
    """``PASS``, ``MISS`` or ``n/a``."""
    detail: str
    tolerance: float = 0.0
    """``ratio >= goal * (1 - tolerance)`` passes: "no worse than" goals allow for noise."""


# -- rows from pyperf ---------------------------------------------------------------------------


def rows_from_pyperf(path: str | None, status: Sequence[dict[str, str]]) -> list[Row]:
    """The rows of the timed cases: one per benchmark of pyperf's JSON file ``path`` (values
    are seconds per operation; throughput units are turned into bytes or items per second),
    plus the skipped and failed contenders of ``status``, in the order the cases list them."""
    import pyperf

    rows: list[Row] = []
    if path is not None and os.path.exists(path):
        for bench in pyperf.BenchmarkSuite.load(path).get_benchmarks():
            meta = bench.get_metadata()
            unit, per_op = str(meta["si_unit"]), float(meta["si_per_op"])
            values = list(bench.get_values())
            samples = values if unit == "s" else [per_op / v for v in values]
            med = bench.median()
            rows.append(
                Row(
                    str(meta["si_case"]),
                    str(meta["si_op"]),
                    str(meta["si_impl"]),
                    str(meta["si_role"]),
                    unit,
                    med if unit == "s" else per_op / med,
                    samples,
                    str(meta.get("si_note", "")),
                )
            )
    for s in status:
        rows.append(
            Row(
                s["case"],
                s["op"],
                s["impl"],
                s["role"],
                s["unit"],
                None,
                [],
                s["note"],
                s["status"],
            )
        )
    return rows


# -- targets --------------------------------------------------------------------------------


def _find(rows: Sequence[Row], case: str, op_prefix: str, role: str) -> Row | None:
    for row in rows:
        if row.case == case and row.op.startswith(op_prefix) and row.role == role:
            return row
    return None


def ratio(ours: Row | None, theirs: Row | None) -> float | None:
    """How many times better ours is (faster, higher throughput, less memory)."""
    if ours is None or theirs is None or not ours.value or not theirs.value:
        return None
    if ours.higher_is_better:
        return ours.value / theirs.value
    return theirs.value / ours.value


def _target(
    name: str,
    goal: float,
    ratio: float | None,
    why_na: str,
    detail: str,
    tolerance: float = 0.0,
) -> Target:
    if ratio is None:
        return Target(name, goal, None, "n/a", why_na, tolerance)
    status = "PASS" if ratio >= goal * (1 - tolerance) else "MISS"
    return Target(name, goal, ratio, status, detail, tolerance)


_NOISE: Final = 0.05
"""How much worse "no worse than" targets may measure and still pass (timer and page noise)."""


def evaluate_targets(rows: Sequence[Row], workers: int, version: tuple[int, int]) -> list[Target]:
    """The project's targets, judged on the rows of a run on Python ``version``."""
    out: list[Target] = []
    is314 = version >= (3, 14)
    for label in ("exec", "call"):
        ours = _find(rows, "roundtrip", label, "ours_facade")
        std = _find(rows, "roundtrip", label, "std_hl")
        out.append(
            _target(
                f"{label} round trip >= 8x the 3.14+ stdlib",
                8.0,
                ratio(ours, std) if is314 else None,
                "needs Python 3.14+" if not is314 else "not measured",
                "ours interpreters vs concurrent.interpreters",
            )
        )
    ll_exec = _find(rows, "roundtrip", "exec", "std_ll")
    ll_name = "_interpreters.exec" if version >= (3, 13) else "_xxsubinterpreters.run_string"
    for label in ("exec", "call"):
        ours = _find(rows, "roundtrip", label, "ours")
        out.append(
            _target(
                f"{label} round trip >= 2.5x stdlib low-level exec",
                2.5,
                ratio(ours, ll_exec),
                "not measured",
                f"ours Subinterpreter.{label} vs {ll_name}('pass')",
            )
        )
    ours_q = _find(rows, "queue", "", "ours")
    std_q = _find(rows, "queue", "", "std_queue")
    out.append(
        _target(
            "queue throughput >= 1.5x stdlib",
            1.5,
            ratio(ours_q, std_q),
            "no stdlib queue measured",
            f"ours vs {std_q.impl if std_q else 'stdlib'}",
        )
    )
    ours_pool = _find(rows, "executor_tiny", "", "ours_pool")
    std_pool = _find(rows, "executor_tiny", "", "std_pool")
    if not is314:
        why = "needs Python 3.14+ (stdlib executor)"
    elif ours_pool is None or ours_pool.value is None:
        why = "ours InterpreterPoolExecutor not available"
    else:
        why = "not measured"
    out.append(
        _target(
            "executor tiny-task throughput >= 3x stdlib executor",
            3.0,
            ratio(ours_pool, std_pool),
            why,
            "ours vs stdlib InterpreterPoolExecutor",
        )
    )
    tpe = _find(rows, "executor_tiny", "", "threads")
    out.append(
        _target(
            "executor tiny-task throughput >= 1.5x ThreadPoolExecutor",
            1.5,
            ratio(ours_pool, tpe),
            "not measured",
            "ours InterpreterPoolExecutor vs ThreadPoolExecutor, same run",
        )
    )
    out.append(
        _target(
            "executor tiny-task throughput >= 10x stdlib executor",
            10.0,
            ratio(ours_pool, std_pool),
            why,
            "ours vs stdlib InterpreterPoolExecutor",
        )
    )
    out.append(
        _target(
            "map tiny-task throughput >= 3x ThreadPoolExecutor.map",
            3.0,
            ratio(
                _find(rows, "executor_map", "map, ", "ours_pool"),
                _find(rows, "executor_map", "map, ", "threads"),
            ),
            "not measured",
            "ours map() (chunk size picked by itself) vs ThreadPoolExecutor.map, chunksize=1",
        )
    )
    for label in ("call(f, dict", "call(f, list"):
        ours_x = _find(rows, "crossing", label, "ours")
        out.append(
            _target(
                f"{label}...) as data >= 3x our pickle path",
                3.0,
                ratio(ours_x, _find(rows, "crossing", label, "ours_pickle")),
                "not measured",
                "built-in containers vs a subclass of them (pickled), same content",
            )
        )
        out.append(
            _target(
                f"{label}...) >= 5x the 3.14 stdlib",
                5.0,
                ratio(ours_x, _find(rows, "crossing", label, "std_hl")) if is314 else None,
                "needs Python 3.14+" if not is314 else "not measured",
                "ours Subinterpreter.call vs concurrent.interpreters call",
            )
        )
    op = f"{workers} workers"
    pool = _find(rows, "executor_cpu", op, "ours_pool")
    which = "ours InterpreterPoolExecutor"
    if pool is None or pool.value is None:
        pool = _find(rows, "executor_cpu", op, "ours_raw_pool")
        which = "ours threads+Subinterpreter (no executor)"
    speedup = pool.value if pool is not None else None
    procs = _find(rows, "executor_cpu", op, "procs")
    # What this machine allowed in the same rounds (other load lowers every speedup alike).
    ref = f"; ProcessPoolExecutor {procs.value:.2f}x" if procs and procs.value else ""
    out.append(
        _target(
            f"CPU-bound speedup >= 0.95 x {workers} cores",
            0.95,
            speedup / workers if speedup else None,
            "executor_cpu not measured",
            f"{which}: {speedup:.2f}x on {workers} workers{ref}" if speedup else "",
        )
    )
    # The same, against what processes reached in the same rounds: on a shared machine the
    # cores are not all ours, and this ratio still shows whether interpreters scale as well.
    out.append(
        _target(
            "CPU-bound speedup >= 0.95 x ProcessPoolExecutor's",
            0.95,
            ratio(pool, procs),
            "executor_cpu not measured",
            f"{which} vs ProcessPoolExecutor, {workers} workers, same rounds",
        )
    )
    out.append(
        _target(
            "create+close no slower than stdlib",
            1.0,
            ratio(_find(rows, "create", "", "ours"), _find(rows, "create", "", "std_ll")),
            "not measured",
            "ours Subinterpreter vs stdlib low-level create+destroy",
            tolerance=_NOISE,
        )
    )
    out.append(
        _target(
            "idle memory per interpreter no more than stdlib",
            1.0,
            ratio(_find(rows, "memory", "", "ours"), _find(rows, "memory", "", "std_ll")),
            "not measured",
            "RSS per interpreter, ours vs stdlib low-level",
            tolerance=_NOISE,
        )
    )
    return out


# -- formatting ---------------------------------------------------------------------------------


def _fmt_time(t: float) -> str:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t / 1e-9:.3g} ns"


def fmt_value(value: float | None, unit: str) -> str:
    """A value for people: ``1.34 us``, ``22.2 GB/s``, ``878 k/s``, ``1.87x``, ``2.5 MiB``."""
    if value is None:
        return "-"
    if unit == "s":
        return _fmt_time(value)
    if unit == "B/s":
        gbs = value / 1e9
        return f"{gbs:,.0f} GB/s" if gbs >= 1000 else f"{gbs:.3g} GB/s"
    if unit == "items/s":
        if value >= 1e6:
            return f"{value / 1e6:.3g} M/s"
        if value >= 1e3:
            return f"{value / 1e3:.3g} k/s"
        return f"{value:.3g} /s"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "B":
        return f"{value / MIB:.3g} MiB"
    return f"{value:.3g} {unit}"


def _spread(row: Row) -> str:
    """The standard deviation of the samples, in percent of the median."""
    if not row.samples or not row.value or len(row.samples) < 2:
        return ""
    return f"±{statistics.stdev(row.samples) / row.value * 100:.0f}%"


def _table_lines(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    """Lines of (case, operation, implementation, median, spread, ours vs this, note):
    ``ours vs this`` compares with the group's ``ours`` row (else its first ``ours_*`` one)."""
    lines: list[tuple[str, ...]] = []
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.case, row.op), []).append(row)
    for (case, op), group in groups.items():
        ref = next((x for x in group if x.role == "ours" and x.value), None)
        if ref is None:
            ref = next((x for x in group if x.role.startswith("ours") and x.value), None)
        first = True
        for row in group:
            r = ratio(ref, row) if row.value and row is not ref else None
            rel = "ref" if row is ref else (f"{r:.2f}x" if r else "")
            note = row.note if row.status == "ok" else f"{row.status}: {row.note}"
            lines.append(
                (
                    case if first else "",
                    op if first else "",
                    row.impl,
                    fmt_value(row.value, row.unit),
                    _spread(row),
                    rel,
                    note,
                )
            )
            first = False
    return lines


_HEAD: Final = ("case", "operation", "implementation", "median", "spread", "ours vs this", "note")


def format_table(rows: Sequence[Row]) -> str:
    """The results as a text table."""
    lines = [_HEAD, *_table_lines(rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEAD) - 1)]
    out = []
    for i, line in enumerate(lines):
        cells = [cell.ljust(w) for cell, w in zip(line, widths, strict=False)]
        out.append("  ".join([*cells, line[-1]]).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(out)


def format_targets(targets: Sequence[Target]) -> str:
    lines = []
    for t in targets:
        r = f"{t.ratio:.2f}" if t.ratio is not None else "-"
        goal = f"goal >= {t.goal:g}" + (f", {t.tolerance:.0%} noise allowed" if t.tolerance else "")
        lines.append(f"{t.status:<4}  {t.name:<52} ratio {r:>6} ({goal})  {t.detail}")
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown(report: dict[str, Any]) -> str:
    """A report as Markdown: what ran where, the table and the targets."""
    m = report["machine"]
    rows = [Row(**row) for row in report["rows"]]
    targets = [Target(**t) for t in report["targets"]]
    kind = "quick" if report["settings"].get("quick") else "full"
    out = [
        f"CPython {m['python']}, {m['cores']} cores ({m['cpu']}, {m['platform']}), "
        f"{kind} run{', ' + report['date'] if report.get('date') else ''}. "
        "`ours vs this` above 1: ours is faster, moves more or uses less memory.",
        "",
        "| " + " | ".join(_HEAD) + " |",
        "|" + "---|" * len(_HEAD),
    ]
    for line in _table_lines(rows):
        cells = [_md_cell(c) for c in line]
        # Code spans for the operations (`exec('pass')`, `call(f, 1, 2)`).
        if cells[1] and ("(" in cells[1]):
            cells[1] = f"`{line[1]}`"
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "| target | ratio | result | measured |", "|---|---|---|---|"]
    for t in targets:
        r = f"{t.ratio:.2f}" if t.ratio is not None else "-"
        goal = f" ({t.tolerance:.0%} noise allowed)" if t.tolerance else ""
        out.append(f"| {_md_cell(t.name)}{goal} | {r} | {t.status} | {_md_cell(t.detail)} |")
    for name, why in report.get("failed_cases", {}).items():
        out.append(f"\ncase {name} FAILED: {why}")
    return "\n".join(out) + "\n"


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):  # AttributeError: Windows has no load average
        return None


def machine_info(workers: int) -> dict[str, Any]:
    """Where the run happened: Python, machine, load."""
    from bench.contenders import mp_context

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from subinterp_rs import _native

    native = getattr(_native, "__file__", None) or "?"
    try:
        native_size = os.path.getsize(native)
    except OSError:
        native_size = 0
    return {
        "native_module": native,
        "native_size": native_size,
        "loadavg": _loadavg(),
        "python": sys.version.split()[0],
        "python_full": sys.version,
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "workers": workers,
        "start_method": mp_context().get_start_method(),
    }


def load_warnings(machine: dict[str, Any]) -> list[str]:
    """A warning for each load average reading that says other processes competed."""
    cores = machine.get("cores") or 1
    out = []
    for key, when in (("loadavg", "start"), ("loadavg_end", "end")):
        load = machine.get(key)
        if load and load[0] > 0.75 * cores:
            out.append(
                f"warning: load average {load[0]} on {cores} cores ({when}): other processes "
                "compete; ratios (measured in the same run) hold up better than absolute numbers"
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report", description="Print a report of python -m bench again."
    )
    parser.add_argument("report", help="a report.json of python -m bench")
    parser.add_argument("--markdown", action="store_true", help="as Markdown (for docs/)")
    args = parser.parse_args(argv)
    with open(args.report) as f:
        report = json.load(f)
    if args.markdown:
        print(format_markdown(report), end="")
    else:
        print(format_table([Row(**row) for row in report["rows"]]))
        print("\ntargets:")
        print(format_targets([Target(**t) for t in report["targets"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
