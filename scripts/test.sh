#!/usr/bin/env bash
# scripts/test.sh -- build subinterp-rs into a venv of one Python ("leg") and test it.
#
# Usage:
#   scripts/test.sh LEG                  one leg: venv + tools, maturin develop --release,
#                                        cargo test (Rust tests, embed libpython), pytest
#   scripts/test.sh all [LEG...]         several legs, one after the other, then a summary
#                                        table; exit non-zero if any leg failed.  Default
#                                        legs: $SUBINTERP_LEGS, else
#                                        "lint 3.12 3.13 3.13s 3.14 3.15 3.14d wheels"
#   scripts/test.sh run LEG [--] CMD...  build into LEG's venv, then run CMD with that venv
#                                        first on PATH and PYO3_PYTHON, LD_LIBRARY_PATH and
#                                        CARGO_TARGET_DIR set for cargo (demo, lint, bench...)
#   scripts/test.sh python LEG           print the interpreter a host leg uses
#
# Legs:
#   3.12, 3.13   on the host: $PYTHON312 / $PYTHON313, by default the pyenv builds
#                /root/.pyenv/versions/3.12.1/bin/python3.12 and .../3.13.0/bin/python3.13,
#                else python3.12 / python3.13 on PATH.  Venv .venv-3.12 / .venv-3.13, cargo
#                target dir target/py3.12 / target/py3.13.
#   3.14, 3.15, 3.14d (debug build), 3.13s (the newest 3.13 patch release: users run it,
#                while the host's 3.13.0 stays as the oldest)
#                inside the Debian sid chroot of scripts/sid-pythons.sh (built on first use):
#                /usr/bin/python3.14, /usr/bin/python3.15, /usr/bin/python3.14d,
#                /usr/bin/python3.13.  Venv under
#                the chroot's /root/.cache/subinterp-rs, cargo target dir target/sid-LEG.
#                If the chroot cannot be made (no network, not root), the leg prints
#                "SKIP: <reason>" and exits 77.
#   lint         not a Python: scripts/lint.sh (cargo fmt --check, cargo clippy, ruff check,
#                ruff format --check, mypy --strict, stubtest) in the 3.12 leg's venv and cargo
#                target dir, after building the extension there (stubtest checks the built
#                module).  First in `all`, so the 3.12 leg then finds its venv and build made;
#                its tools (mypy, ruff) come from requirements-dev.txt like every leg's.
#   wheels       not a Python: scripts/wheels.sh (make wheels): the manylinux2014 release
#                wheel of each of 3.12-3.15 (maturin --zig, checked by auditwheel) and the
#                sdist, each installed into a fresh venv and smoke-tested.
#                Last in `all`, so it reuses the legs' venvs and builds; it fails if anything
#                fails, and a chroot Python it cannot have shows as SKIP in its own summary.
#
# Exit status of one leg: 0 passed, 77 skipped, anything else failed.  pytest's exit code 5
# (no tests collected) is a failure.
#
# Knobs (environment):
#   PYTHON312, PYTHON313     host interpreters (see above)
#   SUBINTERP_LEGS           default legs of `all`
#   SUBINTERP_NO_SKIP=1      `all` counts a skipped leg as failed
#   SUBINTERP_LEG_TIMEOUT    time limit in seconds for cargo test and for pytest (default 1200)
#   SUBINTERP_BUDGET         seconds `all` may take in all (default 5040 = 84 min, for CI's
#                            90): a leg still running then is stopped and fails, and the legs
#                            after it fail as not run
#   SUBINTERP_LOG_DIR        where `all` keeps each leg's full log (default target/test-logs)
#   PYTEST_ADDOPTS           extra pytest options (pytest's own variable; passed into the chroot)

# shellcheck disable=SC2317  # functions run through `step`, `in_env` and traps look unreachable
set -euo pipefail

SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
TOP=$(cd -- "$(dirname -- "$SELF")/.." && pwd -P)
SID=$TOP/scripts/sid-pythons.sh
SKIP_RC=77
ALL_LEGS="lint 3.12 3.13 3.13s 3.14 3.15 3.14d wheels"
LEG_TIMEOUT=${SUBINTERP_LEG_TIMEOUT:-1200}
BUDGET=${SUBINTERP_BUDGET:-5040}
LEG=${LEG:-}

say() { printf '==> [%s] %s\n' "${LEG:-test.sh}" "$*"; }
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$SELF" >&2; exit "${1:-0}"; }

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# step NAME CMD...: run CMD with a header and a footer giving its result and duration.
step() {
    local name=$1 t0=$SECONDS rc=0
    shift
    say "$name"
    "$@" || rc=$?
    if ((rc == 0)); then
        say "$name: ok ($(fmt_secs $((SECONDS - t0))))"
    else
        say "$name: FAILED, exit $rc ($(fmt_secs $((SECONDS - t0))))"
    fi
    return "$rc"
}

is_host_leg() { [[ $1 == 3.12 || $1 == 3.13 ]]; }
is_sid_leg() { [[ $1 == 3.14 || $1 == 3.15 || $1 == 3.14d || $1 == 3.13s ]]; }
# sid_python LEG: the chroot's interpreter of a sid leg and the version it must report.
sid_python() { [[ $1 == 3.13s ]] && echo "/usr/bin/python3.13 3.13" || echo "/usr/bin/python$1 $1"; }
is_lint_leg() { [[ $1 == lint ]]; }
is_wheels_leg() { [[ $1 == wheels ]]; }
check_leg() {
    is_host_leg "$1" || is_sid_leg "$1" || is_lint_leg "$1" || is_wheels_leg "$1" ||
        die "unknown leg '$1' (legs: $ALL_LEGS)"
}

# check_python PY LEG: print PY's real path if it is the Python of LEG ("3.14d": debug build).
check_python() {
    local py=$1 leg=$2 out
    out=$("$py" -c 'import sys, sysconfig
debug = "d" if sysconfig.get_config_var("Py_DEBUG") else ""
print("%d.%d%s" % (sys.version_info[0], sys.version_info[1], debug))
print(sys.executable)') || die "cannot run $py"
    [[ ${out%%$'\n'*} == "$leg" ]] || die "$py is Python ${out%%$'\n'*}, not $leg"
    printf '%s\n' "${out#*$'\n'}"
}

host_python() {
    local leg=$1 var=PYTHON${1//./} py
    py=${!var:-}
    if [[ -z $py ]]; then
        case $leg in
        3.12) py=/root/.pyenv/versions/3.12.1/bin/python3.12 ;;
        3.13) py=/root/.pyenv/versions/3.13.0/bin/python3.13 ;;
        esac
        [[ -x $py ]] || py=$(command -v "python$leg") ||
            die "no Python $leg: set $var=/path/to/python$leg or put python$leg on PATH"
    fi
    check_python "$py" "$leg"
}

# make_venv PY VENV: (re)create VENV from PY with requirements-dev.txt installed, unless a
# stamp shows it is already that.  (Runs under `step`, where set -e is off: hence the
# explicit `|| return`s.)
make_venv() {
    local py=$1 venv=$2 want have=
    want="$py $("$py" -c 'import sys; print(sys.version)' | head -n1) $(cksum <"$TOP/requirements-dev.txt")"
    [[ -f $venv/.subinterp-rs-stamp ]] && have=$(<"$venv/.subinterp-rs-stamp")
    if [[ -x $venv/bin/python && $have == "$want" ]]; then
        say "venv $venv is up to date"
        return 0
    fi
    rm -f -- "$venv/.subinterp-rs-stamp"
    "$py" -m venv --clear "$venv" || return
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -r "$TOP/requirements-dev.txt" || return
    printf '%s\n' "$want" >"$venv/.subinterp-rs-stamp"
}

develop() { (cd "$TOP" && maturin develop --release); }

cargo_test() { (cd "$TOP" && timeout --foreground -k 30 "$LEG_TIMEOUT" cargo test --workspace); }

pytest_run() {
    local rc=0
    # --foreground keeps pytest in our process group, where the budget of `all` reaches it.
    (cd "$TOP" && timeout --foreground -k 30 "$LEG_TIMEOUT" python -m pytest tests --color=no \
        --durations=10 -o faulthandler_timeout=300) || rc=$?
    case $rc in
    0) ;;
    5) say "pytest collected no tests (exit 5): that is a failure" ;;
    124 | 137) say "pytest timed out after ${LEG_TIMEOUT}s (SUBINTERP_LEG_TIMEOUT)" ;;
    esac
    return "$rc"
}

# in_env PY VENV TARGET ACTION ARGS...: set up the leg's environment, build, do ACTION.
in_env() {
    local py=$1 venv=$2 target=$3 action=$4 libdir
    shift 4
    libdir=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
    say "Python $("$py" -c 'import sys; print(sys.version.split()[0])') at $py"
    export CARGO_TARGET_DIR=$target PYO3_PYTHON=$py
    export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    unset PYTHONHOME PYTHONPATH
    # A find-links directory that is not there (the host's, inside the chroot) only makes pip
    # warn about every package.
    if [[ -n ${PIP_FIND_LINKS:-} && $PIP_FIND_LINKS != *[[:space:]]* && ! -e $PIP_FIND_LINKS ]]; then
        unset PIP_FIND_LINKS
    fi
    local t0=$SECONDS
    step "venv $venv (pip install -r requirements-dev.txt)" make_venv "$py" "$venv" || return
    export VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH
    local built=0
    step "maturin develop --release (CARGO_TARGET_DIR=$target)" develop || built=$?
    case $action in
    leg)
        local failed=()
        ((built == 0)) || failed+=("maturin develop")
        step "cargo test (PYO3_PYTHON=$py LD_LIBRARY_PATH=$libdir)" cargo_test ||
            failed+=("cargo test")
        if ((built == 0)); then
            step "python -m pytest tests" pytest_run || failed+=(pytest)
        else
            say "pytest not run: the extension did not build"
        fi
        if ((${#failed[@]})); then
            say "LEG FAILED: ${failed[*]} ($(fmt_secs $((SECONDS - t0))))"
            return 1
        fi
        say "LEG PASSED ($(fmt_secs $((SECONDS - t0))))"
        ;;
    run)
        ((built == 0)) || return "$built"
        [[ ${1:-} == -- ]] && shift
        (($#)) || die "run: no command given"
        "$@"
        ;;
    *) die "unknown action $action" ;;
    esac
}

# with_leg LEG ACTION ARGS...: run ACTION for LEG on the host or inside the sid chroot.
with_leg() {
    local leg=$1
    shift
    check_leg "$leg"
    LEG=$leg
    if is_lint_leg "$leg"; then
        local py
        py=$(host_python 3.12)
        in_env "$py" "$TOP/.venv-3.12" "$TOP/target/py3.12" run -- "$TOP/scripts/lint.sh"
        return
    fi
    if is_wheels_leg "$leg"; then
        "$TOP/scripts/wheels.sh"
        return
    fi
    if is_host_leg "$leg"; then
        local py
        py=$(host_python "$leg")
        in_env "$py" "$TOP/.venv-$leg" "$TOP/target/py$leg" "$@"
        return
    fi
    if [[ $EUID -ne 0 ]]; then
        echo "SKIP: [$leg] Python $leg runs in the Debian sid chroot, which needs root (running as uid $EUID)"
        return "$SKIP_RC"
    fi
    say "Debian sid chroot: scripts/sid-pythons.sh ensure"
    local tmp rc=0
    tmp=$(mktemp)
    "$SID" ensure 2>&1 | tee "$tmp" || rc=${PIPESTATUS[0]}
    if ((rc != 0)); then
        local why
        why=$(grep -m1 'error:' "$tmp" || tail -n1 "$tmp")
        rm -f -- "$tmp"
        echo "SKIP: [$leg] no Debian sid chroot, so no Python $leg here: ${why:-scripts/sid-pythons.sh ensure exited $rc} (log: $("$SID" root).log)"
        return "$SKIP_RC"
    fi
    rm -f -- "$tmp"
    LEG=$leg CARGO_TARGET_DIR=$TOP/target/sid-$leg "$SID" run -- bash "$SELF" __inside "$leg" "$@"
}

# Inside the chroot (via with_leg).
inside() {
    local leg=$1 py key exe want
    shift
    LEG=$leg
    read -r exe want <<<"$(sid_python "$leg")"
    [[ -x $exe ]] || {
        echo "SKIP: [$leg] $exe is not in the sid chroot (scripts/sid-pythons.sh update?)"
        return "$SKIP_RC"
    }
    py=$(check_python "$exe" "$want")
    # One venv per project checkout, so two clones never share an editable install.
    key=$(printf '%s' "$TOP" | cksum | cut -d' ' -f1)
    in_env "$py" "/root/.cache/subinterp-rs/venv-$key-$leg" "${CARGO_TARGET_DIR:-$TOP/target/sid-$leg}" "$@"
}

# ------------------------------------------------------------------------- all

# Counts from a leg's log: "passed failed skipped" of the pytest summary line and of the
# cargo test result lines (summed), and the pytest summary text.
pytest_line() {
    grep -E '^=+ .*\b(passed|failed|errors?|skipped|no tests ran|deselected|xfailed|xpassed)\b.* in [0-9.]+s.*=+$' "$1" |
        tail -n1 | sed -E 's/^=+ //; s/ =+$//' || true
}
count() { # count WORD TEXT: the number before WORD in TEXT, or 0
    local n
    n=$(grep -oE "[0-9]+ $1\b" <<<"$2" | head -n1 | cut -d' ' -f1) || true
    printf '%s' "${n:-0}"
}
cargo_counts() { # "passed failed ignored" summed over cargo's "test result:" lines
    grep -E '^test result: ' "$1" | awk '{
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed;/) p += $i
            if ($(i+1) ~ /^failed;/) f += $i
            if ($(i+1) ~ /^ignored;/) s += $i
        }
    } END { printf "%d %d %d", p, f, s }'
}

# run_leg_logged LEG SECONDS LOG: the leg, its output shown and kept in LOG, stopped after
# SECONDS.  `timeout` makes the leg a process group of its own, so that all of it (the chroot
# included) stops at the deadline, and Ctrl-C (which reaches only our group) is forwarded.
LEG_PGID_FILE=
run_leg_logged() {
    local leg=$1 left=$2 log=$3 rcfile
    LEG_PGID_FILE=$log.pgid
    rcfile=$log.rc
    rm -f -- "$LEG_PGID_FILE" "$rcfile"
    {
        timeout -k 60 "$left" bash "$SELF" "$leg" 2>&1 &
        pgid=$!
        echo "$pgid" >"$LEG_PGID_FILE"
        r=0
        wait "$pgid" || r=$?
        # Whatever the leg left behind in its process group (say, a forked child a test never
        # reaped) would eat CPU in the next legs: end it.
        if pgrep -g "$pgid" >/dev/null 2>&1; then
            echo "==> [$leg] ending processes the leg left behind: $(pgrep -d ' ' -g "$pgid")"
            kill -KILL -- "-$pgid" 2>/dev/null || true
        fi
        echo "$r" >"$rcfile"
    } | tee "$log"
    local rc
    rc=$(cat -- "$rcfile" 2>/dev/null || echo 1)
    rm -f -- "$LEG_PGID_FILE" "$rcfile"
    LEG_PGID_FILE=
    return "$rc"
}
on_interrupt() {
    if [[ -n $LEG_PGID_FILE && -f $LEG_PGID_FILE ]]; then
        kill -TERM -- "-$(cat -- "$LEG_PGID_FILE")" 2>/dev/null || true
    fi
    echo "test.sh: interrupted" >&2
    exit 130
}

run_all() {
    trap on_interrupt INT TERM
    local -a legs
    if (($#)); then legs=("$@"); else read -r -a legs <<<"${SUBINTERP_LEGS:-$ALL_LEGS}"; fi
    local leg
    for leg in "${legs[@]}"; do check_leg "$leg"; done
    local logdir=${SUBINTERP_LOG_DIR:-$TOP/target/test-logs}
    mkdir -p -- "$logdir"
    local -a rows=()
    local n_pass=0 n_fail=0 n_skip=0 t_pass=0 t_fail=0 t_skip=0 t_all=$SECONDS
    for leg in "${legs[@]}"; do
        local log=$logdir/$leg.log t0=$SECONDS rc=0 status left
        left=$((BUDGET - (SECONDS - t_all)))
        printf '\n################ leg %s (%s of the time budget left) ################\n' \
            "$leg" "$(fmt_secs $((left > 0 ? left : 0)))"
        if ((left < 60)); then
            echo "NOT RUN: [$leg] the time budget (SUBINTERP_BUDGET=${BUDGET}s) is used up" | tee "$log"
            rc=1
        else
            run_leg_logged "$leg" "$left" "$log" || rc=$?
            ((rc != 124 && rc != 137)) ||
                printf "\nTIMEOUT: [%s] stopped at the end of the time budget (SUBINTERP_BUDGET=%ss)\n" "$leg" "$BUDGET" | tee -a "$log"
        fi
        local took=$((SECONDS - t0))
        local py cc cp cf cs pp pf ps detail
        py=$(pytest_line "$log")
        [[ -n $py ]] || py=$(grep -m1 -oE 'pytest (timed out after [0-9]+s|collected no tests|not run: the extension did not build)' "$log") || true
        read -r cp cf cs <<<"$(cargo_counts "$log")"
        pp=$(count passed "$py")
        pf=$(($(count failed "$py") + $(count error "$py") + $(count errors "$py")))
        ps=$(count skipped "$py")
        if ((rc == 0)); then
            status=PASS
        elif ((rc == SKIP_RC)); then
            status=SKIP
            [[ ${SUBINTERP_NO_SKIP:-} == 1 ]] && status=FAIL
        else
            status=FAIL
        fi
        case $status in
        PASS) n_pass=$((n_pass + 1)) ;;
        FAIL) n_fail=$((n_fail + 1)) ;;
        SKIP) n_skip=$((n_skip + 1)) ;;
        esac
        t_pass=$((t_pass + cp + pp))
        t_fail=$((t_fail + cf + pf))
        t_skip=$((t_skip + cs + ps))
        if ((rc == SKIP_RC)); then
            detail=$(grep -m1 '^SKIP:' "$log" || echo "SKIP")
        elif grep -qE '^(NOT RUN|TIMEOUT):' "$log"; then
            detail=$(grep -m1 -E '^(NOT RUN|TIMEOUT):' "$log")
        elif is_lint_leg "$leg"; then
            # scripts/lint.sh's last line: "all clean" or "FAILED: <checks>".
            detail=$(grep -E '^==> \[lint\] (all clean|FAILED: )' "$log" | tail -n1 | sed 's/^==> //') || true
            detail=${detail:-"no lint summary line (see $log)"}
        elif is_wheels_leg "$leg"; then
            # scripts/wheels.sh's last line: "total time ...; N passed, N failed, N skipped".
            detail=$(grep -E '^total time .*; [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" |
                tail -n1 | sed 's/^total time [^;]*; /wheels + sdist: /') || true
            detail=${detail:-"no wheels summary line (see $log)"}
        else
            cc="cargo: $cp passed, $cf failed"
            ((cs)) && cc+=", $cs ignored"
            detail="$cc | pytest: ${py:-no summary line (see $log)}"
        fi
        rows+=("$(printf '%-6s %-5s %8s  %s' "$leg" "$status" "$(fmt_secs "$took")" "$detail")")
    done
    printf '\n################ summary (logs: %s) ################\n' "$logdir"
    printf '%-6s %-5s %8s  %s\n' leg result time 'tests'
    printf '%s\n' "${rows[@]}"
    printf 'total time %s\n' "$(fmt_secs $((SECONDS - t_all)))"
    printf 'legs: %d passed, %d failed, %d skipped\n' "$n_pass" "$n_fail" "$n_skip"
    printf 'tests: %d passed, %d failed, %d skipped\n' "$t_pass" "$t_fail" "$t_skip"
    if ((n_pass == 0 && n_fail == 0)); then
        echo "test.sh: every leg was skipped: nothing was tested" >&2
        return 1
    fi
    ((n_fail == 0))
}

# ------------------------------------------------------------------------ main

main() {
    case ${1:-} in
    all) shift; run_all "$@" ;;
    run)
        (($# >= 2)) || usage 2
        local leg=$2
        shift 2
        ! is_lint_leg "$leg" || die "run: lint is not a Python leg (make lint: run 3.12 -- scripts/lint.sh)"
        ! is_wheels_leg "$leg" || die "run: wheels is not a Python leg (make wheels: scripts/wheels.sh)"
        with_leg "$leg" run "$@"
        ;;
    python) (($# == 2)) || usage 2; check_leg "$2"; is_host_leg "$2" || die "python: only host legs"; host_python "$2" ;;
    __inside) shift; inside "$@" ;;
    -h | --help | help | "") usage 0 ;;
    *) (($# == 1)) || usage 2; with_leg "$1" leg ;;
    esac
}

# One line, so that bash has read all of it before it runs: editing this file while it runs
# (a long `all`) cannot change what the running copy does next.
main "$@"; exit
