#!/usr/bin/env bash
# scripts/wheels.sh -- release wheels for every leg that is available, plus the sdist, in dist/.
# Host legs (3.12, 3.13) must build; the chroot legs (3.14, 3.15) are skipped with a message
# when the Debian sid chroot cannot be made.  Each wheel carries the manylinux tag that the
# symbols it links allow (maturin checks and picks it; here manylinux_2_34); portable
# manylinux2014 wheels need a manylinux build image, which this script does not use.
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
out=$PWD/dist
mkdir -p -- "$out"
rc=0
for leg in 3.12 3.13 3.14 3.15; do
    scripts/test.sh run "$leg" -- maturin build --release --interpreter python --out "$out" ||
        { r=$?; ((r == 77)) || rc=1; }
done
# The sdist needs no particular Python: the 3.12 venv's maturin makes it.
.venv-3.12/bin/maturin sdist --out "$out" || rc=1
ls -l -- "$out"
exit "$rc"
