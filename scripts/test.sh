#!/usr/bin/env bash
# scripts/test.sh -- the legs of subinterp-rs, each a nox session of noxfile.py (run through
# scripts/nox, which installs nox from PyPI), and `all` of them with a time budget and a
# summary table (make test, CI).
#
# Usage:
#   scripts/test.sh LEG                  one leg (= scripts/nox -s LEG): for a Python leg, venv
#                                        + the `dev` dependency group, maturin develop
#                                        --release, cargo test (Rust tests, embed libpython),
#                                        pytest
#   scripts/test.sh all [LEG...]         several legs, one after the other, then a summary
#                                        table; exit non-zero if any leg failed.  Default
#                                        legs: $SUBINTERP_LEGS, else
#                                        "lint 3.12 3.13 3.13s 3.14 3.15 3.14d wheels"
#   scripts/test.sh run LEG [--] CMD...  build into LEG's venv, then run CMD with that venv
#                                        first on PATH and PYO3_PYTHON, LD_LIBRARY_PATH and
#                                        CARGO_TARGET_DIR set for cargo (demo, lint, bench...)
#                                        (= scripts/nox -s LEG -- run CMD...)
#   scripts/test.sh python LEG           print the interpreter a host leg uses
#
# Legs (noxfile.py has the details):
#   3.12, 3.13   on the host; 3.13s (the newest 3.13 patch release), 3.14, 3.15, 3.14d (debug
#                build) inside the Debian sid chroot of scripts/sid-pythons.sh (built on first
#                use).  Interpreters: scripts/pythons.txt ($PYTHON312 ... override them).
#                Venv .venv-LEG on the host, under the chroot's /root/.cache/subinterp-rs in
#                it; cargo target dir target/pyLEG, target/sid-LEG.  If the chroot cannot be
#                made (no network, not root), the leg prints "SKIP: <reason>" and exits 77.
#   lint         scripts/lint.sh (cargo fmt --check, clippy, ruff check, ruff format --check,
#                mypy --strict, stubtest, mkdocs build --strict) in the 3.12 leg's venv and
#                cargo target dir, after building the extension there.  First in `all`, so
#                the 3.12 leg then finds its venv and build made.
#   wheels       scripts/wheels.sh (make wheels): the manylinux2014 release wheel of each of
#                3.12-3.15 and the sdist, each installed into a fresh venv and smoke-tested.
#                Last in `all`, so it reuses the legs' venvs and builds.
#
# Exit status of one leg: 0 passed, 77 skipped, anything else failed.  pytest's exit code 5
# (no tests collected) is a failure.
#
# Knobs (environment):
#   PYTHON312, PYTHON313 ... interpreters (scripts/pythons.txt)
#   SUBINTERP_LEGS           default legs of `all`
#   SUBINTERP_NO_SKIP=1      `all` counts a skipped leg as failed
#   SUBINTERP_LEG_TIMEOUT    time limit in seconds for cargo test and for pytest (default 1200)
#   SUBINTERP_BUDGET         seconds `all` may take in all (default 5040 = 84 min, for CI's
#                            90): a leg still running then is stopped and fails, and the legs
#                            after it fail as not run
#   SUBINTERP_LOG_DIR        where `all` keeps each leg's full log (default target/test-logs)
#   SUBINTERP_PYTEST_WORKERS pytest's worker processes in a leg (pytest-xdist; default 2, 0 for
#                            one process)
#   PYTEST_ADDOPTS           extra pytest options (pytest's own variable; passed into the chroot)

# shellcheck disable=SC2317  # functions run through traps look unreachable
set -euo pipefail

SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
TOP=$(cd -- "$(dirname -- "$SELF")/.." && pwd -P)
NOX=$TOP/scripts/nox
SKIP_RC=77
# The legs: lint, the Python legs of scripts/pythons.txt, wheels (noxfile.py's CI_LEGS).
ALL_LEGS="lint $(python3 "$TOP/scripts/pythons.py" --legs | tr '\n' ' ')wheels"
BUDGET=${SUBINTERP_BUDGET:-5040}

die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$SELF" >&2; exit "${1:-0}"; }

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

is_lint_leg() { [[ $1 == lint ]]; }
is_wheels_leg() { [[ $1 == wheels ]]; }
check_leg() {
    [[ " $ALL_LEGS " == *" $1 "* ]] || die "unknown leg '$1' (legs: $ALL_LEGS)"
}

# nox_session LEG [POSARGS...]: the nox session LEG; exit 77 if nox skipped it.
nox_session() {
    local leg=$1 report rc=0
    shift
    report=$(mktemp "${TMPDIR:-/tmp}/subinterp-rs-nox.XXXXXX")
    "$NOX" --report "$report" -s "$leg" ${1+-- "$@"} || rc=$?
    if ((rc == 0)) && python3 -c 'import json, sys
sys.exit(any(s["result"] == "skipped" for s in json.load(open(sys.argv[1]))["sessions"]) == 0)' "$report" 2>/dev/null; then
        rc=$SKIP_RC
    fi
    rm -f -- "$report"
    return "$rc"
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
        check_leg "$leg"
        ! is_lint_leg "$leg" || die "run: lint is not a Python leg (make lint: run 3.12 -- scripts/lint.sh)"
        ! is_wheels_leg "$leg" || die "run: wheels is not a Python leg (make wheels: scripts/wheels.sh)"
        [[ ${1:-} == -- ]] && shift
        (($#)) || die "run: no command given"
        nox_session "$leg" run "$@"
        ;;
    python) (($# == 2)) || usage 2; python3 "$TOP/scripts/pythons.py" "$2" ;;
    -h | --help | help | "") usage 0 ;;
    *) (($# == 1)) || usage 2; check_leg "$1"; nox_session "$1" ;;
    esac
}

# One line, so that bash has read all of it before it runs: editing this file while it runs
# (a long `all`) cannot change what the running copy does next.
main "$@"; exit
