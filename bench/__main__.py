"""``python -m bench``: every case, the report, the targets and the plot, in one run.

1. the timed cases through pyperf (``python -m bench.timed``, a process of its own that
   starts pyperf's workers), into ``OUT/timed.json``;
2. the cases of the own harness (``bench.harness``), in this process;
3. ``OUT/report.json`` (every row and target), ``OUT/report.md`` (the Markdown the docs
   include), ``OUT/plot.png``, and the text table with PASS/MISS per target on stdout.

``--quick`` asks pyperf for 2 worker processes of 2 values each (after its calibration run)
and the harness for 3 rounds: rough figures, about a minute of CPU (8 minutes of wall time
on 2 cores that other work kept busy, load average 12-15, on 2026-12-07). Without it,
pyperf's defaults (20 processes of 3 values) make a full run long; pyperf's own options go
after ``--`` (``-- --fast``, ``-- --rigorous``, ``-- -p 6``). ``--compare-to`` runs pyperf's
``compare_to`` against an earlier run. ``--publish`` copies a full run's report, Markdown and
plot to ``docs/assets/bench/``, which the documentation's benchmarks page shows.

Progress goes to stderr, the table to stdout. The exit status is 1 if a contender or a case
failed (an unavailable one is skipped, not failed), or with ``--strict`` if a target was missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import harness, timed
from bench.plot import plot
from bench.report import (
    MIB,
    Row,
    evaluate_targets,
    format_markdown,
    format_table,
    format_targets,
    load_warnings,
    machine_info,
    rows_from_pyperf,
)

ROOT = Path(__file__).resolve().parent.parent
CASES = (*timed.CASES, *harness.CASES)
# fmt: off
QUICK_PYPERF = ("--processes", "2", "--values", "2", "--warmups", "1", "--min-time", "0.02",
                "--quiet")
# fmt: on


class Progress:
    """Progress lines on stderr, with the time since the start."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def run_timed(
    cases: Sequence[str],
    out: Path,
    args: argparse.Namespace,
    workers: int,
    pyperf_args: Sequence[str],
    progress: Progress,
) -> tuple[list[Row], dict[str, str]]:
    """The timed cases through pyperf: their rows, and the cases that failed as a whole."""
    if not cases:
        return [], {}
    result, status_path = out / "timed.json", out / "timed-status.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.timed",
        "--output",
        str(result),
        "--status",
        str(status_path),
        "--workers",
        str(workers),
        "--cases",
        ",".join(cases),
    ]
    for option, value in (("--tiny-tasks", args.tiny_tasks), ("--map-items", args.map_items)):
        if value:
            cmd += [option, str(value)]
    if args.quick:
        cmd += ["--quick", *QUICK_PYPERF]
    cmd += pyperf_args
    progress(f"== timed cases through pyperf: {' '.join(cmd[1:])}")
    # pyperf prints a line per benchmark: progress, so to stderr.
    proc = subprocess.run(cmd, cwd=ROOT, stdout=sys.stderr, check=False)
    failed = {}
    if proc.returncode != 0:
        failed["timed"] = f"python -m bench.timed exited {proc.returncode}"
    status = json.loads(status_path.read_text()) if status_path.exists() else []
    return rows_from_pyperf(str(result), status), failed


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    pyperf_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, pyperf_args = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark subinterp_rs against the stdlib, threads and processes.",
        epilog="Options after -- go to pyperf (python -m bench.timed --help lists them).",
    )
    parser.add_argument("--quick", action="store_true", help="rough figures, quickly")
    parser.add_argument(
        "--cases", nargs="+", metavar="CASE", help=f"cases to run (default all): {' '.join(CASES)}"
    )
    parser.add_argument("--workers", type=int, help="executor workers (default: cores)")
    parser.add_argument(
        "--tiny-tasks", type=int, metavar="N", help="tasks per loop of executor_tiny"
    )
    parser.add_argument("--map-items", type=int, metavar="N", help="calls per loop of executor_map")
    parser.add_argument("--out", metavar="DIR", help="default: bench/results/<python>-<time>/")
    parser.add_argument("--no-plot", action="store_true", help="do not draw OUT/plot.png")
    parser.add_argument(
        "--compare-to", metavar="RUN", help="pyperf compare_to an earlier run (its dir or JSON)"
    )
    parser.add_argument(
        "--publish", action="store_true", help="copy the results to docs/assets/bench/"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    if args.publish and args.quick:
        parser.error("--publish takes a full run: a --quick run's figures are rough")
    return args, pyperf_args


def main(argv: Sequence[str] | None = None) -> int:
    args, pyperf_args = parse(argv)
    cases = timed.parse_cases(args.cases, CASES)
    workers: int = args.workers or os.cpu_count() or 1
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    now = datetime.datetime.now()
    out = Path(args.out or ROOT / "bench" / "results" / f"py{version}-{now:%Y%m%dT%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(args.quiet)
    info = machine_info(workers)
    kind = "quick" if args.quick else "full"
    progress(f"Python {info['python']} on {info['cores']} cores ({info['cpu']}); {kind} run")

    rows, failed = run_timed(
        [c for c in cases if c in timed.CASES], out, args, workers, pyperf_args, progress
    )
    h_rows, extra, h_failed = harness.run(
        [c for c in cases if c in harness.CASES], args.quick, workers, progress
    )
    rows += h_rows
    failed |= h_failed
    targets = evaluate_targets(rows, workers, (sys.version_info.major, sys.version_info.minor))
    info["loadavg_end"] = machine_info(workers)["loadavg"]
    settings = dataclasses.asdict(
        timed.Settings.make(args.quick, workers, args.tiny_tasks, args.map_items)
    )
    report: dict[str, Any] = {
        "machine": info,
        "settings": {
            **settings,
            "pyperf_args": [*(QUICK_PYPERF if args.quick else ()), *pyperf_args],
        },
        "cases": cases,
        "rows": [dataclasses.asdict(row) for row in rows],
        "targets": [dataclasses.asdict(t) for t in targets],
        "failed_cases": failed,
        "extra": extra,
        "seconds": time.perf_counter() - progress.t0,
        "date": now.date().isoformat(),
        "pyperf": "timed.json",
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(format_markdown(report))
    progress(f"done in {report['seconds']:.1f} s")

    print(
        f"subinterp_rs bench: Python {info['python']} ({info['implementation']}), "
        f"{info['cores']} cores ({info['cpu']}), {kind} run, median shown"
    )
    print(f"native module: {info['native_module']} ({info['native_size'] / MIB:.1f} MiB)")
    for warning in load_warnings(info):
        print(warning)
    print("'ours vs this' > 1: ours is faster / higher throughput / smaller than this row")
    print()
    print(format_table(rows))
    print()
    print("targets:")
    print(format_targets(targets))
    for name, why in failed.items():
        print(f"case {name} FAILED: {why}")
    written = ["report.json", "report.md"]
    if not args.no_plot:
        why_not = plot(str(out / "plot.png"), rows, info)
        if why_not:
            print(f"\nplot skipped: {why_not}")
        else:
            written.append("plot.png")
    print(f"\nwrote {', '.join(str(out / name) for name in written)}")
    if args.compare_to:
        old = Path(args.compare_to)
        old_json = old / "timed.json" if old.is_dir() else old
        print(f"\npyperf compare_to {old_json} {out / 'timed.json'}:", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pyperf",
                "compare_to",
                str(old_json),
                str(out / "timed.json"),
                "--table",
            ],
            check=False,
        )
    if args.publish:
        dest = ROOT / "docs" / "assets" / "bench"
        dest.mkdir(parents=True, exist_ok=True)
        for name, suffix in (("report.json", "json"), ("report.md", "md"), ("plot.png", "png")):
            if (out / name).exists():
                shutil.copyfile(out / name, dest / f"bench-{version}.{suffix}")
        print(f"published to {dest}/bench-{version}.*")
    errors = [r for r in rows if r.status == "error"] or failed
    missed = [t for t in targets if t.status == "MISS"]
    return 1 if errors or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
