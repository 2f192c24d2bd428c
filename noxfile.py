"""nox sessions of subinterp-rs: one per leg of ``make test`` (CONTRIBUTING.md, "The legs").

    scripts/nox -l                     the sessions
    scripts/nox -s 3.12                a Python leg: venv, ``maturin develop --release``,
                                       ``cargo test --workspace``, ``python -m pytest tests``
    scripts/nox -s 3.14 -- -x -k queue the same with pytest arguments
    scripts/nox -s 3.12 -- run CMD...  build into the leg's venv, then run CMD there (with
                                       the venv first on PATH and PYO3_PYTHON,
                                       LD_LIBRARY_PATH and CARGO_TARGET_DIR set for cargo)
    scripts/nox -s lint                scripts/lint.sh in the 3.12 leg's venv
    scripts/nox -s docs [-- serve ...] the documentation site: ``mkdocs build --strict``, or
                                       ``mkdocs serve`` with the arguments given
    scripts/nox -s wheels [-- WHAT...] scripts/wheels.sh (release wheels and sdist)

``scripts/nox`` installs nox (the ``nox`` dependency group of pyproject.toml) into a venv of
its own, ``target/nox``, and runs it.  ``scripts/test.sh LEG`` and ``scripts/test.sh run LEG
-- CMD`` are these sessions too; ``scripts/test.sh all`` (``make test``, CI) runs them one
after the other within a time budget and prints the summary table.

The Pythons come from scripts/pythons.txt (through scripts/pythons.py): the host legs' on the
host, the others' inside the Debian sid chroot of scripts/sid-pythons.sh, which every command
of those legs goes through.  A leg whose chroot cannot be made prints ``SKIP: <reason>`` and
is skipped (``scripts/test.sh`` exits 77 for it).  Sessions make no venv of nox's own
(``venv_backend="none"``): each leg's venv is made here, the same way on the host and in the
chroot, with the ``dev`` dependency group, and reused while the interpreter and the group are
unchanged.

Environment: PYTHON312 ... (scripts/pythons.txt), SUBINTERP_LEG_TIMEOUT (seconds for each
``cargo test`` and pytest run, default 1200), SUBINTERP_PYTEST_WORKERS (pytest-xdist's
workers, default 2; 0: one process), PYTEST_ADDOPTS.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nox
import nox.command
import nox.project

TOP = Path(__file__).resolve().parent
sys.path.insert(0, str(TOP / "scripts"))
import pythons  # noqa: E402  (scripts/pythons.py: the table of scripts/pythons.txt)

SID = str(TOP / "scripts" / "sid-pythons.sh")
LEG_TIMEOUT = int(os.environ.get("SUBINTERP_LEG_TIMEOUT", "1200"))
# pytest's worker processes (pytest-xdist) in a leg: the tests are independent (each makes its
# own interpreters; a crash-prone case runs in a child process) and spend most of their time
# waiting (child processes, threads, timeouts), so two workers halve a leg's pytest time even
# on 2 cores.  SUBINTERP_PYTEST_WORKERS=0 runs them in one process.
_WORKERS = os.environ.get("SUBINTERP_PYTEST_WORKERS", "2")
PYTEST_WORKERS = ["-n", _WORKERS] if _WORKERS not in ("", "0") else []
PYTHON_LEGS = [leg.name for leg in pythons.legs()]
# The legs of `make test` / CI, in their order (scripts/test.sh all): lint first (it builds
# the 3.12 venv the 3.12 leg then reuses), wheels last (it reuses the legs' builds).
CI_LEGS = ["lint", *PYTHON_LEGS, "wheels"]
# What every leg's venv gets: pyproject.toml's `dev` group (build, test, lint, docs).
DEV = nox.project.dependency_groups(nox.project.load_toml(TOP / "pyproject.toml"), "dev")

nox.options.default_venv_backend = "none"
nox.options.sessions = CI_LEGS

# (Re)make VENV from PY with the requirements unless its stamp says it is that already.
MAKE_VENV = r"""
set -e
py=$1 venv=$2 want=$3
shift 3
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.subinterp-rs-stamp" 2>/dev/null)" = "$want" ]
then
    echo "venv $venv is up to date"
    exit 0
fi
rm -f "$venv/.subinterp-rs-stamp"
"$py" -m venv --clear "$venv"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q "$@"
printf '%s\n' "$want" >"$venv/.subinterp-rs-stamp"
"""
# Inside the chroot: run "$@" with the venv $1 (if not empty) first on PATH and
# LD_LIBRARY_PATH $2 (on the host the same is done through nox's env).  A find-links directory
# that is not there (the host's, inside the chroot) only makes pip warn about every package.
IN_SID = r"""
venv=$1 libdir=$2
shift 2
if [ -n "$venv" ]; then
    export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
    export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
unset PYTHONHOME PYTHONPATH
if [ -n "${PIP_FIND_LINKS:-}" ] && [ ! -e "$PIP_FIND_LINKS" ]; then unset PIP_FIND_LINKS; fi
exec "$@"
"""
PROBE = (
    "import sys, sysconfig; print(sys.executable); print(sys.version.split(chr(10))[0]); "
    "print(sysconfig.get_config_var('LIBDIR') or '')"
)


@dataclass
class Env:
    """A leg's interpreter, venv and cargo target dir, on the host or in the sid chroot."""

    leg: pythons.Leg
    python: str = ""
    version: str = ""
    libdir: str = ""

    @property
    def venv(self) -> str:
        """The leg's venv: .venv-LEG, or under the chroot's /root/.cache (one per checkout)."""
        if not self.leg.in_sid:
            return str(TOP / f".venv-{self.leg.name}")
        key = hashlib.sha256(str(TOP).encode()).hexdigest()[:12]
        return f"/root/.cache/subinterp-rs/venv-{key}-{self.leg.name}"

    @property
    def target(self) -> str:
        """The leg's cargo target dir: one per interpreter (PyO3 caches its configuration)."""
        name = f"sid-{self.leg.name}" if self.leg.in_sid else f"py{self.leg.name}"
        return str(TOP / "target" / name)

    def run(
        self, session: nox.Session, *args: str, venv: bool = True, silent: bool = False
    ) -> str | bool | None:
        """Run ``args`` in the leg's environment (with its venv unless ``venv=False``)."""
        where = f"[{self.leg.name}{' sid chroot' if self.leg.in_sid else ''}"
        where += f", venv {self.venv}]" if venv else "]"
        if not silent:
            # MAKE_VENV's script and its long argument list: by name.
            shown = (args[3], *args[4:6], "...") if args[2:3] == (MAKE_VENV,) else args
            session.log(f"{where} {shlex.join(shown)}")
        cargo = {"CARGO_TARGET_DIR": self.target, "PYO3_PYTHON": self.python}
        if not self.leg.in_sid:
            env: dict[str, str | None] = dict(cargo)
            if venv:
                path = os.environ.get("PATH", "")
                ld = os.environ.get("LD_LIBRARY_PATH", "")
                env |= {
                    "VIRTUAL_ENV": self.venv,
                    "PATH": f"{self.venv}/bin:{path}",
                    "LD_LIBRARY_PATH": f"{self.libdir}:{ld}" if ld else self.libdir,
                    "PYTHONHOME": None,
                    "PYTHONPATH": None,
                }
                # nox looks the program up on its own PATH, not on the one given in env.
                program = Path(self.venv, "bin", args[0])
                if "/" not in args[0] and program.exists():
                    args = (str(program), *args[1:])
            return session.run(*args, env=env, external=True, silent=silent, log=False)
        inner = ["sh", "-c", IN_SID, "sid", self.venv if venv else "", self.libdir, *args]
        # CARGO_* and PYO3_* pass into the chroot (scripts/sid-pythons.sh).
        return session.run(
            SID, "run", "--", *inner, env=cargo, external=True, silent=silent, log=False
        )

    def prepare(self, session: nox.Session) -> None:
        """Find and check the interpreter, make the venv, build the extension into it."""
        if self.leg.in_sid:
            self._enter_sid(session)
        try:
            python = self.leg.interpreter()
            if not self.leg.in_sid:
                python = self.leg.checked(python)
        except pythons.PythonError as exc:
            session.error(str(exc))
        if self.leg.in_sid:
            # The version check inside the chroot; a missing interpreter skips the leg.
            found = self.run(
                session,
                "sh",
                "-c",
                'test -x "$1" || echo missing',
                "sh",
                python,
                venv=False,
                silent=True,
            )
            if isinstance(found, str) and "missing" in found:
                skip(
                    session,
                    self.leg.name,
                    f"{python} is not in the sid chroot (scripts/sid-pythons.sh update?)",
                )
            checked = self.run(
                session,
                python,
                str(TOP / "scripts" / "pythons.py"),
                "--check",
                self.leg.name,
                python,
                venv=False,
                silent=True,
            )
            assert isinstance(checked, str)
            python = checked.strip().splitlines()[-1]
        self.python = python
        probe = self.run(session, python, "-c", PROBE, venv=False, silent=True)
        assert isinstance(probe, str)
        _, self.version, self.libdir = probe.rstrip("\n").split("\n")[-3:]
        session.log(f"Python {self.version.split()[0]} at {python}")
        want = f"{python} {self.version} {hashlib.sha256(repr(DEV).encode()).hexdigest()[:16]}"
        self.run(
            session, "sh", "-c", MAKE_VENV, "make_venv", python, self.venv, want, *DEV, venv=False
        )
        with session.chdir(TOP):
            # maturin installs the `dev` group too (pip install --group dev): quietly.
            self.run(session, "env", "PIP_QUIET=1", "maturin", "develop", "--release")

    def _enter_sid(self, session: nox.Session) -> None:
        """Make sure the chroot is there; skip the leg with the reason if it cannot be made."""
        name = self.leg.name
        if os.geteuid() != 0:
            skip(
                session,
                name,
                f"Python {name} runs in the Debian sid chroot, which needs "
                f"root (running as uid {os.geteuid()})",
            )
        session.log("Debian sid chroot: scripts/sid-pythons.sh ensure")
        try:
            session.run(SID, "ensure", external=True)
        except nox.command.CommandFailed:
            log = f"{SID_ROOT}.log"
            skip(
                session,
                name,
                f"no Debian sid chroot, so no Python {name} here: "
                f"scripts/sid-pythons.sh ensure failed (log: {log})",
            )


SID_ROOT = os.environ.get("SID_CHROOT", "/var/cache/subinterp-rs/sid")


def skip(session: nox.Session, leg: str, why: str) -> None:
    """Skip the session, saying so on a line of its own (scripts/test.sh: exit 77)."""
    print(f"SKIP: [{leg}] {why}", flush=True)
    session.skip(why)


def timed(*args: str) -> list[str]:
    """``args`` stopped after SUBINTERP_LEG_TIMEOUT seconds (and their children with them)."""
    return ["timeout", "--foreground", "-k", "30", str(LEG_TIMEOUT), *args]


def step(session: nox.Session, name: str, func: Callable[[], object], failed: list[str]) -> bool:
    """Run ``func()``, adding ``name`` to ``failed`` if a command in it fails."""
    try:
        func()
    except nox.command.CommandFailed as exc:
        failed.append(name)
        session.warn(f"{name} FAILED: {exc.reason or ''}")
        return False
    return True


def leg_session(session: nox.Session, leg: pythons.Leg) -> None:
    """A Python leg: build, cargo test, pytest; or ``-- run CMD``: build, then CMD."""
    env = Env(leg)
    args: Sequence[str] = session.posargs
    env.prepare(session)
    if args and args[0] == "run":
        if len(args) < 2:
            session.error("run: no command given")
        with session.chdir(session.invoked_from):
            try:
                env.run(session, *args[1:])
            except nox.command.CommandFailed as exc:
                # CMD's own exit status, as `scripts/test.sh run` has always given it (nox
                # would say 1): SystemExit passes through nox's session runner.
                raise SystemExit(exc.return_code or 1) from None
        return
    failed: list[str] = []
    with session.chdir(TOP):
        session.log(f"cargo test (PYO3_PYTHON={env.python} LD_LIBRARY_PATH={env.libdir})")
        step(
            session,
            "cargo test",
            lambda: env.run(session, *timed("cargo", "test", "--workspace")),
            failed,
        )
        session.log("python -m pytest tests")
        pytest = timed(
            "python",
            "-m",
            "pytest",
            "tests",
            "--color=no",
            "--durations=10",
            "-o",
            "faulthandler_timeout=300",
            *PYTEST_WORKERS,
            *args,
        )
        try:
            env.run(session, *pytest)
        except nox.command.CommandFailed as exc:
            failed.append("pytest")
            if exc.return_code == 5:
                print("pytest collected no tests (exit 5): that is a failure", flush=True)
            elif exc.return_code in (124, 137):
                print(f"pytest timed out after {LEG_TIMEOUT}s (SUBINTERP_LEG_TIMEOUT)", flush=True)
    if failed:
        session.error(f"LEG FAILED: {', '.join(failed)}")
    session.log("LEG PASSED")


def _register(leg: pythons.Leg) -> None:
    def run_leg(session: nox.Session) -> None:
        leg_session(session, leg)

    run_leg.__doc__ = (
        f"Python {leg.name} ({'Debian sid chroot' if leg.in_sid else 'host'}, "
        f"${leg.variable} or {leg.default}): cargo test + pytest"
    )
    nox.session(name=leg.name)(run_leg)


for _leg in pythons.legs():
    _register(_leg)


@nox.session
def lint(session: nox.Session) -> None:
    """scripts/lint.sh (cargo fmt, clippy, ruff, mypy --strict, stubtest, mkdocs --strict)."""
    env = Env(pythons.leg("3.12"))
    env.prepare(session)
    with session.chdir(TOP):
        env.run(session, str(TOP / "scripts" / "lint.sh"))


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site: mkdocs build --strict (or ``-- serve ARGS``) in the 3.12 venv."""
    env = Env(pythons.leg("3.12"))
    env.prepare(session)
    args = list(session.posargs) or ["build", "--strict", "--site-dir", "target/docs-site"]
    with session.chdir(TOP):
        env.run(session, "python", "-m", "mkdocs", *args)


@nox.session
def wheels(session: nox.Session) -> None:
    """scripts/wheels.sh: manylinux2014 release wheels and the sdist, smoke-tested."""
    session.run(str(TOP / "scripts" / "wheels.sh"), *session.posargs, external=True)
