#!/usr/bin/env bash
# scripts/sid-pythons.sh -- CPython 3.14, 3.15 and the 3.14 debug build,
# taken from a Debian sid chroot that is built once and cached outside the
# work tree.
#
# Usage (as root):
#   scripts/sid-pythons.sh ensure          build/finish the chroot if needed
#                                          (minutes the first time, instant
#                                          afterwards); non-zero exit with a
#                                          message if it cannot be made
#   scripts/sid-pythons.sh run [--] CMD... run CMD inside the chroot (builds
#                                          it first if needed); exit status
#                                          is CMD's
#   scripts/sid-pythons.sh pythons         print the interpreters inside the
#                                          chroot, one absolute path a line
#   scripts/sid-pythons.sh update          apt-get update + upgrade/install
#                                          the package set in place
#   scripts/sid-pythons.sh root            print the chroot directory
#   scripts/sid-pythons.sh remove          delete the chroot
#
# Typical caller (e.g. CI):
#   if scripts/sid-pythons.sh ensure; then
#     CARGO_TARGET_DIR=$PWD/target/sid-3.14 \
#       scripts/sid-pythons.sh run python3.14 -m pytest ...
#   else
#     echo "SKIP: no Debian sid chroot (CPython 3.14/3.15 unavailable)"
#   fi
#
# Inside `run`:
#   * the git top-level of $PWD (or $PWD itself outside git; override with
#     SID_BIND=DIR) is bind-mounted at the SAME absolute path, and the command
#     starts in $PWD (or in that top-level if $PWD lies outside it);
#   * $CARGO_HOME (/root/.cargo) and $RUSTUP_HOME (/root/.rustup) of the host
#     are bind-mounted at the same paths and $CARGO_HOME/bin is on PATH, so the
#     host's Rust toolchain is used (it links against sid's gcc/glibc);
#   * /proc, /sys, /dev (with /dev/pts, /dev/shm) are mounted, and the host's
#     /etc/resolv.conf, CA bundle and /etc/pip.conf are laid over the chroot's
#     (pip over TLS needs the host's CA bundle);
#   * the environment is cleared except HOME=/root, PATH, LANG=C.UTF-8, TERM
#     and these, passed through from the caller: CI, PYTHON*, PYTEST_ADDOPTS,
#     SUBINTERP_*, PYO3_*, MATURIN_*, CARGO_*, RUST*, PIP_*, SSL_CERT_FILE,
#     SSL_CERT_DIR, REQUESTS_CA_BUNDLE, NO_COLOR, and any names listed in
#     SID_PASS_ENV (space-separated);
#   * CARGO_TARGET_DIR defaults to <top>/target/sid so the chroot's build does
#     not fight with the host's target/ (different glibc, different Python).
#     PyO3 caches the interpreter it built against per target dir, so callers
#     that switch interpreters should use one target dir per interpreter,
#     e.g. CARGO_TARGET_DIR=$PWD/target/sid-3.14, .../sid-3.15, .../sid-3.14d;
#   * /tmp is the chroot's own /tmp: it persists between `run`s (so a venv
#     made in one `run` is usable in the next) but is not the host's /tmp.
#
# Mounts are made in a private mount namespace (unshare -m), so they are
# never visible on the host and vanish when CMD exits, however it exits.
# Where unshare is unusable the script mounts in the host namespace instead,
# serialises `run`s with the lock and unmounts in an EXIT trap.
#
# Environment knobs:
#   SID_CHROOT          chroot directory (default /var/cache/subinterp-rs/sid);
#                       SID_CHROOT.lock and SID_CHROOT.log live beside it
#   SID_MIRROR          Debian mirror (default http://deb.debian.org/debian)
#   SID_EXTRA_PACKAGES  extra Debian packages to install (space-separated)
#   SID_BIND            directory to bind-mount instead of the git top-level
#   SID_PASS_ENV        extra environment variable names to pass through
#   SID_VERBOSE=1       show apt/debootstrap output instead of only logging it
#   SID_NO_UNSHARE=1    force the no-namespace fallback (for testing)
#
# Chroot life cycle: a fresh chroot is built in SID_CHROOT.new and renamed to
# SID_CHROOT only once complete; SID_CHROOT/.subinterp-rs-ready is written
# last and lists the packages installed, so a half-made chroot (or one made
# for a shorter package list) is detected and finished/rebuilt by `ensure`.
# `flock` on SID_CHROOT.lock keeps concurrent invocations from building twice:
# builders hold it exclusively, `run` holds it shared while CMD runs.

set -euo pipefail

prog=${0##*/}
SELF=$(readlink -f -- "${BASH_SOURCE[0]}")

SID_CHROOT=${SID_CHROOT:-/var/cache/subinterp-rs/sid}
SID_CHROOT=$(realpath -m -- "$SID_CHROOT")   # absolute, no trailing /
SID_MIRROR=${SID_MIRROR:-http://deb.debian.org/debian}
LOCK_FILE=$SID_CHROOT.lock
LOG_FILE=$SID_CHROOT.log

# Markers (relative to a chroot root).
BOOTSTRAPPED=.subinterp-rs-bootstrapped   # debootstrap finished
READY=.subinterp-rs-ready                 # whole setup finished; lists the packages

# Installed by debootstrap itself (the rest comes via apt inside, after an
# `apt-get update` that tolerates the archive's dated Release file).
BOOTSTRAP_INCLUDE=python3.14,python3.14-dev,python3.14-venv
PACKAGES=(
    python3.14 python3.14-dev python3.14-venv
    python3.14-dbg libpython3.14-testsuite     # debug build + Lib/test
    python3.15 python3.15-dev python3.15-venv
    python3.13 python3.13-dev python3.13-venv   # newest 3.13 patch (3.13.0 is on the host)
    libpython3.15-testsuite                     # 3.15's Lib/test
    gcc libc6-dev pkg-config make               # to link Rust cdylibs
    git ca-certificates
)
read -r -a _extra <<<"${SID_EXTRA_PACKAGES:-}"
PACKAGES+=("${_extra[@]}")
# The ready marker holds "v$SETUP_VERSION" and then the installed packages,
# one a line.  A package missing from it (the list above grew, or
# SID_EXTRA_PACKAGES names a new one) makes `ensure` provision the chroot in
# place; bump SETUP_VERSION when provisioning changes in a way the package
# list does not show.
SETUP_VERSION=1

HOST_CARGO_HOME=${CARGO_HOME:-/root/.cargo}
HOST_RUSTUP_HOME=${RUSTUP_HOME:-/root/.rustup}
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# ---------------------------------------------------------------- helpers

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
    [[ $EUID -eq 0 ]] || die "must run as root (chroot, mount, debootstrap)"
}

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$SELF" >&2
    exit "${1:-0}"
}

is_ready() {
    local -a have
    [[ -f $SID_CHROOT/$READY ]] || return 1
    mapfile -t have <"$SID_CHROOT/$READY"
    [[ ${have[0]:-} == "v$SETUP_VERSION" ]] || return 1
    local installed=" ${have[*]:1} " p
    for p in "${PACKAGES[@]}"; do
        [[ $installed == *" $p "* ]] || return 1
    done
}

# Take the lock file on fd 9: lock_fd -x (exclusive) or -s (shared).
lock_fd() {
    mkdir -p -- "$(dirname -- "$LOCK_FILE")"
    if ! { true >&9; } 2>/dev/null; then exec 9>>"$LOCK_FILE"; fi
    if ! flock -n "$1" 9; then
        log "waiting for lock $LOCK_FILE (another sid-pythons.sh is building/using the chroot)"
        flock "$1" 9
    fi
}

# Can we make a private mount namespace here?  (Cached per process.)
_unshare_ok=
use_unshare() {
    if [[ -z $_unshare_ok ]]; then
        _unshare_ok=no
        if [[ ${SID_NO_UNSHARE:-} != 1 ]] && command -v unshare >/dev/null &&
            unshare -m --propagation private true 2>/dev/null; then
            _unshare_ok=yes
        fi
    fi
    [[ $_unshare_ok == yes ]]
}

# Mount points (from this process's view) at or below PATH.
mounts_under() {
    local path=$1
    awk -v p="$path" '{
        m = $5; gsub(/\\040/, " ", m)
        if (m == p || index(m, p "/") == 1) print m
    }' /proc/self/mountinfo
}

# rm -rf a chroot directory, refusing if anything is mounted inside it
# (rm would otherwise descend into a bind-mounted /root/.cargo or the repo).
safe_rm() {
    local path=$1 m
    [[ -e $path ]] || return 0
    m=$(mounts_under "$path")
    [[ -z $m ]] || die "refusing to delete $path: still mounted inside it:"$'\n'"$m"
    rm -rf --one-file-system -- "$path"
}

# Run a command with its output appended to $LOG_FILE (and shown on stderr
# with SID_VERBOSE=1).  Use as `if ! logged ...`, so set -e does not fire.
logged() {
    printf '\n### %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOG_FILE"
    if [[ ${SID_VERBOSE:-} == 1 ]]; then
        "$@" 2>&1 | tee -a "$LOG_FILE" >&2
        return "${PIPESTATUS[0]}"
    fi
    "$@" >>"$LOG_FILE" 2>&1
}

fail_with_log() {
    log "error: $*"
    if [[ -f $LOG_FILE ]]; then
        log "last lines of $LOG_FILE:"
        tail -n 25 -- "$LOG_FILE" | sed 's/^/    /' >&2
    fi
    exit 1
}

# Copy FILE over ROOT/FILE (following symlinks on both sides of the host).
copy_in() {
    local root=$1 file=$2
    [[ -e $file ]] || return 0
    mkdir -p -- "$root$(dirname -- "$file")"
    rm -f -- "$root$file"          # may be a dangling symlink in the chroot
    cp -L -- "$file" "$root$file"
}

# ------------------------------------------------- mounting and entering

# Mounts for a chroot ROOT.  MODE=base: /proc /sys /dev + host resolv.conf,
# CA bundle, pip.conf.  MODE=full: also cargo/rustup homes and the project
# directory $_SID_TOP.  Records every mount point in MOUNTED (for the
# fallback's cleanup; in a private namespace they just vanish on exit).
MOUNTED=()
bind_mount() {   # bind_mount SRC DST (DST created as dir or file like SRC)
    local src=$1 dst=$2
    if [[ -d $src ]]; then
        mkdir -p -- "$dst"
    else
        [[ -e $dst ]] || { mkdir -p -- "$(dirname -- "$dst")"; : >"$dst"; }
    fi
    mount --bind -- "$src" "$dst"
    MOUNTED+=("$dst")
}
setup_mounts() {
    local root=$1 mode=$2
    mount -t proc proc "$root/proc";   MOUNTED+=("$root/proc")
    mount --rbind /sys "$root/sys";    MOUNTED+=("$root/sys")
    mount --rbind /dev "$root/dev";    MOUNTED+=("$root/dev")
    # Host networking/TLS config, laid over the chroot's (and so immune to
    # the chroot's ca-certificates regenerating its bundle).
    [[ -e /etc/resolv.conf ]] && bind_mount "$(readlink -f /etc/resolv.conf)" "$root/etc/resolv.conf"
    [[ -f $HOST_CA_BUNDLE ]] && [[ -e $root$HOST_CA_BUNDLE ]] &&
        bind_mount "$(readlink -f "$HOST_CA_BUNDLE")" "$root$HOST_CA_BUNDLE"
    [[ -f /etc/pip.conf ]] && bind_mount /etc/pip.conf "$root/etc/pip.conf"
    if [[ $mode == full ]]; then
        [[ -d $HOST_CARGO_HOME ]] && bind_mount "$HOST_CARGO_HOME" "$root$HOST_CARGO_HOME"
        [[ -d $HOST_RUSTUP_HOME ]] && bind_mount "$HOST_RUSTUP_HOME" "$root$HOST_RUSTUP_HOME"
        bind_mount "$_SID_TOP" "$root$_SID_TOP"
    fi
    return 0
}
cleanup_mounts() {   # fallback mode only: undo setup_mounts, innermost first
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount -R -- "${MOUNTED[i]}" 2>/dev/null || umount -R -l -- "${MOUNTED[i]}" 2>/dev/null || true
    done
    MOUNTED=()
}

# Environment for the command inside: a whitelist of the caller's variables
# plus fixed values.
build_env() {
    CHROOT_ENV=()
    local kv name extra=" ${SID_PASS_ENV:-} "
    while IFS= read -r -d '' kv; do
        name=${kv%%=*}
        case $name in
        CI | PYTHON* | PYTEST_ADDOPTS | SUBINTERP_* | PYO3_* | MATURIN_* | \
            CARGO_* | RUST* | PIP_* | SSL_CERT_FILE | SSL_CERT_DIR | \
            REQUESTS_CA_BUNDLE | NO_COLOR | TERM)
            CHROOT_ENV+=("$kv") ;;
        *) [[ $extra == *" $name "* ]] && CHROOT_ENV+=("$kv") ;;
        esac
    done < <(env -0)
    CHROOT_ENV+=(
        HOME=/root
        LANG=C.UTF-8
        PATH="$HOST_CARGO_HOME/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        CARGO_HOME="$HOST_CARGO_HOME"
        RUSTUP_HOME="$HOST_RUSTUP_HOME"
        DEBIAN_FRONTEND=noninteractive
        # The repo may belong to another uid than root: let git in the chroot
        # use it without "dubious ownership" errors.
        GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'
    )
}

# Enter ROOT with mounts of MODE and run CMD in directory $_SID_CWD (or /).
# In a private namespace this execs (mounts die with CMD); in the fallback it
# runs CMD as a child and unmounts in a trap.
enter_chroot() {   # enter_chroot ROOT MODE CMD...
    local root=$1 mode=$2
    shift 2
    build_env
    # shellcheck disable=SC2016  # $1/$@ are for the inner sh
    local -a inner=(chroot "$root" /usr/bin/env -i "${CHROOT_ENV[@]}"
        /bin/sh -c 'cd "$1" || exit 125; shift; exec "$@"' sid-run "${_SID_CWD:-/}" "$@")
    if use_unshare; then
        # Re-enter this script inside a fresh private mount namespace; with
        # ENTER_EXEC=1 replace this shell, so signals reach CMD directly.
        export _SID_TOP _SID_CWD
        local -a ns=(unshare -m --propagation private -- bash "$SELF" __ns "$root" "$mode" "${inner[@]}")
        if [[ ${ENTER_EXEC:-} == 1 ]]; then exec "${ns[@]}"; fi
        "${ns[@]}"
    else
        (
            trap cleanup_mounts EXIT
            setup_mounts "$root" "$mode"
            # CMD runs in the background (stdin kept) so that a signal to us
            # is forwarded to it and the EXIT trap still unmounts afterwards.
            exec 3<&0
            "${inner[@]}" <&3 3<&- &
            local child=$! rc=0
            trap 'kill -TERM "$child" 2>/dev/null' TERM HUP
            trap 'kill -INT "$child" 2>/dev/null' INT
            while :; do
                wait "$child" && rc=0 || rc=$?
                kill -0 "$child" 2>/dev/null || break   # else: a signal interrupted wait
            done
            exit "$rc"
        )
    fi
}

# ----------------------------------------------------- building the chroot

# Install packages etc. into ROOT (a bootstrapped chroot); idempotent.
provision() {
    local root=$1
    # Packages a previous provisioning installed stay in the marker's list.
    local -a have=() all
    if [[ -f $root/$READY ]]; then
        mapfile -t have <"$root/$READY"
        [[ ${have[0]:-} == "v$SETUP_VERSION" ]] && have=("${have[@]:1}") || have=()
    fi
    mapfile -t all < <(printf '%s\n' "${have[@]}" "${PACKAGES[@]}" | sed '/^$/d' | sort -u)
    rm -f -- "$root/$READY"
    copy_in "$root" /etc/resolv.conf
    copy_in "$root" "$HOST_CA_BUNDLE"
    copy_in "$root" /etc/pip.conf
    # sid's Release file in the mirror may be dated; no recommends (smaller);
    # never start services in the chroot.
    cat >"$root/etc/apt/apt.conf.d/99subinterp-rs" <<'EOF'
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
Dpkg::Use-Pty "0";
EOF
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"

    local t0=$SECONDS
    log "apt-get install in the chroot: ${all[*]}"
    _SID_CWD=/
    # shellcheck disable=SC2016  # $@ is for the inner sh
    if ! logged enter_chroot "$root" base sh -c '
            set -e
            apt-get -o Acquire::Check-Valid-Until=false update
            dpkg --configure -a
            apt-get install -y "$@"
            apt-get clean' sh "${all[@]}"; then
        fail_with_log "could not install packages in the sid chroot $root"
    fi
    # Keep a copy of the host CA bundle too (used where the bind is absent).
    copy_in "$root" "$HOST_CA_BUNDLE"
    printf '%s\n' "v$SETUP_VERSION" "${all[@]}" >"$root/$READY.tmp"
    mv -- "$root/$READY.tmp" "$root/$READY"
    log "packages installed in $((SECONDS - t0))s"
}

# Make sure the host has debootstrap (and its wget).
host_tools() {
    command -v debootstrap >/dev/null && command -v wget >/dev/null && return 0
    command -v apt-get >/dev/null || die "debootstrap is missing and there is no apt-get to install it"
    log "installing debootstrap on the host"
    if ! logged apt-get update || ! logged apt-get install -y debootstrap wget; then
        fail_with_log "could not install debootstrap on the host"
    fi
}

build_fresh() {
    local new=$SID_CHROOT.new t0=$SECONDS
    host_tools
    # Fail fast (with a clear message) when the mirror is unreachable.
    if ! wget -q -T 20 -t 2 -O /dev/null "$SID_MIRROR/dists/sid/Release"; then
        die "cannot reach $SID_MIRROR (no network?): cannot build the sid chroot"
    fi
    safe_rm "$new"
    mkdir -p -- "$new"
    log "debootstrap sid into $new (a few minutes; log: $LOG_FILE)"
    local -a ns=()
    use_unshare && ns=(unshare -m --propagation private --)
    if ! logged "${ns[@]}" debootstrap --variant=minbase \
        --include="$BOOTSTRAP_INCLUDE" sid "$new" "$SID_MIRROR"; then
        fail_with_log "debootstrap of sid failed"
    fi
    : >"$new/$BOOTSTRAPPED"
    log "debootstrap done in $((SECONDS - t0))s"
    provision "$new"
    safe_rm "$SID_CHROOT"          # an incomplete earlier attempt, if any
    mv -- "$new" "$SID_CHROOT"
    log "sid chroot ready at $SID_CHROOT (built in $((SECONDS - t0))s)"
}

# ---------------------------------------------------------- subcommands

cmd_ensure() {
    is_ready && return 0           # fast path: no lock needed
    need_root
    lock_fd -x
    is_ready && return 0           # someone built it while we waited
    : >>"$LOG_FILE"
    if [[ -f $SID_CHROOT/$BOOTSTRAPPED ]]; then
        log "sid chroot at $SID_CHROOT is incomplete or outdated: provisioning it"
        provision "$SID_CHROOT"
    else
        [[ -e $SID_CHROOT ]] && log "removing half-made chroot $SID_CHROOT"
        build_fresh
    fi
}

cmd_update() {
    need_root
    [[ -f $SID_CHROOT/$BOOTSTRAPPED ]] || { cmd_ensure; return; }
    lock_fd -x
    : >>"$LOG_FILE"
    provision "$SID_CHROOT"
}

# Decide which host directory to bind (_SID_TOP) and where to start (_SID_CWD).
pick_dirs() {
    local top
    if [[ -n ${SID_BIND:-} ]]; then
        top=$SID_BIND
    else
        top=$(git -c safe.directory='*' rev-parse --show-toplevel 2>/dev/null) || top=$PWD
    fi
    top=$(readlink -f -- "$top")
    [[ -d $top ]] || die "not a directory: $top"
    [[ $top != / ]] || die "refusing to bind-mount / into the chroot (run from a project dir or set SID_BIND)"
    case "$top/" in "$SID_CHROOT/"*) die "project dir $top is inside the chroot $SID_CHROOT" ;; esac
    case "$SID_CHROOT/" in "$top/"*) die "chroot $SID_CHROOT is inside the project dir $top" ;; esac
    _SID_TOP=$top
    local pwd
    pwd=$(readlink -f -- "$PWD")
    case "$pwd/" in "$top/"*) _SID_CWD=$pwd ;; *) _SID_CWD=$top ;; esac
}

cmd_run() {
    [[ ${1:-} == -- ]] && shift
    [[ $# -gt 0 ]] || die "run: no command given"
    need_root
    pick_dirs
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$_SID_TOP/target/sid}
    # Hold the lock shared while CMD runs, so `update`/rebuilds wait for us.
    while :; do
        cmd_ensure
        if use_unshare; then lock_fd -s; else lock_fd -x; fi  # fallback: one run at a time
        is_ready && break
    done
    ENTER_EXEC=1 enter_chroot "$SID_CHROOT" full "$@"
}

cmd_pythons() {
    is_ready || die "sid chroot not ready at $SID_CHROOT (run: $prog ensure)"
    local f
    for f in "$SID_CHROOT"/usr/bin/python3.*; do
        [[ ${f##*/} =~ ^python3\.[0-9]+d?$ && -x $f ]] && printf '%s\n' "${f#"$SID_CHROOT"}"
    done | sort -V
}

cmd_remove() {
    need_root
    lock_fd -x
    safe_rm "$SID_CHROOT.new"
    safe_rm "$SID_CHROOT"
    log "removed $SID_CHROOT"
}

# Internal: runs inside the private mount namespace made by enter_chroot.
cmd___ns() {
    local root=$1 mode=$2
    shift 2
    setup_mounts "$root" "$mode"
    exec "$@"
}

# ------------------------------------------------------------------ main

case ${1:-} in
ensure) cmd_ensure ;;
run) shift; cmd_run "$@" ;;
pythons) cmd_pythons ;;
update) cmd_update ;;
root) printf '%s\n' "$SID_CHROOT" ;;
remove) cmd_remove ;;
__ns) shift; cmd___ns "$@" ;;
-h | --help | help) usage 0 ;;
*) usage 2 ;;
esac
