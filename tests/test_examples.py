"""The examples and the demo, each run as a user would, in a subprocess, on small inputs."""

from __future__ import annotations

import re
from pathlib import Path

from _helpers import run_python

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 300


def run(*args: str) -> str:
    """Run ``python ARGS...`` in the project root; its stdout (it must exit 0, cleanly)."""
    proc = run_python(*args, cwd=ROOT, env={"PYTHONUNBUFFERED": "1"}, timeout=TIMEOUT)
    report = f"exit {proc.returncode}\n--- stdout:\n{proc.stdout}\n--- stderr:\n{proc.stderr}"
    assert proc.returncode == 0, report
    # A failure in a thread (call_in_thread discards them) is only printed to stderr.
    assert "Traceback" not in proc.stderr, report
    return proc.stdout


def test_every_example_has_a_test() -> None:
    tested = {"parallel_cpu.py", "pipeline.py", "plugin_sandbox.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_parallel_cpu() -> None:
    out = run(str(EXAMPLES / "parallel_cpu.py"), "--workers", "3", "--samples", "20000")
    assert "3 interpreters in 3 threads" in out
    assert "parallel results match the sequential ones" in out
    pi = re.search(r"pi is about (\d\.\d+)", out)
    assert pi is not None, out
    assert 3.0 < float(pi.group(1)) < 3.3


def test_pipeline() -> None:
    out = run(str(EXAMPLES / "pipeline.py"), "--items", "10000", "--workers", "3")
    assert out.count("worker done") == 3, out
    assert "processed 10,000 items" in out
    # A known fact checks the workers' arithmetic: below 10,001 it is 6171, 261 steps.
    assert "longest Collatz chain below 10,001: 6,171 with 261 steps" in out


def test_plugin_sandbox() -> None:
    out = run(str(EXAMPLES / "plugin_sandbox.py"))
    assert "greeter       -> 'hello, world!'" in out
    assert "json.dumps was patched by a plugin" in out
    assert 'host json.dumps still works: {"arg": "x"}' in out
    assert "name 'GREETING' is not defined" in out
    assert "crasher raised KeyError: 'size'" in out
    assert "| KeyError: 'size'" in out
    assert "its interpreter still works: 'blue'" in out
    assert "isolated: daemon threads refused" in out
    assert "legacy  : daemon threads allowed" in out
    assert "isolated: os.fork() refused" in out
    assert re.search(r"isolated: one alone [\d.]+ s, two at once [\d.]+ s", out), out
    assert re.search(r"legacy  : one alone [\d.]+ s, two at once [\d.]+ s", out), out
    assert out.rstrip().endswith("done"), out


def test_demo() -> None:
    out = run("-m", "subinterp_rs.demo", "--workers", "2", "--limit", "30000")
    # Progress lines, the three timings, and agreement (3245 primes below 30,000).
    assert "[subinterpreters] worker 2/2 done" in out
    assert re.search(r"^sequential\s+[\d.]+ s\s+1\.00x\s+\(3,245 primes\)$", out, re.M), out
    assert re.search(r"^2 threads\s+[\d.]+ s\s+[\d.]+x$", out, re.M), out
    assert re.search(r"^2 subinterpreters\s+[\d.]+ s\s+[\d.]+x", out, re.M), out
    assert "all three agree on the result" in out


def test_demo_calibrates() -> None:
    out = run("-m", "subinterp_rs.demo", "--workers", "1", "--seconds", "0.05")
    assert "calibrating a job of about 0.05 s" in out
    assert "all three agree on the result" in out
