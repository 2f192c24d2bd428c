#!/usr/bin/env bash
# scripts/wheels.sh -- release wheels and the sdist, each proved by installing it into a fresh
# venv and running scripts/wheel_smoke.py there (`make wheels`).
#
# Usage:
#   scripts/wheels.sh [WHAT...]    WHAT: 3.12 3.13 3.14 3.15 sdist (default: all of them)
#
# For each Python (3.12, 3.13 on the host; 3.14, 3.15 inside the Debian sid chroot of
# scripts/sid-pythons.sh), through `scripts/test.sh run LEG` (which builds the leg's dev venv
# and cargo target dir, and enters the chroot):
#   1. `maturin build --release --locked` into target/wheels/LEG/; the wheel is checked
#      (exactly one native module, for that Python's EXT_SUFFIX; py.typed and the stub; no
#      runtime dependencies) and copied to dist/;
#   2. a fresh venv of that Python (not the dev venv) is made in a temporary directory
#      outside the work tree (inside the chroot for 3.14/3.15), and exactly that wheel file is
#      installed with `pip install --no-index`, in a cleared environment;
#   3. scripts/wheel_smoke.py runs with the venv's Python from that temporary directory: it
#      asserts the package is the one in the venv's site-packages, then creates, calls,
#      passes queues both ways, runs the executor and closes (exit status 0 = passed).
# The sdist (`maturin sdist`) is checked (Cargo.lock, build.rs, src/, crates/, python/, README,
# pyproject; no build output, venvs or compiled files, no bench/ or docs/; small), copied to
# dist/, then `pip install`ed into a fresh 3.12 venv -- which compiles it with maturin from
# PyPI as the PEP 517 backend (cargo target dir target/wheels/sdist-cargo, kept between
# runs) -- and smoke-tested the same way.
#
# The wheels carry the manylinux tag that maturin's audit finds for the glibc symbols they
# link (manylinux_2_34 for the host's builds; the chroot's newer glibc may give a higher
# one); portable manylinux2014 wheels need a manylinux build image, which this script does
# not use.  The file names are printed at the end.
#
# Exit status: 0 if everything built and passed; 1 if anything failed.  A chroot Python
# whose chroot cannot be made (no network, not root) is reported "SKIP: <reason>" and does
# not fail the run, unless SUBINTERP_NO_SKIP=1 (as in scripts/test.sh).  Logs: target/wheels/.

set -euo pipefail

SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
TOP=$(cd -- "$(dirname -- "$SELF")/.." && pwd -P)
OUT=$TOP/dist
STAGE=$TOP/target/wheels
SMOKE=$TOP/scripts/wheel_smoke.py
SKIP_RC=77
ALL="3.12 3.13 3.14 3.15 sdist"
LEG=

say() { printf '==> [wheels%s] %s\n' "${LEG:+ $LEG}" "$*"; }
die() { printf 'wheels.sh: error: [%s] %s\n' "${LEG:-wheels}" "$*" >&2; exit 1; }
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$SELF" >&2; exit "${1:-0}"; }
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# ------------------------------------------------------- inside a leg (via test.sh run)
# There the leg's dev venv is first on PATH (its maturin builds), PYO3_PYTHON is the leg's
# base interpreter (the fresh venvs are made from it) and CARGO_TARGET_DIR is the leg's.

TMP=
on_exit() {
    local rc=$?
    [[ -n $TMP ]] && rm -rf -- "$TMP"
    # 77 means "skipped" to the caller: no failure in here may look like that.
    ((rc == SKIP_RC)) && rc=1
    exit "$rc"
}

# clean PATH_PREFIX CMD...: CMD in a cleared environment, as a user's shell would have it,
# with nothing of the dev venv, the leg's cargo settings or the caller's PYTHON*/PIP_* vars.
clean() {
    local prefix=$1
    shift
    env -i HOME="$HOME" LANG=C.UTF-8 PATH="$prefix:/usr/local/bin:/usr/bin:/bin" \
        ${TERM:+TERM="$TERM"} "$@"
}

# fresh_venv: a new venv of the base interpreter in $TMP/venv (TMP outside the work tree).
fresh_venv() {
    local base=${PYO3_PYTHON:?PYO3_PYTHON not set: run through scripts/test.sh run}
    "$base" -c 'import sys; sys.exit(sys.prefix != sys.base_prefix)' ||
        die "$base is a venv's Python, not a base interpreter"
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/subinterp-rs-wheel-$LEG.XXXXXX")
    case "$TMP/" in "$TOP/"*) die "temporary directory $TMP is inside the work tree" ;; esac
    say "fresh venv $TMP/venv ($base)"
    clean /usr/bin "$base" -m venv "$TMP/venv"
}

# smoke: scripts/wheel_smoke.py with the fresh venv's Python, from a directory of its own.
smoke() {
    mkdir -p -- "$TMP/run"
    cp -- "$SMOKE" "$TMP/run/wheel_smoke.py"
    say "smoke test: $TMP/venv/bin/python wheel_smoke.py (in $TMP/run)"
    (cd -- "$TMP/run" && clean "$TMP/venv/bin" timeout -k 10 300 \
        "$TMP/venv/bin/python" wheel_smoke.py --venv "$TMP/venv")
}

# check_wheel WHEEL: what the wheel holds (with the base interpreter: zipfile only).
check_wheel() {
    "$PYO3_PYTHON" - "$1" <<'EOF'
import email.parser, os, sys, sysconfig, zipfile

path = sys.argv[1]
name = os.path.basename(path)
want_so = "subinterp_rs/_native" + sysconfig.get_config_var("EXT_SUFFIX")
tag = "cp%d%d" % sys.version_info[:2]
with zipfile.ZipFile(path) as z:
    names = z.namelist()
    meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = email.parser.Parser().parsestr(z.read(meta_name).decode())
so = [n for n in names if n.endswith(".so")]
problems = []
if so != [want_so]:
    problems.append(f"native modules {so}, want [{want_so}]")
for need in ("subinterp_rs/__init__.py", "subinterp_rs/py.typed", "subinterp_rs/_native.pyi",
             "subinterp_rs/interpreters.py", "subinterp_rs/futures.py"):
    if need not in names:
        problems.append(f"{need} missing")
stray = [n for n in names if not n.startswith(("subinterp_rs/", "subinterp_rs-"))
         or "__pycache__" in n or n.endswith(".pyc")
         or n.startswith("subinterp_rs/bench")]  # the benchmarks live in bench/, not here
if stray:
    problems.append(f"unexpected files {stray}")
if not name.startswith(f"subinterp_rs-{meta['Version']}-{tag}-{tag}-manylinux_"):
    problems.append(f"file name {name}: want {tag}-{tag}-manylinux_*")
deps = [d for d in meta.get_all("Requires-Dist") or [] if "extra ==" not in d]
if deps:
    problems.append(f"runtime dependencies {deps}: pip install --no-index cannot work")
if problems:
    sys.exit("wheel check failed: " + "; ".join(problems))
print(f"wheel check: {len(names)} files, {os.path.getsize(path) // 1024} KiB, {want_so}")
EOF
}

leg_inner() {
    LEG=$1
    trap on_exit EXIT
    cd -- "$TOP"
    local stage=$STAGE/$LEG whl
    rm -rf -- "$stage"
    mkdir -p -- "$stage"
    say "maturin build --release --locked (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    # The dev venv's python, as `maturin develop` uses: the same PyO3 configuration, so the
    # build reuses what that compiled in the leg's target dir.
    maturin build --release --locked --interpreter "$(command -v python)" --out "$stage"
    local wheels=("$stage"/*.whl)
    [[ ${#wheels[@]} == 1 && -f ${wheels[0]} ]] || die "want one wheel in $stage, found: ${wheels[*]}"
    whl=${wheels[0]}
    check_wheel "$whl"
    mkdir -p -- "$OUT"
    cp -- "$whl" "$OUT/"
    whl=$OUT/${whl##*/}
    fresh_venv
    say "pip install --no-index $whl"
    clean "$TMP/venv/bin" timeout -k 10 300 "$TMP/venv/bin/python" -m pip install \
        --no-index --no-input --disable-pip-version-check "$whl"
    smoke
    printf '%s\n' "${whl##*/}" >"$STAGE/$LEG.result"
}

# check_sdist SDIST: what the sdist holds, against `git ls-files` where there is git.
check_sdist() {
    local tracked=
    tracked=$(git -C "$TOP" ls-files -- src crates python Cargo.toml Cargo.lock build.rs pyproject.toml \
        README.md 2>/dev/null) || tracked=
    "$PYO3_PYTHON" - "$1" "$tracked" <<'EOF'
import os, sys, tarfile

path, tracked = sys.argv[1], sys.argv[2].split()
with tarfile.open(path) as t:
    members = [m.name for m in t.getmembers() if m.isfile()]
top = members[0].split("/", 1)[0]
files = {m.split("/", 1)[1] for m in members if "/" in m}
need = {"Cargo.toml", "Cargo.lock", "build.rs", "pyproject.toml", "README.md", "PKG-INFO",
        "src/lib.rs", "crates/subinterp-python/Cargo.toml", "crates/subinterp-python/build.rs",
        "crates/subinterp-python/src/lib.rs", "python/subinterp_rs/__init__.py", "python/subinterp_rs/py.typed",
        "python/subinterp_rs/_native.pyi"}
problems = [f"{n} missing" for n in sorted((need | set(tracked)) - files)]
bad_dirs = {"target", "dist", "__pycache__", ".git", ".mypy_cache", ".ruff_cache",
            ".pytest_cache", ".hypothesis"}
bad = sorted(f for f in files
             if bad_dirs & set(f.split("/")[:-1])
             or any(p.startswith(".venv") for p in f.split("/"))
             or f.endswith((".so", ".pyc", ".whl", ".tar.gz")))
if bad:
    problems.append(f"build output or caches: {bad[:10]}")
# The benchmarks and the documentation site are the repository's, not the package's.
extra = sorted(f for f in files if f.startswith(("bench/", "docs/")) or f == "mkdocs.yml")
if extra:
    problems.append(f"benchmarks or docs site: {extra[:10]}")
size = os.path.getsize(path)
if size > 1024 * 1024:
    problems.append(f"{size // 1024} KiB: too big")
if problems:
    sys.exit("sdist check failed: " + "; ".join(problems))
print(f"sdist check: {len(files)} files under {top}/, {size // 1024} KiB; Cargo.lock, build.rs, "
      f"src/, crates/, python/ present; no build output")
EOF
}

sdist_inner() {
    LEG=sdist
    trap on_exit EXIT
    cd -- "$TOP"
    local stage=$STAGE/sdist sdist cargo_bin
    rm -rf -- "$stage"
    mkdir -p -- "$stage"
    say "maturin sdist"
    maturin sdist --out "$stage"
    local all=("$stage"/*.tar.gz)
    [[ ${#all[@]} == 1 && -f ${all[0]} ]] || die "want one sdist in $stage, found: ${all[*]}"
    check_sdist "${all[0]}"
    mkdir -p -- "$OUT"
    cp -- "${all[0]}" "$OUT/"
    sdist=$OUT/${all[0]##*/}
    fresh_venv
    cargo_bin=$(dirname -- "$(command -v cargo)") || die "no cargo on PATH"
    # The build needs PyPI (maturin, the build backend, in pip's isolated build env) and
    # cargo; pass what those need, nothing of the dev venv or the leg's PYO3_*.
    local -a keep=() kv
    while IFS= read -r -d '' kv; do
        case ${kv%%=*} in
        PIP_* | SSL_CERT_* | REQUESTS_CA_BUNDLE | CARGO_HOME | RUSTUP_HOME | RUSTUP_TOOLCHAIN | \
            CARGO_NET_* | CARGO_HTTP_* | CARGO_REGISTRIES_* | [Hh][Tt][Tt][Pp]*_[Pp][Rr][Oo][Xx][Yy] | \
            [Nn][Oo]_[Pp][Rr][Oo][Xx][Yy]) keep+=("$kv") ;;
        esac
    done < <(env -0)
    say "pip install $sdist (builds it: maturin from PyPI, cargo; CARGO_TARGET_DIR=$stage-cargo)"
    local t0=$SECONDS
    clean "$TMP/venv/bin:$cargo_bin" "${keep[@]}" CARGO_TARGET_DIR="$stage-cargo" \
        timeout -k 10 1800 "$TMP/venv/bin/python" -m pip install --no-input \
        --disable-pip-version-check --no-cache-dir "$sdist"
    say "sdist built and installed in $(fmt_secs $((SECONDS - t0)))"
    smoke
    printf '%s\n' "${sdist##*/}" >"$STAGE/sdist.result"
}

# ------------------------------------------------------------------------------ driver

run_all() {
    local -a what
    if (($#)); then what=("$@"); else read -r -a what <<<"$ALL"; fi
    local w
    for w in "${what[@]}"; do
        [[ " $ALL " == *" $w "* ]] || die "unknown '$w' (choose from: $ALL)"
    done
    mkdir -p -- "$OUT" "$STAGE"
    local -a rows=()
    local n_fail=0 n_skip=0 n_pass=0 t_all=$SECONDS
    for w in "${what[@]}"; do
        local log=$STAGE/$w.log t0=$SECONDS rc=0 status detail leg=$w
        [[ $w == sdist ]] && leg=3.12
        printf '\n################ wheels: %s ################\n' "$w"
        # Stale files of this kind from earlier runs (dist/ is this script's alone).
        if [[ $w == sdist ]]; then
            rm -f -- "$OUT"/subinterp_rs-*.tar.gz
        else
            rm -f -- "$OUT"/subinterp_rs-*-cp"${w//./}"-cp"${w//./}"-*.whl
        fi
        rm -f -- "$STAGE/$w.result"
        local inner=__leg
        [[ $w == sdist ]] && inner=__sdist
        "$TOP/scripts/test.sh" run "$leg" -- bash "$SELF" "$inner" "$w" 2>&1 | tee "$log" ||
            rc=${PIPESTATUS[0]}
        if ((rc == 0)) && [[ -s $STAGE/$w.result ]]; then
            status=PASS
            detail="$(<"$STAGE/$w.result"): installed in a fresh venv, smoke test passed"
            n_pass=$((n_pass + 1))
        elif ((rc == SKIP_RC)); then
            status=SKIP
            detail=$(grep -m1 '^SKIP:' "$log" || echo "SKIP")
            if [[ ${SUBINTERP_NO_SKIP:-} == 1 ]]; then
                status=FAIL
                n_fail=$((n_fail + 1))
            else
                n_skip=$((n_skip + 1))
            fi
        else
            status=FAIL
            ((rc == 0)) && rc="0 but no result"
            detail="exit $rc (log: $log)"
            n_fail=$((n_fail + 1))
        fi
        rows+=("$(printf '%-6s %-5s %8s  %s' "$w" "$status" "$(fmt_secs $((SECONDS - t0)))" "$detail")")
    done
    printf '\n################ wheels: summary (logs: %s) ################\n' "$STAGE"
    printf '%s\n' "${rows[@]}"
    printf 'in %s:\n' "$OUT"
    (cd -- "$OUT" && ls -l -- subinterp_rs-* 2>/dev/null) || echo "  (nothing)"
    printf 'total time %s; %d passed, %d failed, %d skipped\n' \
        "$(fmt_secs $((SECONDS - t_all)))" "$n_pass" "$n_fail" "$n_skip"
    ((n_fail == 0))
}

case ${1:-} in
__leg) leg_inner "$2" ;;
__sdist) sdist_inner ;;
-h | --help | help) usage 0 ;;
*) run_all "$@" ;;
esac
