# subinterp-rs: developer commands.  Each leg is a nox session of noxfile.py, run through
# scripts/nox (which installs nox) or scripts/test.sh (which adds the time budget and the
# summary table of `make test`); every target builds the extension into a per-Python venv first.
#
#   make demo          build into .venv-3.12 and run `python -m subinterp_rs.demo`
#   make test          the lint leg, every test leg, then the wheels leg, each a nox session
#                      (what CI runs: .ci/run), then a summary table; fails if any of them fails
#   make test-312 ...  one leg: test-312 test-313 test-313s (newest 3.13 patch, sid) test-314
#                      test-315 test-314d
#   make lint          rustfmt, clippy, ruff, mypy --strict, stubtest, mkdocs build --strict
#                      (in the PY venv)
#   make docs          the documentation site (mkdocs serve, http://127.0.0.1:8000) from the
#                      3.12 venv (nox session docs); ARGS="-a 0.0.0.0:8000" to serve it elsewhere
#   make bench         python -m bench (bench/: pyperf + own harness), results in bench/results/;
#                      ARGS=--quick for a short run
#   make soak          stress/soak run (SOAK_SECONDS, default 60)
#   make wheels        portable manylinux2014 release wheels (maturin --zig, checked by
#                      auditwheel) + sdist into dist/, each installed into a fresh venv and
#                      smoke-tested; the release workflow's configuration checked
#                      (scripts/wheels.sh; also the last leg of make test)
#   make valgrind      a test subset and the Rust core tests under valgrind's memcheck, on the
#                      host 3.13 (VG_PY=3.12 for the other; ARGS: pytest arguments instead of
#                      the default subset); scripts/valgrind.sh, a manual check, not in make test
#
# Variables: PYTHON312, PYTHON313, ... (the interpreters; defaults in scripts/pythons.txt),
# LEGS (legs of `make test`, default "lint 3.12 3.13 3.13s 3.14 3.15 3.14d wheels"), PY (leg
# of demo/lint/bench/soak, default 3.12; 3.14, 3.15 and 3.14d run in the Debian sid chroot),
# VG_PY (Python of valgrind: 3.13 or 3.12), ARGS (extra arguments for the demo, bench and soak
# scripts; the pytest arguments of valgrind; of mkdocs serve for docs).

SHELL := /bin/bash
PY ?= 3.12
LEGS ?= lint 3.12 3.13 3.13s 3.14 3.15 3.14d wheels
ARGS ?=
SOAK_SECONDS ?= 60
VG_PY ?= 3.13
export SOAK_SECONDS

RUN := scripts/test.sh run

.PHONY: help demo test test-312 test-313 test-313s test-314 test-315 test-314d lint docs bench soak wheels valgrind clean

help:
	@sed -n '2,/^$$/{s/^# \{0,1\}//;p}' Makefile

demo:
	$(RUN) $(PY) -- python -m subinterp_rs.demo $(ARGS)

test:
	scripts/test.sh all $(LEGS)

test-312:
	scripts/test.sh 3.12
test-313:
	scripts/test.sh 3.13
test-313s:
	scripts/test.sh 3.13s
test-314:
	scripts/test.sh 3.14
test-315:
	scripts/test.sh 3.15
test-314d:
	scripts/test.sh 3.14d

lint:
	$(RUN) $(PY) -- scripts/lint.sh

# MkDocs is in the 3.12 venv only (the `docs` dependency group).
docs:
	scripts/nox -s docs -- serve $(ARGS)

# The `bench` dependency group (pyperf, matplotlib) goes into the venv first: not a test dependency.
bench:
	$(RUN) $(PY) -- bash -c 'python -m pip install -q --group bench && \
		python -m bench "$$@"' bench $(ARGS)

soak:
	$(RUN) $(PY) -- python scripts/soak.py --seconds $(SOAK_SECONDS) $(ARGS)

wheels:
	scripts/nox -s wheels

valgrind:
	scripts/valgrind.sh $(VG_PY) $(if $(ARGS),-- $(ARGS))

clean:
	rm -rf target dist .venv-3.12 .venv-3.13 .nox python/subinterp_rs/_native.*.so
