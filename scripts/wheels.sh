#!/usr/bin/env bash
# scripts/wheels.sh -- portable release wheels (manylinux2014: glibc 2.17, x86_64) and the
# sdist, each proved by installing it into a fresh venv and running scripts/wheel_smoke.py
# there (`make wheels`; also the last leg of `make test`).
#
# Usage:
#   scripts/wheels.sh [WHAT...]    WHAT: 3.12 3.13 3.13s 3.14 3.15 sdist release (default:
#                                  all of them, in that order; 3.13s needs the 3.13 wheel)
#
# Tools: scripts/wheel-tools.txt (maturin, ziglang, auditwheel, from PyPI, with the reason
# for each), in a venv of their own: target/wheels/tools-host on the host, tools-sid inside
# the Debian sid chroot; made on first use (half a minute), kept while that list is unchanged.
#
# For each of 3.12, 3.13 (host) and 3.14, 3.15 (inside the sid chroot of
# scripts/sid-pythons.sh), through `scripts/test.sh run LEG` (the leg's dev venv, its cargo
# target dir, the chroot):
#   1. `maturin build --release --locked --zig --compatibility manylinux2014` into
#      target/wheels/LEG/: zig (the tools venv's, through CARGO_ZIGBUILD_PYTHON_PATH) links
#      the extension against glibc 2.17's symbols. maturin reads pyproject.toml for what to
#      build. Cargo's output goes to the leg's target dir under x86_64-unknown-linux-gnu/,
#      apart from `maturin develop`'s, and is kept between runs (a rebuild is seconds);
#   2. `auditwheel show --json`: the wheel must be manylinux_2_17_x86_64 both by its symbols
#      and overall, use no GLIBC_ symbol version newer than 2.17, need no library outside the
#      policy, and be named ...-manylinux2014_x86_64.manylinux_2_17_x86_64.whl;
#   3. its contents are checked (one native module, for that Python's EXT_SUFFIX; py.typed
#      and the stub; no runtime dependencies) and it is copied to dist/;
#   4. a fresh venv of that Python (not the dev venv) is made in a temporary directory
#      outside the work tree (inside the chroot for 3.14/3.15), and exactly that wheel file is
#      installed with `pip install --no-index`, in a cleared environment;
#   5. scripts/wheel_smoke.py runs with the venv's Python from that temporary directory: it
#      asserts the package is the one in the venv's site-packages, then creates, calls,
#      passes queues both ways, runs the executor and closes (exit status 0 = passed).
# 3.13s builds nothing: the cp313 wheel built on the host (pyenv 3.13.0, Debian 12) is
# installed into a fresh venv of the chroot's python3.13 (the newest 3.13 patch, on sid's
# newer glibc) and smoke-tested: the same file on another system and Python patch release.
# The sdist (`maturin sdist`) is checked (pyproject.toml, Cargo.lock, each workspace crate's
# Cargo.toml, build.rs and src/ as git tracks them, python/, build_backend/; no build output,
# venvs or compiled files, no bench/ or docs/; small), copied to dist/, then `pip install`ed into a fresh 3.12
# venv -- which compiles it with maturin from PyPI as the PEP 517 backend (cargo target dir
# target/wheels/sdist-cargo, kept between runs) -- and smoke-tested the same way. Then the
# same install without Rust (no cargo on PATH, MATURIN_NO_INSTALL_RUST=1 so that maturin does
# not download a toolchain) must fail with the message of build_backend/subinterp_rs_build.py,
# which says which platforms have wheels and how to get Rust.
# release checks, offline, what only GitHub runs: .github/workflows/release.yml is valid
# against the GitHub workflow schema (check-jsonschema's vendored copy), its CIBW_BUILD values
# are the Pythons the docs promise, and `cibuildwheel --print-build-identifiers` with
# pyproject.toml's [tool.cibuildwheel] gives exactly the wheels promised on each platform.
#
# Exit status: 0 if everything built and passed; 1 if anything failed.  A chroot Python
# whose chroot cannot be made (no network, not root) is reported "SKIP: <reason>" and does
# not fail the run, unless SUBINTERP_NO_SKIP=1 (as in scripts/test.sh).  Logs: target/wheels/.
# The summary's last line: "total time ...; N passed, N failed, N skipped".

set -euo pipefail

SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
TOP=$(cd -- "$(dirname -- "$SELF")/.." && pwd -P)
OUT=$TOP/dist
STAGE=$TOP/target/wheels
SMOKE=$TOP/scripts/wheel_smoke.py
TOOLS_REQ=$TOP/scripts/wheel-tools.txt
SKIP_RC=77
ALL="3.12 3.13 3.13s 3.14 3.15 sdist release"
# The platform every wheel must have: manylinux2014 is PEP 600's manylinux_2_17.
POLICY=manylinux_2_17_x86_64
WHEEL_PLAT=manylinux2014_x86_64.manylinux_2_17_x86_64
LEG=
TOOLS=

say() { printf '==> [wheels%s] %s\n' "${LEG:+ $LEG}" "$*"; }
die() { printf 'wheels.sh: error: [%s] %s\n' "${LEG:-wheels}" "$*" >&2; exit 1; }
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$SELF" >&2; exit "${1:-0}"; }
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# ------------------------------------------------------- inside a leg (via test.sh run)
# There the leg's dev venv is first on PATH, PYO3_PYTHON is the leg's base interpreter (the
# fresh venvs and the tools venv are made from it) and CARGO_TARGET_DIR is the leg's.

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

# tools WHERE: the tools venv of WHERE (host or sid) in $TOOLS, made from the leg's base
# Python if it is missing, stale (scripts/wheel-tools.txt changed) or broken. The tools are
# not tied to a Python version, so any leg of that place may make it and the others use it.
tools() {
    local venv=$STAGE/tools-$1 want have=
    want=$(cksum <"$TOOLS_REQ")
    [[ -f $venv/.subinterp-rs-stamp ]] && have=$(<"$venv/.subinterp-rs-stamp")
    if [[ $have != "$want" ]] || ! "$venv/bin/python" -c '' 2>/dev/null; then
        say "tools venv $venv: pip install -r scripts/wheel-tools.txt"
        rm -rf -- "$venv"
        "$PYO3_PYTHON" -m venv "$venv"
        # One download cache for both places (the work tree is the same path in the chroot):
        # the tools are pure Python or manylinux x86_64 wheels, fit for either.
        PIP_CACHE_DIR=$STAGE/pip-cache "$venv/bin/python" -m pip install \
            --disable-pip-version-check --no-input -q -r "$TOOLS_REQ"
        printf '%s\n' "$want" >"$venv/.subinterp-rs-stamp"
    fi
    TOOLS=$venv
    say "tools: $("$TOOLS/bin/maturin" --version), zig $("$TOOLS/bin/python" -m ziglang version)," \
        "auditwheel $("$TOOLS/bin/python" -c 'import importlib.metadata as m; print(m.version("auditwheel"))')"
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

# install_and_smoke WHEEL: exactly that file into a fresh venv, then the smoke test.
install_and_smoke() {
    fresh_venv
    say "pip install --no-index $1"
    clean "$TMP/venv/bin" timeout -k 10 300 "$TMP/venv/bin/python" -m pip install \
        --no-index --no-input --disable-pip-version-check "$1"
    smoke
}

# check_wheel WHEEL: what the wheel holds (with the base interpreter: zipfile only).
check_wheel() {
    "$PYO3_PYTHON" - "$1" "$WHEEL_PLAT" <<'EOF'
import email.parser, os, sys, sysconfig, zipfile

path, plat = sys.argv[1], sys.argv[2]
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
if name != f"subinterp_rs-{meta['Version']}-{tag}-{tag}-{plat}.whl":
    problems.append(f"file name {name}: want {tag}-{tag}-{plat}")
deps = [d for d in meta.get_all("Requires-Dist") or [] if "extra ==" not in d]
if deps:
    problems.append(f"runtime dependencies {deps}: pip install --no-index cannot work")
if problems:
    sys.exit("wheel check failed: " + "; ".join(problems))
print(f"wheel check: {len(names)} files, {os.path.getsize(path) // 1024} KiB, {want_so}")
EOF
}

# audit WHEEL: `auditwheel show --json` (the tools venv's), read: the wheel is $POLICY by its
# symbols and overall, its newest GLIBC_ symbol version is at most the policy's, and it needs
# no library outside the policy. Prints one line for the summary in $STAGE/$LEG.audit.
audit() {
    local json
    say "auditwheel show --json ${1##*/}"
    json=$("$TOOLS/bin/auditwheel" show --json "$1") || die "auditwheel show failed on $1"
    "$PYO3_PYTHON" - "$1" "$POLICY" "$json" >"$STAGE/$LEG.audit" <<'EOF'
import json, os, re, sys

path, policy, doc = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
max_glibc = tuple(int(x) for x in re.fullmatch(r"manylinux_(\d+)_(\d+)_\w+", policy).groups())
problems = []
if doc.get("version") != 1:
    problems.append(f"auditwheel's JSON is version {doc.get('version')!r}; this reads version 1")
for key in ("overall_tag", "sym_tag"):
    if doc.get(key) != policy:
        problems.append(f"auditwheel's {key} is {doc.get(key)!r}, not {policy!r}")
newest, seen = (0, 0), []
for lib, versions in sorted((doc.get("versioned_symbols") or {}).items()):
    for v in versions:
        m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", v)
        if m:
            newest = max(newest, (int(m[1]), int(m[2])))
        elif v.startswith("GLIBC"):
            problems.append(f"{lib} symbol version {v}")
    seen.append(lib)
if newest > max_glibc:
    problems.append("uses glibc symbols of version %d.%d, newer than the policy's %d.%d"
                    % (newest + max_glibc))
if not seen:
    problems.append("no versioned symbols at all: is the native module in the wheel?")
if doc.get("external_libs"):
    problems.append(f"needs libraries outside the policy: {doc['external_libs']}")
if doc.get("unsupported_isa"):
    problems.append("uses instruction set extensions the policy does not allow")
if doc.get("pure"):
    problems.append("auditwheel sees a pure-Python wheel")
if problems:
    sys.exit("auditwheel check failed for %s: %s" % (os.path.basename(path), "; ".join(problems)))
print(f"{policy} by symbols and overall, newest glibc symbol {newest[0]}.{newest[1]}"
      f" ({', '.join(seen)}), no external libraries")
EOF
    say "auditwheel: $(<"$STAGE/$LEG.audit")"
}

leg_inner() {
    LEG=$1
    local where=$2
    trap on_exit EXIT
    cd -- "$TOP"
    local stage=$STAGE/$LEG whl
    rm -rf -- "$stage"
    mkdir -p -- "$stage"
    tools "$where"
    say "maturin build --release --locked --zig --compatibility manylinux2014 (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    # --interpreter: the dev venv's python, as `maturin develop` uses (the same PyO3
    # configuration: the build scripts do not rerun).
    CARGO_ZIGBUILD_PYTHON_PATH=$TOOLS/bin/python "$TOOLS/bin/maturin" build --release --locked \
        --zig --compatibility manylinux2014 --interpreter "$(command -v python)" --out "$stage"
    local wheels=("$stage"/*.whl)
    [[ ${#wheels[@]} == 1 && -f ${wheels[0]} ]] || die "want one wheel in $stage, found: ${wheels[*]}"
    whl=${wheels[0]}
    audit "$whl"
    check_wheel "$whl"
    mkdir -p -- "$OUT"
    cp -- "$whl" "$OUT/"
    whl=$OUT/${whl##*/}
    install_and_smoke "$whl"
    printf '%s: auditwheel %s; installed in a fresh venv, smoke test passed\n' \
        "${whl##*/}" "$(cut -d' ' -f1 "$STAGE/$LEG.audit")" >"$STAGE/$LEG.result"
}

# The 3.13 wheel, built on the host, on the chroot's newest python3.13.
install_inner() {
    LEG=$1
    trap on_exit EXIT
    cd -- "$TOP"
    local tag wheels
    tag=$("$PYO3_PYTHON" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
    wheels=("$OUT"/subinterp_rs-*-"$tag-$tag-$WHEEL_PLAT".whl)
    [[ ${#wheels[@]} == 1 && -f ${wheels[0]} ]] ||
        die "want one $tag wheel in $OUT (scripts/wheels.sh 3.13 builds it), found: ${wheels[*]}"
    install_and_smoke "${wheels[0]}"
    printf '%s: installed in a fresh venv of Python %s, smoke test passed\n' "${wheels[0]##*/}" \
        "$("$PYO3_PYTHON" -c 'import platform; print(platform.python_version())')" >"$STAGE/$LEG.result"
}

# check_sdist SDIST: what the sdist holds, against `git ls-files` where there is git: every
# crate of the cargo workspace (its Cargo.toml, build.rs, src/), wherever the crates are.
check_sdist() {
    local tracked= dirs
    dirs=$(cargo metadata --no-deps --format-version 1 --locked --manifest-path "$TOP/Cargo.toml" |
        "$PYO3_PYTHON" -c 'import json, os, sys
top = sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    d = os.path.relpath(os.path.dirname(p["manifest_path"]), top)
    print("" if d == "." else d + "/")' "$TOP") || die "cargo metadata failed"
    local -a paths=(python build_backend pyproject.toml Cargo.toml Cargo.lock README.md)
    local d
    for d in $dirs ""; do paths+=("${d}Cargo.toml" "${d}build.rs" "${d}src"); done
    tracked=$(git -C "$TOP" ls-files -- "${paths[@]}" 2>/dev/null) || tracked=
    "$PYO3_PYTHON" - "$1" "$tracked" <<'EOF'
import os, sys, tarfile

path, tracked = sys.argv[1], sys.argv[2].split()
with tarfile.open(path) as t:
    members = [m.name for m in t.getmembers() if m.isfile()]
top = members[0].split("/", 1)[0]
files = {m.split("/", 1)[1] for m in members if "/" in m}
need = {"Cargo.toml", "Cargo.lock", "pyproject.toml", "README.md", "PKG-INFO",
        "python/subinterp_rs/__init__.py", "python/subinterp_rs/py.typed",
        "python/subinterp_rs/_native.pyi", "build_backend/subinterp_rs_build.py"}
problems = [f"{n} missing" for n in sorted((need | set(tracked)) - files)]
if not any(f.endswith(".rs") for f in files):
    problems.append("no Rust source at all")
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
rs = sum(f.endswith(".rs") for f in files)
print(f"sdist check: {len(files)} files under {top}/, {size // 1024} KiB; Cargo.lock, {rs} .rs "
      "files, python/, build_backend/ present; no build output")
EOF
}

# no_rust SDIST: `pip install SDIST` with no cargo on PATH (only the fresh venv's bin/) and
# MATURIN_NO_INSTALL_RUST=1 must fail, with build_backend's message pointing at the wheels.
no_rust() {
    local sdist=$1 log=$STAGE/sdist-no-rust.log rc=0 want
    shift
    say "without Rust: pip install ${sdist##*/} with PATH=$TMP/venv/bin (no cargo) and MATURIN_NO_INSTALL_RUST=1: must fail and point at the wheels"
    mkdir -p -- "$TMP/home"
    env -i HOME="$TMP/home" LANG=C.UTF-8 PATH="$TMP/venv/bin" MATURIN_NO_INSTALL_RUST=1 "$@" \
        "$(command -v timeout)" -k 10 600 "$TMP/venv/bin/python" -m pip install --no-input \
        --disable-pip-version-check --no-cache-dir "$sdist" >"$log" 2>&1 || rc=$?
    ((rc != 0)) || die "the sdist installed without cargo on PATH (log: $log)"
    for want in "subinterp-rs: pip is building subinterp-rs from its source distribution" \
        "cargo is not on PATH" "this Python: cpython" "manylinux2014" "macOS arm64 and x86_64" \
        "Windows x86_64" "https://rustup.rs"; do
        grep -qF -- "$want" "$log" || die "pip failed (exit $rc) without the message: no \"$want\" in $log"
    done
    say "without Rust: pip failed (exit $rc) with build_backend's message (log: $log):"
    sed -n '/subinterp-rs: pip is building/,/^ *again\.$/p' "$log"
}

sdist_inner() {
    LEG=sdist
    trap on_exit EXIT
    cd -- "$TOP"
    local stage=$STAGE/sdist sdist cargo_bin
    rm -rf -- "$stage"
    mkdir -p -- "$stage"
    tools host
    say "maturin sdist"
    "$TOOLS/bin/maturin" sdist --out "$stage"
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
    local -a keep=() net=() kv
    while IFS= read -r -d '' kv; do
        case ${kv%%=*} in
        PIP_* | SSL_CERT_* | REQUESTS_CA_BUNDLE | [Hh][Tt][Tt][Pp]*_[Pp][Rr][Oo][Xx][Yy] | \
            [Nn][Oo]_[Pp][Rr][Oo][Xx][Yy]) keep+=("$kv") net+=("$kv") ;;
        CARGO_HOME | RUSTUP_HOME | RUSTUP_TOOLCHAIN | CARGO_NET_* | CARGO_HTTP_* | \
            CARGO_REGISTRIES_*) keep+=("$kv") ;;
        esac
    done < <(env -0)
    say "pip install $sdist (builds it: maturin from PyPI, cargo; CARGO_TARGET_DIR=$stage-cargo)"
    local t0=$SECONDS
    clean "$TMP/venv/bin:$cargo_bin" "${keep[@]}" CARGO_TARGET_DIR="$stage-cargo" \
        timeout -k 10 1800 "$TMP/venv/bin/python" -m pip install --no-input \
        --disable-pip-version-check --no-cache-dir "$sdist"
    say "sdist built and installed in $(fmt_secs $((SECONDS - t0)))"
    smoke
    no_rust "$sdist" "${net[@]}"
    printf '%s: built with cargo in a fresh venv, smoke test passed; without Rust, pip fails' \
        "${sdist##*/}" >"$STAGE/sdist.result"
    printf ' pointing at the wheels\n' >>"$STAGE/sdist.result"
}

# The release workflow and the cibuildwheel configuration (what only GitHub runs).
release_inner() {
    LEG=release
    trap on_exit EXIT
    cd -- "$TOP"
    local workflow=.github/workflows/release.yml
    tools host
    say "check-jsonschema --builtin-schema vendor.github-workflows $workflow"
    "$TOOLS/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$workflow"
    say "cibuildwheel --print-build-identifiers, per platform and architecture of the workflow"
    "$TOOLS/bin/python" - "$workflow" "$TOOLS/bin/cibuildwheel" <<'EOF'
import itertools, re, subprocess, sys

workflow, cibuildwheel = sys.argv[1], sys.argv[2]
text = open(workflow).read()
pythons = ["cp312", "cp313", "cp314", "cp315"]
# The two CIBW_BUILD values of the workflow's matrix: the regular Pythons, and 3.14t.
m = re.search(r"CIBW_BUILD: \$\{\{ matrix\.python == 'cp314t' && '([^']*)' \|\| '([^']*)' \}\}",
              text)
if m is None:
    sys.exit(f"{workflow}: no CIBW_BUILD of the form this check reads")
builds = {"cp314t": m[1], "regular": m[2]}
want_builds = {"cp314t": "cp314t-*", "regular": " ".join(f"{p}-*" for p in pythons)}
if builds != want_builds:
    sys.exit(f"{workflow}: CIBW_BUILD values {builds}, want {want_builds}")
plats = {  # (platform, arch): the wheels' platform parts, as docs/platforms.md lists them
    ("linux", "x86_64"): ["manylinux_x86_64", "musllinux_x86_64"],
    ("linux", "aarch64"): ["manylinux_aarch64", "musllinux_aarch64"],
    ("macos", "arm64"): ["macosx_arm64"],
    ("macos", "x86_64"): ["macosx_x86_64"],
    ("windows", "auto"): ["win_amd64"],  # the archs of [tool.cibuildwheel.windows]
}
total = 0
for (plat, arch), kind in itertools.product(plats, builds):
    env = {"CIBW_BUILD": builds[kind], "PATH": "/usr/bin:/bin"}
    args = [cibuildwheel, "--print-build-identifiers", "--platform", plat]
    if arch != "auto":
        args += ["--archs", arch]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout.split()
    tags = pythons if kind == "regular" else ["cp314t"]
    want = sorted(f"{t}-{p}" for t in tags for p in plats[plat, arch])
    if sorted(out) != want:
        sys.exit(f"{plat} {arch} {kind}: cibuildwheel would build {sorted(out)}, want {want}")
    total += len(out)
print(f"cibuildwheel: {total} wheels over {len(plats)} platforms, as promised (3.14t included)")
EOF
    printf 'release.yml valid (GitHub workflow schema); cibuildwheel selects the promised wheels\n' \
        >"$STAGE/release.result"
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
        local -a inner
        case $w in
        sdist) leg=3.12 inner=(__sdist) ;;
        release) inner=(__release) ;;
        3.13s) inner=(__install "$w") ;;
        3.12 | 3.13) inner=(__leg "$w" host) ;;
        *) inner=(__leg "$w" sid) ;;
        esac
        printf '\n################ wheels: %s ################\n' "$w"
        # Stale files of this kind from earlier runs (dist/ is this script's alone).
        case $w in
        sdist) rm -f -- "$OUT"/subinterp_rs-*.tar.gz ;;
        3.13s | release) ;; # 3.13s installs the 3.13 wheel; release builds nothing
        *) rm -f -- "$OUT"/subinterp_rs-*-cp"${w//./}"-cp"${w//./}"-*.whl ;;
        esac
        rm -f -- "$STAGE/$w.result" "$STAGE/$w.audit"
        if [[ $w == release ]]; then
            # Builds nothing: the host's 3.12 only makes the tools venv (no leg set-up).
            (PYO3_PYTHON=$("$TOP/scripts/test.sh" python 3.12) &&
                export PYO3_PYTHON && bash "$SELF" "${inner[@]}") 2>&1 | tee "$log" ||
                rc=${PIPESTATUS[0]}
        else
            "$TOP/scripts/test.sh" run "$leg" -- bash "$SELF" "${inner[@]}" 2>&1 | tee "$log" ||
                rc=${PIPESTATUS[0]}
        fi
        if ((rc == 0)) && [[ -s $STAGE/$w.result ]]; then
            status=PASS
            detail=$(<"$STAGE/$w.result")
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
__leg) leg_inner "$2" "$3" ;;
__install) install_inner "$2" ;;
__sdist) sdist_inner ;;
__release) release_inner ;;
-h | --help | help) usage 0 ;;
*) run_all "$@" ;;
esac
