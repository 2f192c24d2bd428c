"""subinterp-rs benchmarks: ours against the stdlib, threads and processes (``make bench``).

Not part of the package (neither the wheel nor the sdist has it). Run from the repository
root, in a venv where the package is built (``make bench`` does both)::

    python -m bench [--quick] [--cases CASE ...] [--publish] [-- PYPERF OPTIONS]

* ``bench.timed``: the timed cases, one pyperf benchmark per contender;
* ``bench.harness``: what pyperf cannot express (parallel scaling, memory per interpreter);
* ``bench.report``: rows, targets and tables; ``bench.plot``: the plot (matplotlib);
* ``bench.contenders``: the stdlib probe, thread/process workers and executors the cases use;
* ``bench.workloads``: the functions that run in interpreters, threads and processes.

This module stays empty: every subinterpreter that runs a workload imports it.
"""
