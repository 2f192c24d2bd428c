"""Summarise the memcheck logs of scripts/valgrind.sh (one log per process).

    python scripts/valgrind_report.py LOG...

Prints, for every log with errors, its process and command and each error record's kind and
first frames (``ours`` when a frame is in subinterp_rs), then the counts by kind over all logs,
and how often each suppression matched (the logs of ``valgrind -s``).
Exit status 1 if any log reports an error (after suppressions), or has no ERROR SUMMARY (the
process was killed before valgrind could report), else 0.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

KINDS = (
    ("Invalid read", "invalid read"),
    ("Invalid write", "invalid write"),
    ("Invalid free", "invalid free"),
    ("Mismatched free", "mismatched free"),
    ("Conditional jump or move depends on uninitialised", "uninitialised value (branch)"),
    ("Use of uninitialised value", "uninitialised value (use)"),
    ("Syscall param", "bad syscall parameter"),
    ("Source and destination overlap", "overlapping copy"),
    ("Argument 'size' of function", "fishy size"),
    ("are definitely lost", "definite leak"),
    ("Process terminating with default action", "killed by a signal"),
)
"""Beginnings of memcheck's record headers, and the name each kind gets in the report."""

OURS = re.compile(r"subinterp_rs|_native\.cpython|/src/[a-z_/]+\.rs")
FRAME = re.compile(r"^\s+(?:at|by) 0x[0-9A-F]+: (.*)$")
SUMMARY = re.compile(r"ERROR SUMMARY: (\d+) errors from (\d+) contexts \(suppressed: (\d+)")
USED = re.compile(r"used_suppression:\s+(\d+) (.+?) \S+:\d+ suppressed:")
"""What `valgrind -s` prints for each suppression that matched: its count and name."""


@dataclass
class Record:
    kind: str
    header: str
    frames: list[str] = field(default_factory=list)

    @property
    def ours(self) -> bool:
        return any(OURS.search(f) for f in self.frames)


@dataclass
class Log:
    path: Path
    command: str = "?"
    errors: int | None = None
    suppressed: int = 0
    records: list[Record] = field(default_factory=list)
    used: Counter[str] = field(default_factory=Counter)


def kind_of(header: str) -> str | None:
    for start, name in KINDS:
        if start in header:
            return name
    return None


def parse(path: Path) -> Log:
    log = Log(path)
    current: Record | None = None
    for raw in path.read_text(errors="replace").splitlines():
        line = re.sub(r"^==\d+== ?", "", raw)
        if line.startswith("Command: "):
            log.command = line[len("Command: ") :]
        if m := USED.search(line):
            log.used[m.group(2)] += int(m.group(1))
        if m := SUMMARY.search(line):
            log.errors, log.suppressed = int(m.group(1)), int(m.group(3))
        if m := FRAME.match(line):
            if current is not None:
                current.frames.append(m.group(1))
            continue
        if line.strip() == "" or not line.startswith(" "):
            current = None
        kind = kind_of(line)
        if kind is not None:
            current = Record(kind, line.strip())
            log.records.append(current)
    return log


def short(frame: str) -> str:
    return re.sub(r"^(\S+).*?(\([^()]*\))?$", r"\1 \2", frame).strip()


def main(argv: list[str]) -> int:
    logs = [parse(Path(p)) for p in argv]
    kinds: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    bad = 0
    for log in logs:
        for rec in log.records:
            kinds[rec.kind] += 1
            ours[rec.kind] += rec.ours
        if log.errors == 0:
            continue
        bad += 1
        state = "no ERROR SUMMARY" if log.errors is None else f"{log.errors} errors"
        print(f"--- {log.path.name}: {state}; {log.command[:150]}")
        for rec in log.records:
            where = " (ours)" if rec.ours else ""
            print(f"    {rec.kind}{where}: {rec.header}")
            for frame in rec.frames[:8]:
                print(f"        {short(frame)}")
    print(
        f"=== {len(logs)} valgrind logs, {bad} with errors; suppressed errors in all: "
        f"{sum(log.suppressed for log in logs)}"
    )
    for _start, name in KINDS:
        if kinds[name]:
            print(f"    {name}: {kinds[name]} records ({ours[name]} with a frame of ours)")
    used: Counter[str] = sum((log.used for log in logs), Counter())
    if used:
        print("=== suppressions used (scripts/valgrind.supp), errors suppressed / processes:")
    for name, n in used.most_common():
        procs = sum(1 for log in logs if log.used[name])
        print(f"    {n:7d} / {procs:3d}  {name}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
