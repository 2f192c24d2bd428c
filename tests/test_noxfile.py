"""The nox sessions are the legs, and the legs' Pythons are named in one place.

noxfile.py has one session per leg of ``make test`` (lint, each Python of scripts/pythons.txt,
wheels) plus docs; the Makefile and scripts/test.sh run the same legs; the interpreters'
default paths appear in scripts/pythons.txt and nowhere else; the development dependencies
are pyproject.toml's dependency groups, with no requirements file or extra repeating them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nox
import nox.project
import nox.registry
import pytest

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / "scripts"))
import pythons  # noqa: E402

LEGS = [leg.name for leg in pythons.legs()]


@pytest.fixture(scope="module")
def noxfile_sessions() -> list[str]:
    """The session names noxfile.py registers (loaded as nox loads it)."""
    saved = dict(nox.registry._REGISTRY)
    nox.registry._REGISTRY.clear()
    try:
        namespace: dict[str, object] = {"__file__": str(TOP / "noxfile.py")}
        exec(compile((TOP / "noxfile.py").read_text(), "noxfile.py", "exec"), namespace)
        ci = namespace["CI_LEGS"]
        assert ci == ["lint", *LEGS, "wheels"], ci
        return list(nox.registry.get())
    finally:
        nox.registry._REGISTRY.clear()
        nox.registry._REGISTRY.update(saved)


def test_pythons_table() -> None:
    assert LEGS == ["3.12", "3.13", "3.13s", "3.14", "3.15", "3.14d"]
    for leg in pythons.legs():
        assert leg.variable == "PYTHON" + leg.name.replace(".", "").upper()
        assert leg.default.startswith("/"), leg
        assert leg.version.rstrip("d") == leg.name.rstrip("sd")


def test_one_session_per_leg(noxfile_sessions: list[str]) -> None:
    assert sorted(noxfile_sessions) == sorted(["lint", "docs", *LEGS, "wheels"])


def test_make_and_test_sh_run_the_same_legs() -> None:
    makefile = (TOP / "Makefile").read_text()
    default = re.search(r"^LEGS \?= (.*)$", makefile, re.M)
    assert default is not None
    assert default.group(1).split() == ["lint", *LEGS, "wheels"]
    for leg in LEGS:
        target = "test-" + leg.replace(".", "")
        assert re.search(rf"^{target}:\n\tscripts/test.sh {re.escape(leg)}$", makefile, re.M), leg
    # scripts/test.sh takes its legs from the same table.
    out = subprocess.run(
        ["bash", str(TOP / "scripts/test.sh"), "no-such-leg"], capture_output=True, text=True
    )
    assert out.returncode != 0
    assert f"(legs: lint {' '.join(LEGS)} wheels)" in out.stderr, out.stderr


def _tracked_files() -> list[Path]:
    try:
        names = subprocess.run(
            ["git", "-C", str(TOP), "ls-files", "-z"], capture_output=True, check=True
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        # An sdist, or a git worktree seen from inside the sid chroot (its git directory is
        # not mounted there): the host legs run this test.
        pytest.skip("git cannot list the tracked files here")
    return [TOP / name for name in names.split("\0") if name]


def test_python_paths_are_named_in_one_place() -> None:
    defaults = {leg.default for leg in pythons.legs()}
    table = TOP / "scripts" / "pythons.txt"
    found = []
    for path in _tracked_files():
        if path == table or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(TOP)}: {d}" for d in defaults if d in text]
    assert not found, "interpreter paths outside scripts/pythons.txt:\n" + "\n".join(found)


def test_dev_dependencies_are_the_dependency_groups() -> None:
    project = tomllib.loads((TOP / "pyproject.toml").read_text())
    groups = project["dependency-groups"]
    assert {"build", "test", "lint", "docs", "dev", "bench", "nox"} <= set(groups)
    # No extra repeats a group: the only extra is the user's `dask`.
    assert set(project["project"]["optional-dependencies"]) == {"dask"}
    assert not (TOP / "requirements-dev.txt").exists()
    assert not (TOP / "bench" / "requirements.txt").exists()
    # What every leg installs, resolved as noxfile.py does.
    dev = nox.project.dependency_groups(project, "dev")
    names = {re.split(r"[<>=!;\[ ]", req, maxsplit=1)[0] for req in dev}
    assert {"maturin", "pytest", "hypothesis", "mypy", "ruff", "mkdocs", "nox"} <= names
