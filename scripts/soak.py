"""Soak / stress run: interpreters created, used and destroyed from several threads at once
for a while; then checks that nothing leaked (interpreters, queues, memory) or hung.

    make soak [SOAK_SECONDS=600] [PY=3.14d] [ARGS="--threads 8"]
    python scripts/soak.py --seconds 60 --threads 4        (in a venv with subinterp_rs)

Two phases of half the time each, every thread looping over cycles:

* churn: each cycle creates an isolated, a legacy or a PEP 734 interpreter, runs code in it,
  calls with shareable and pickled values, gets an exception back as ``ExecutionFailed``,
  makes a queue round trip, and closes it;
* reuse: the same work in one long-lived interpreter per thread.

Memory (resident set size, sampled twice a second) is judged after each phase's first
quarter (warm-up): the reuse phase must stay flat (``--max-growth-mib``), and churn must not
grow by more than ``--max-churn-kib`` a cycle beyond that same slack. CPython 3.12 and 3.13
themselves never give back the memory of a destroyed interpreter (about 1.7 MiB for an
isolated one, ~90 KiB for a legacy one, with the stdlib's own ``_interpreters`` too), so on
those versions churn memory is only reported. Any failed cycle, a thread still running long
after the end, or an interpreter or queue left over fails the run.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
from collections.abc import Callable

from subinterp_rs import InterpreterConfig, Subinterpreter, _native, interpreters

# The shared helpers next to this script (also when it runs through runpy.run_path).
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import _checks  # noqa: E402
import _rss  # noqa: E402

CPYTHON_KEEPS_INTERPRETER_MEMORY = sys.version_info < (3, 14)


def work(si: Subinterpreter) -> None:
    """One round of everything the low-level API does, in ``si``."""
    si.exec("import math; x = math.factorial(50)")
    assert si.call(len, bytes(4096)) == 4096  # a buffer crosses
    _checks.pickled_call_and_failure(si)
    q = interpreters.create_queue()
    si.prepare_main(q=q, payload=b"x" * 100)
    si.exec("q.put((payload, 1))")
    assert q.get(timeout=30) == (b"x" * 100, 1)


def churn_cycle(i: int) -> None:
    kind = i % 3
    if kind == 2:
        interp = interpreters.create()
        try:
            _checks.pep734_round(interp, 100)
        finally:
            interp.close()
    else:
        config = InterpreterConfig.isolated() if kind == 0 else InterpreterConfig.legacy()
        with Subinterpreter.create(config) as si:
            work(si)


class Phase:
    """Threads looping over ``cycle(i)`` until a deadline; counts, errors and RSS samples."""

    def __init__(self, name: str, threads: int, seconds: float) -> None:
        self.name = name
        self.nthreads = threads
        self.seconds = seconds
        self.counts = [0] * threads
        self.errors: list[str] = []
        self.samples: list[tuple[float, float, int]] = []  # (t, rss MiB, cycles so far)

    def _loop(
        self, index: int, deadline: float, setup: Callable[[], Callable[[int], None]]
    ) -> None:
        try:
            cycle = setup()
        except BaseException as exc:  # reported at the end
            self.errors.append(f"{self.name} thread {index} setup: {type(exc).__name__}: {exc}")
            return
        i = 0
        while time.monotonic() < deadline and len(self.errors) <= 20:
            try:
                cycle(i)
            except BaseException as exc:  # reported at the end
                self.errors.append(
                    f"{self.name} thread {index} cycle {i}: {type(exc).__name__}: {exc}"
                )
            i += 1
            self.counts[index] = i

    def run(self, setup: Callable[[], Callable[[int], None]]) -> None:
        print(f"{self.name}: {self.nthreads} threads, {self.seconds:g} s", flush=True)
        start = time.monotonic()
        deadline = start + self.seconds
        threads = [
            threading.Thread(target=self._loop, args=(i, deadline, setup), daemon=True)
            for i in range(self.nthreads)
        ]
        for t in threads:
            t.start()
        next_report = start + 10
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            now = time.monotonic()
            self.samples.append((now - start, _rss.rss_bytes() / _rss.MIB, sum(self.counts)))
            if now >= next_report:
                _, rss, n = self.samples[-1]
                print(f"  t={now - start:5.0f} s  cycles={n:7}  rss={rss:7.1f} MiB", flush=True)
                next_report += 10
            if now > deadline + 120:
                self.errors.append(f"{self.name}: threads still running 120 s after the end")
                break

    def growth(self) -> tuple[float, int]:
        """(RSS growth in MiB, cycles) from the end of the warm-up to the end."""
        after = [s for s in self.samples if s[0] >= self.seconds / 4]
        if len(after) < 2:
            return 0.0, 0
        return after[-1][1] - after[0][1], after[-1][2] - after[0][2]


keep: list[Subinterpreter] = []  # the reuse phase's interpreters, closed at the end


def reuse_setup() -> Callable[[int], None]:
    si = Subinterpreter.create()
    keep.append(si)
    return lambda i: work(si)


def main() -> int:
    parser = argparse.ArgumentParser(description="subinterp_rs soak/stress run")
    parser.add_argument("--seconds", type=float, default=60.0, help="both phases together")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--max-growth-mib", type=float, default=32.0, help="reuse phase")
    parser.add_argument("--max-churn-kib", type=float, default=64.0, help="a churn cycle")
    args = parser.parse_args()
    print(f"soak: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)

    churn = Phase("churn", args.threads, args.seconds / 2)
    churn.run(lambda: churn_cycle)
    gc.collect()
    reuse = Phase("reuse", args.threads, args.seconds / 2)
    reuse.run(reuse_setup)
    for si in keep:
        si.close()
    gc.collect()

    errors = churn.errors + reuse.errors
    mib, cycles = churn.growth()
    per_cycle = mib * 1024 / cycles if cycles else 0.0
    verdict = "reported only: CPython < 3.14 keeps it" if CPYTHON_KEEPS_INTERPRETER_MEMORY else "ok"
    # The allocator's own noise is bounded like the reuse phase's; beyond it, per cycle.
    limit = args.max_growth_mib + cycles * args.max_churn_kib / 1024
    if not CPYTHON_KEEPS_INTERPRETER_MEMORY and mib > limit:
        verdict = "TOO MUCH"
        errors.append(
            f"churn: memory grew by {mib:.1f} MiB in {cycles} cycles after warm-up (limit "
            f"{args.max_growth_mib:g} MiB + {args.max_churn_kib:g} KiB a cycle)"
        )
    print(f"churn: {sum(churn.counts)} cycles, memory {per_cycle:+.1f} KiB a cycle ({verdict})")
    mib, cycles = reuse.growth()
    print(f"reuse: {sum(reuse.counts)} cycles, memory {mib:+.1f} MiB after warm-up")
    if mib > args.max_growth_mib:
        errors.append(f"reuse: memory grew by {mib:.1f} MiB (limit {args.max_growth_mib:g})")

    main_id = interpreters.get_main().id
    leftover = [i.id for i in interpreters.list_all() if i.id != main_id]
    if leftover:
        errors.append(f"interpreters left over: {leftover}")
    queues = _native.queue_list_all()
    if queues:
        errors.append(f"queues left over: {queues}")
    for e in errors:
        print(f"  FAIL {e}")
    print("soak: FAILED" if errors else "soak: OK")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
