"""The Pythons of the test legs, read from scripts/pythons.txt (the one place they are named).

``noxfile.py`` imports this module; shell scripts run it (standard library only, any Python 3):

    python3 scripts/pythons.py LEG     the interpreter of LEG: a host leg's is checked (it must
                                       report LEG's version) and printed as its real path; a sid
                                       leg's is the path inside the Debian sid chroot
    python3 scripts/pythons.py --legs  the legs, in order, one a line
    PY scripts/pythons.py --check LEG PY
                                       print PY's real path if it reports LEG's version (in
                                       the chroot, where PY runs it: noxfile.py)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).with_name("pythons.txt")

# What an interpreter reports for the version check: "3.14", or "3.14d" for a debug build.
_VERSION_CODE = (
    "import sys, sysconfig\n"
    "d = 'd' if sysconfig.get_config_var('Py_DEBUG') else ''\n"
    "print('%d.%d%s' % (sys.version_info[0], sys.version_info[1], d))\n"
    "print(sys.executable)\n"
)


class PythonError(Exception):
    """The interpreter of a leg is missing or is another Python."""


@dataclass(frozen=True)
class Leg:
    """One line of scripts/pythons.txt."""

    name: str
    variable: str
    default: str
    where: str  # "host" or "sid"
    version: str

    @property
    def in_sid(self) -> bool:
        """The leg runs inside the Debian sid chroot."""
        return self.where == "sid"

    def interpreter(self) -> str:
        """The leg's interpreter: $variable, else the default (host: else pythonX.Y on PATH)."""
        chosen = os.environ.get(self.variable, "")
        if chosen or self.in_sid:
            return chosen or self.default
        if os.access(self.default, os.X_OK):
            return self.default
        found = shutil.which("python" + self.version.rstrip("d"))
        if found is None:
            raise PythonError(
                f"no Python {self.name}: set {self.variable}=/path/to/python{self.version} "
                f"or put python{self.version} on PATH"
            )
        return found

    def checked(self, python: str | None = None) -> str:
        """The real path of ``python`` (default: ``interpreter()``) once it reports the version."""
        python = python or self.interpreter()
        try:
            out = subprocess.run(
                [python, "-c", _VERSION_CODE], capture_output=True, text=True, check=True
            ).stdout.split("\n")
        except (OSError, subprocess.CalledProcessError) as exc:
            raise PythonError(f"cannot run {python}: {exc}") from exc
        if out[0] != self.version:
            raise PythonError(f"{python} is Python {out[0]}, not {self.version}")
        return out[1]


def legs() -> list[Leg]:
    """Every Python leg of scripts/pythons.txt, in its order."""
    rows = []
    for line in TABLE.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            name, variable, default, where, version = fields
            if where not in ("host", "sid"):
                raise ValueError(f"{TABLE}: {name}: where is {where!r}, not host or sid")
            rows.append(Leg(name, variable, default, where, version))
    return rows


def leg(name: str) -> Leg:
    """The Python leg called ``name``."""
    for row in legs():
        if row.name == name:
            return row
    raise PythonError(f"unknown Python leg {name!r} (legs: {' '.join(r.name for r in legs())})")


def main(argv: list[str]) -> int:
    """The command line (see the module's docstring)."""
    if argv == ["--legs"]:
        print("\n".join(row.name for row in legs()))
        return 0
    if len(argv) == 3 and argv[0] == "--check":
        try:
            print(leg(argv[1]).checked(argv[2]))
        except PythonError as exc:
            print(f"pythons.py: error: {exc}", file=sys.stderr)
            return 1
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        row = leg(argv[0])
        print(row.interpreter() if row.in_sid else row.checked())
    except PythonError as exc:
        print(f"pythons.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
