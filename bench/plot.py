"""The plot of a run (matplotlib): ``python -m bench.plot REPORT.json OUT.png``; ``python -m
bench`` draws it next to its report."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, Final

from bench.report import KIB, MIB, Row

__all__ = ["plot"]

COLORS: Final = {
    "ours": "tab:red",
    "ours_facade": "tab:orange",
    "ours_pool": "tab:red",
    "ours_raw_pool": "tab:orange",
    "std_ll": "tab:blue",
    "std_hl": "tab:cyan",
    "std_pool": "tab:blue",
    "std_queue": "tab:blue",
    "threads": "tab:green",
    "procs": "tab:purple",
    "memcpy": "tab:gray",
    "serial": "tab:gray",
}


def _bars(
    ax: Any,
    rows: Sequence[Row],
    case_ops: Sequence[tuple[str, str]],
    title: str,
    xlabel: str,
    scale: float,
    log: bool,
) -> None:
    labels, values, cols = [], [], []
    for case, prefix in case_ops:
        for row in rows:
            if row.case == case and row.op.startswith(prefix) and row.value:
                labels.append(f"{row.op}: {row.impl}")
                values.append(row.value / scale)
                cols.append(COLORS.get(row.role, "black"))
    if not values:
        ax.set_visible(False)
        return
    ypos = list(range(len(values)))
    ax.barh(ypos, values, color=cols)
    ax.set_yticks(ypos, labels, fontsize=6)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)


def _buffers(ax: Any, rows: Sequence[Row]) -> None:
    """GB/s by buffer size, one line per implementation and kind."""
    series: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for row in rows:
        if row.case == "buffers" and row.value:
            kind, size_txt = row.op.split(" ", 1)
            num, unit = size_txt.split()
            size = int(num) * (MIB if unit == "MiB" else KIB)
            series.setdefault((row.impl, row.role, kind), []).append((size, row.value / 1e9))
    for (impl, role, kind), points in series.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(
            xs,
            ys,
            marker="o",
            label=f"{impl} ({kind})",
            color=COLORS.get(role, "black"),
            linestyle="--" if kind == "memoryview" else "-",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title("call(f, buffer) throughput")
    ax.set_xlabel("buffer size (bytes)")
    ax.set_ylabel("GB/s")
    if series:
        ax.legend(fontsize=6)


def _scaling(ax: Any, rows: Sequence[Row]) -> None:
    """Speedup by number of workers, one line per executor, and the ideal."""
    lines: dict[str, list[tuple[int, float]]] = {}
    role_of: dict[str, str] = {}
    for row in rows:
        if row.case == "executor_cpu" and row.unit == "x" and row.value:
            lines.setdefault(row.impl, []).append((int(row.op.split()[0]), row.value))
            role_of[row.impl] = row.role
    for impl, points in lines.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(
            xs,
            ys,
            marker="o",
            label=impl,
            color=COLORS.get(role_of[impl], "black"),
            linestyle="--" if role_of[impl] == "ours_raw_pool" else "-",
        )
    if lines:
        n = max(x for pts in lines.values() for x, _ in pts)
        ax.plot([1, n], [1, n], color="black", linestyle=":", label="ideal")
        ax.legend(fontsize=7)
    ax.set_title("CPU-bound jobs: speedup vs workers")
    ax.set_xlabel("workers (= jobs)")
    ax.set_ylabel("speedup over 1 job in-process")


def plot(path: str, rows: Sequence[Row], machine: dict[str, Any]) -> str | None:
    """Draws the rows into the PNG ``path``; returns why not if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install --group bench)"
    fig, axes = plt.subplots(2, 3, figsize=(18, 11))
    fig.suptitle(
        f"subinterp-rs benchmarks: CPython {machine['python']}, {machine['cores']} cores "
        f"({machine['cpu']})"
    )
    _bars(
        axes[0][0],
        rows,
        [("create", ""), ("create_parallel", ""), ("executor_start", "")],
        "create (per interpreter), executor start-up",
        "ms (lower is better)",
        1e-3,
        True,
    )
    _bars(axes[0][1], rows, [("roundtrip", "")], "round trip", "us (lower is better)", 1e-6, True)
    _buffers(axes[0][2], rows)
    _bars(
        axes[1][0],
        rows,
        [("queue", ""), ("executor_tiny", ""), ("executor_map", "")],
        "queue items/s, tiny tasks/s",
        "k/s (higher is better)",
        1e3,
        True,
    )
    _scaling(axes[1][1], rows)
    _bars(
        axes[1][2],
        rows,
        [("memory", "")],
        "idle memory per worker",
        "MiB (lower is better)",
        MIB,
        False,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m bench.plot REPORT.json OUT.png")
    with open(sys.argv[1]) as f:
        report = json.load(f)
    why_not = plot(sys.argv[2], [Row(**row) for row in report["rows"]], report["machine"])
    sys.exit(f"plot skipped: {why_not}" if why_not else 0)
