# shellcheck shell=bash
# tests/integration/lib.sh: shared harness for secretd's integration tests.
#
# Source it first thing from a bash test script:   . "$(dirname "$0")/lib.sh"
# It turns on `set -euo pipefail` (plus errtrace and inherit_errexit), makes a
# private $TEST_TMP and installs an EXIT trap that tears down everything the
# test started, even after a failed assertion, a `set -e` abort, SIGINT,
# SIGTERM or SIGHUP. Output is TAP for meson's `protocol: 'tap'`; diagnostics
# go to stderr as "# ..." lines. The script exits non-zero if any test point
# failed, the plan was not met, or the script died early.
#
# The host's own docker daemon is never touched: DOCKER_HOST points at the
# private socket from the moment this file is sourced, so a docker command
# issued before start_dockerd fails instead of reaching /var/run/docker.sock.
#
# ---------------------------------------------------------------------------
# Functions
#
# TAP
#   plan N                   print "1..N" up front (or use done_testing)
#   done_testing             print "1..<count>" at the end
#   ok DESC                  passing test point
#   fail DESC [DIAG...]      failing test point, DIAG lines shown as comments;
#                            the script carries on but will exit 1
#   skip DESC REASON         test point skipped ("ok N - DESC # SKIP REASON")
#   skip_all REASON          "1..0 # SKIP REASON", exit 0 (call before any point)
#   bail_out REASON          "Bail out! REASON", exit 1 (harness is unusable)
#   diag MSG...              "# MSG" on stderr, one per line
#   diag_file FILE [N]       last N (default $SECRETD_TEST_LOG_LINES) lines of
#                            FILE as diagnostics
#   assert_eq ACTUAL EXPECTED [DESC]
#   assert_contains HAYSTACK NEEDLE [DESC]
#   assert_not_contains HAYSTACK NEEDLE [DESC]
#                            each is one test point; on failure both values
#                            are printed
#   check DESC CMD...        test point: ok if CMD succeeds, else fail with
#                            its output
#   run CMD...               bats-style: runs CMD without tripping set -e,
#                            sets $status and $output (stdout+stderr)
#
# Waiting and processes
#   wait_for SECONDS CMD...  polls CMD (stdout/stderr discarded) every
#                            $SECRETD_TEST_POLL s until it succeeds; returns 1
#                            after SECONDS (fractions allowed). Never sleep and
#                            hope: wait for the condition itself.
#   pid_alive PID            true if PID exists and is not a zombie
#   register_pid PID [NAME]  teardown sends SIGTERM (SIGKILL after 10 s) and
#                            reaps it; for the secretd agent and other helpers
#   on_exit CMD              teardown evals CMD (a string, no newlines);
#                            everything registered runs last-in first-out
#   spawn NAME CMD...        runs CMD in the background, output to
#                            $TEST_TMP/NAME.log, stdin /dev/null, pid in
#                            $SPAWN_PID, registered for teardown. Use it for
#                            the agent: a hand-rolled `cmd &` also inherits
#                            the harness's saved copies of the TAP pipe.
#   elapsed T0               seconds since T0 (an $EPOCHREALTIME value), "1.23"
#   require_root             skip_all unless uid 0
#   require_cmd CMD...       skip_all unless every CMD is in PATH
#   readme_usage_block FILE  prints the ```sh block of README.md FILE that
#                            follows the line "<!-- usage: ..." and ends
#                            before "<!-- usage: end -->", without its fences;
#                            bail_out when there is not exactly one such block
#   host_dirs_mark           notes which of secretd's host directories
#                            (/etc/secretd, /var/lib/secretd, /run/secretd,
#                            /var/log/secretd) exist, and the time
#   assert_host_dirs_untouched WHAT
#                            one test point per directory: one that did not
#                            exist at host_dirs_mark still does not, and
#                            nothing below one that did is newer (mtime or
#                            ctime) than that mark; for tests whose subject
#                            must keep to private paths
#
# Docker
#   start_dockerd [ARGS...]  private dockerd (flags below + ARGS); exports
#                            DOCKER_HOST, sets DOCKERD_PID and DOCKERD_LOG;
#                            waits until `docker version` answers (deadline
#                            $SECRETD_TEST_DOCKERD_TIMEOUT, default 30 s);
#                            sets DOCKERD_START_SECONDS
#   stop_dockerd [--kill]    graceful stop (SIGTERM, SIGKILL after 30 s), or a
#                            simulated crash with --kill. Containers are NOT
#                            removed first, so live-restore and crash tests
#                            see what a real restart would leave.
#   restart_dockerd [--kill] [ARGS...]
#                            stop_dockerd then start_dockerd with ARGS, or
#                            with the previous ARGS when none are given
#   busybox_image [NAME]     imports a busybox rootfs (default name
#                            secretd-busybox) into the running dockerd; sets
#                            BUSYBOX_IMAGE (name), BUSYBOX_IMAGE_ID (sha256:…)
#                            and BUSYBOX_IMAGE_SECONDS
#   run_busybox [DOCKER_RUN_OPTS...] -- CMD...
#                            docker run --rm --network none OPTS IMAGE CMD
#   unique_driver_name       prints a fresh plugin name "secretd-t<8 hex>";
#                            teardown unlinks its socket/spec files. Safe to
#                            call as $(unique_driver_name).
#
# etcd
#   start_etcd [--client-port N] [--peer-port N] [--scheme http|https]
#              [--curl-opt ARG]... [-- EXTRA_ETCD_ARGS...]
#                            one-member etcd on 127.0.0.1, data in
#                            $TEST_TMP/etcd; exports ETCD_ENDPOINT, sets
#                            ETCD_PID ETCD_CLIENT_PORT ETCD_PEER_PORT
#                            ETCD_DATA_DIR ETCD_LOG; waits for /health.
#                            --curl-opt passes e.g. --cacert to the health
#                            probe for TLS setups.
#   stop_etcd [--kill]       stop it (a store outage); data dir is kept
#   restart_etcd             start it again on the same ports and data
#   free_port                prints a loopback TCP port nobody holds right now
#                            (below the ephemeral range, so outgoing
#                            connections do not grab it meanwhile)
#
# etcd cluster (three members on loopback, reused across the cases of a file)
#   start_etcd_cluster [N] [-- EXTRA_ETCD_ARGS...]
#                            N (default 3) members started together, data in
#                            $TEST_TMP/etcd-cluster/mI; waits until every
#                            member answers /health (a couple of seconds);
#                            sets ETCD_CLUSTER_ENDPOINTS ("127.0.0.1:P1,
#                            127.0.0.1:P2,..." for an etcd:// URL),
#                            ETCD_MEMBER_PIDS[i], ETCD_MEMBER_PORTS[i],
#                            ETCD_MEMBER_LOGS[i] (i from 0)
#   stop_etcd_member I [--kill]   stop member I (SIGTERM, or SIGKILL)
#   start_etcd_member I      start member I again on its data and ports
#                            (rejoins the cluster); waits for its /health
#   stop_etcd_cluster        stop every member (SIGTERM): a whole outage
#   start_etcd_cluster_again start every stopped member at once; waits until
#                            all answer /health
#   etcd_cluster_leader      prints the index of the current leader (asks
#                            each live member's /v3/maintenance/status)
#   etcd_member_of_endpoint HOST:PORT  prints the index of that member
#
# etcd with TLS and users (one member)
#   make_test_pki DIR        a CA, a server certificate for IP:127.0.0.1 and a
#                            client certificate (openssl, EC P-256, 2 days):
#                            DIR/ca.pem ca.key server.pem server.key
#                            client.pem client.key (keys 0600); a second,
#                            unrelated CA in DIR/other/ (same files)
#   start_etcd_tls_auth [PREFIX]
#                            one member with https client URLs,
#                            --client-cert-auth and authentication on; users
#                            root, app (role app-rw: readwrite on PREFIX/,
#                            default secretd-test) and noperm (no role);
#                            exports ETCD_ENDPOINT (https://...), and
#                            ETCD_PKI (the make_test_pki dir),
#                            ETCD_AUTH_APP, ETCD_AUTH_BAD_PASSWORD,
#                            ETCD_AUTH_UNKNOWN_USER, ETCD_AUTH_NOPERM
#                            (etcd-auth-file files, root-owned 0600),
#                            ETCD_ROOT_PASSWORD; etcdctl_tls ARGS... runs
#                            etcdctl against it as root
#
# Variables set for tests: TEST_TMP, TEST_RUN_ID, DOCKER_HOST, DOCKER_SOCK,
#   DOCKER_DATA_ROOT, DOCKER_EXEC_ROOT, DOCKER_CGROUP_PARENT, DOCKERD_PID,
#   DOCKERD_LOG, BUSYBOX_IMAGE, BUSYBOX_IMAGE_ID, ETCD_ENDPOINT, ETCD_PID, ...
#
# Environment honoured
#   TMPDIR                   parent of $TEST_TMP (ignored if longer than 40
#                            bytes: unix socket paths below it must stay
#                            under 108 bytes, so /tmp is used instead)
#   SECRETD_TEST_KEEP=1      keep $TEST_TMP (logs, data) and say where
#   SECRETD_TEST_CACHE       cache dir for the busybox rootfs tarball
#                            (default /tmp/secretd-test-cache; empty = none)
#   SECRETD_TEST_BUSYBOX     static busybox to use (default /bin/busybox)
#   SECRETD_TEST_DOCKERD_ARGS  extra dockerd flags, word-split (e.g. --debug)
#   SECRETD_TEST_DOCKERD_TIMEOUT  start deadline in seconds (default 30)
#   SECRETD_TEST_POLL        wait_for interval in seconds (default 0.05)
#   SECRETD_TEST_LOG_LINES   log lines shown on failure (default 40)
#
# How parallel runs stay apart: every path (data-root, exec-root, the
# containerd dockerd supervises with its sockets, docker.sock, pidfile,
# daemon.json, DOCKER_CONFIG, etcd data) lives in $TEST_TMP; containers go to
# a per-run cgroup parent; etcd gets free ports; plugin sockets, the one thing
# dockerd keeps in a fixed directory, get a random name. containerd's shim
# sockets in /run/containerd/s/ are named by a hash of the (private) containerd
# address, so they do not collide either.
#
# Teardown order: containers are removed first (while the plugin the test
# registered is still there to answer Unmount), then the on_exit/register_pid
# stack runs last-in first-out (stop_dockerd and stop_etcd are on it), then a
# sweep SIGKILLs whatever is left in the run's cgroup or names $TEST_TMP in
# its argv (shims, containerd), unlinks their shim sockets and the plugin
# sockets, unmounts everything below $TEST_TMP deepest first, and deletes
# $TEST_TMP only if nothing is mounted there any more.
#
# When no trap can run (SIGKILL; meson's timeout sends SIGTERM to the process
# group and SIGKILL 0.5 s later), a watchdog does the sweep: this file, run
# by bash in its own session, waiting for the test shell to disappear.
# dockerd and etcd also run in their own sessions (so the group signals do
# not cut them down mid-teardown) with `setpriv --pdeathsig TERM`.
#
# Rules for tests: call start_*/stop_* from the main shell, not from $(...)
# or a pipeline (the daemons are children of the caller, which must reap
# them, and their death signal is tied to the caller). Never use a bare
# `wait`: the watchdog is a child of the test shell; wait for a pid. Send
# the output of background processes to files (spawn does), so meson is not
# left waiting for EOF on its pipe.
# ---------------------------------------------------------------------------

if [ -n "${_SECRETD_LIB_LOADED:-}" ]; then
    return 0
fi
_SECRETD_LIB_LOADED=1

set -euo pipefail
set -E
shopt -s inherit_errexit
export LC_ALL=C

_secretd_main_pid=$BASHPID
_secretd_lib=${BASH_SOURCE[0]}
_secretd_lib_abs=$(cd "$(dirname "$_secretd_lib")" && pwd)/$(basename "$_secretd_lib")
_tap_count=0
_tap_failed=0
_tap_plan=""
_tap_done=0
_tap_skip_all=0
_err_reported=0

# ---------------------------------------------------------------- TAP -------

# First stack frame outside this file: the test line that asked.
_caller() {
    local i
    for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
        if [ "${BASH_SOURCE[i]}" != "$_secretd_lib" ]; then
            echo "${BASH_SOURCE[i]}:${BASH_LINENO[i - 1]}"
            return 0
        fi
    done
    echo "?"
}

diag() {
    local line l
    for line in "$@"; do
        while IFS= read -r l || [ -n "$l" ]; do
            printf '# %s\n' "$l" >&2
        done <<<"$line"
    done
}

_shown_logs=" "
diag_file() {
    local f=$1 n=${2:-${SECRETD_TEST_LOG_LINES:-40}}
    _shown_logs+="$f "
    if [ -r "$f" ]; then
        diag "---- last $n lines of $f ----"
        diag "$(tail -n "$n" "$f")"
        diag "---- end of $f ----"
    else
        diag "(no $f)"
    fi
}

plan() {
    _tap_plan=$1
    echo "1..$1"
}

done_testing() {
    _tap_done=1
    if [ -z "$_tap_plan" ]; then
        echo "1..$_tap_count"
    fi
}

# A description is one TAP line: a newline in it (a command's output quoted
# in the message) would start a line meson cannot parse.
ok() {
    local desc="$*"
    _tap_count=$((_tap_count + 1))
    echo "ok $_tap_count - ${desc//$'\n'/ }"
}

fail() {
    local desc=$1
    shift
    _tap_count=$((_tap_count + 1))
    _tap_failed=$((_tap_failed + 1))
    echo "not ok $_tap_count - ${desc//$'\n'/ }"
    if [ $# -gt 0 ]; then
        diag "$@"
    fi
    # Where it failed matters more than what, once there are 40 assertions.
    diag "  at $(_caller)"
}

skip() {
    _tap_count=$((_tap_count + 1))
    echo "ok $_tap_count - $1 # SKIP ${2:-}"
}

skip_all() {
    _tap_skip_all=1
    echo "1..0 # SKIP $*"
    exit 0
}

bail_out() {
    # Also on stderr: from inside $(...) stdout is swallowed.
    diag "Bail out! $*"
    echo "Bail out! $*"
    exit 1
}

assert_eq() {
    local actual=$1 expected=$2 desc=${3:-"'$1' = '$2'"}
    if [ "$actual" == "$expected" ]; then
        ok "$desc"
    else
        fail "$desc" "expected: $expected" "  actual: $actual"
    fi
}

assert_contains() {
    local hay=$1 needle=$2 desc=${3:-"output contains '$2'"}
    if [[ "$hay" == *"$needle"* ]]; then
        ok "$desc"
    else
        fail "$desc" "expected to find: $needle" "in: $hay"
    fi
}

assert_not_contains() {
    local hay=$1 needle=$2 desc=${3:-"output lacks '$2'"}
    if [[ "$hay" != *"$needle"* ]]; then
        ok "$desc"
    else
        fail "$desc" "did not expect: $needle" "in: $hay"
    fi
}

check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then
        ok "$desc"
    else
        fail "$desc" "command failed ($?): $*" "$out"
    fi
}

# shellcheck disable=SC2034  # output and status are for the caller
run() {
    # The `if` keeps both errexit and the ERR trap quiet for CMD's failure.
    if output=$("$@" 2>&1); then
        status=0
    else
        status=$?
    fi
}

require_root() {
    if [ "$(id -u)" != 0 ]; then
        skip_all "needs root (dockerd, mounts, /run/docker/plugins)"
    fi
}

require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip_all "$c not installed"
    done
}

readme_usage_block() {
    local block first last
    block=$(awk '/^<!-- usage: end -->/ { on = 0 } on { print } /^<!-- usage: / && !/^<!-- usage: end -->/ { on = 1 }' "$1")
    first=$(head -n 1 <<<"$block")
    last=$(tail -n 1 <<<"$block")
    if [ "$first" != '```sh' ] || [ "$last" != '```' ]; then
        bail_out "$1: no \`\`\`sh block between '<!-- usage: ...' and '<!-- usage: end -->'"
    fi
    block=$(sed '1d;$d' <<<"$block")
    if grep -q '^```' <<<"$block"; then
        bail_out "$1: the usage markers enclose more than one code block"
    fi
    printf '%s\n' "$block"
}

_host_dirs=(/etc/secretd /var/lib/secretd /run/secretd /var/log/secretd)

host_dirs_mark() {
    local d
    : >"$_H/host-dirs"
    for d in "${_host_dirs[@]}"; do
        if [ -e "$d" ]; then echo "$d" >>"$_H/host-dirs"; fi
    done
    touch "$_H/host-dirs.mark"
}

assert_host_dirs_untouched() {
    local what=$1 d changed
    for d in "${_host_dirs[@]}"; do
        if ! grep -qxF -- "$d" "$_H/host-dirs"; then
            if [ -e "$d" ]; then
                fail "$what does not create $d" "$(find "$d" | head -20)"
            else
                ok "$what does not create $d"
            fi
            continue
        fi
        changed=$(find "$d" \( -newer "$_H/host-dirs.mark" -o -cnewer "$_H/host-dirs.mark" \) -print 2>&1 | head -20)
        assert_eq "$changed" "" "$what leaves $d as it was"
    done
}

# ------------------------------------------------------- time, waiting -----

_usec() {
    local t=${EPOCHREALTIME/./}
    echo "$((10#$t))"
}

elapsed() {
    local t0=${1/./} now d
    now=$(_usec)
    d=$((now - 10#$t0))
    printf '%d.%02d\n' $((d / 1000000)) $((d % 1000000 / 10000))
}

# SECONDS may carry a fraction ("0.5", "30"): converted to microseconds here
# because bash arithmetic is integer-only.
_secs_to_usec() {
    local s=$1 int frac
    int=${s%%.*}
    frac=0
    if [[ "$s" == *.* ]]; then
        frac=${s#*.}000000
        frac=${frac:0:6}
    fi
    echo $((10#${int:-0} * 1000000 + 10#$frac))
}

wait_for() {
    local secs=$1 limit start now
    shift
    start=$(_usec)
    limit=$(_secs_to_usec "$secs")
    while :; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        now=$(_usec)
        if [ $((now - start)) -ge "$limit" ]; then
            diag "wait_for: gave up after ${secs}s: $*"
            return 1
        fi
        sleep "${SECRETD_TEST_POLL:-0.05}"
    done
}

pid_alive() {
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

_pid_gone() { ! pid_alive "$1"; }

# ------------------------------------------------- teardown registry -------

# Kept in files, not arrays, so that registrations made from a subshell such
# as $(unique_driver_name) are seen by the teardown in the main shell.
on_exit() {
    if [[ "$1" == *$'\n'* ]]; then
        echo "on_exit: command must be one line" >&2
        return 1
    fi
    printf '%s\n' "$1" >>"$_H/cleanup"
}

register_pid() {
    local name=${2:-pid} start
    # The start time pins the process: pids wrap quickly here (pid_max is
    # 32768), and a teardown must not signal a stranger that inherited it.
    start=$(_proc_start "$1") || start=gone
    on_exit "_stop_pid $1 ${name//[^A-Za-z0-9_.-]/_} $start"
}

spawn() {
    local name=$1
    shift
    "$@" </dev/null >>"$TEST_TMP/$name.log" 2>&1 {_secretd_out}>&- {_secretd_err}>&- &
    SPAWN_PID=$!
    register_pid "$SPAWN_PID" "$name"
}

_stop_pid() {
    local pid=$1 name=${2:-pid} start=${3:-}
    if [ -n "$start" ] && [ "$(_proc_start "$pid")" = "$start" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_for 10 _pid_gone "$pid"; then
            diag "$name ($pid) ignored SIGTERM for 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            wait_for 5 _pid_gone "$pid" || true
        fi
    fi
    # Reaps it if it is our child; harmless otherwise.
    wait "$pid" 2>/dev/null || true
}

# ------------------------------------------------------------ docker -------

_check_sun_path() {
    local p
    for p in "$@"; do
        if [ ${#p} -gt 107 ]; then
            bail_out "unix socket path too long (${#p} > 107): $p"
        fi
    done
}

_dockerd_ready() {
    if ! pid_alive "$DOCKERD_PID"; then
        _dockerd_died=1
        return 0
    fi
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

start_dockerd() {
    local t0 extra=()
    t0=$EPOCHREALTIME
    if [ $# -gt 0 ]; then
        _dockerd_args=("$@")
    fi
    if [ -n "$DOCKERD_PID" ] && pid_alive "$DOCKERD_PID"; then
        bail_out "start_dockerd: already running ($DOCKERD_PID)"
    fi
    _check_sun_path "$DOCKER_SOCK" \
        "$DOCKER_EXEC_ROOT/containerd/containerd.sock.ttrpc" \
        "$DOCKER_EXEC_ROOT/containerd/containerd-debug.sock"
    mkdir -p "$DOCKER_DATA_ROOT" "$DOCKER_EXEC_ROOT" "$DOCKER_CONFIG"
    # Without --config-file dockerd reads the host's /etc/docker/daemon.json.
    [ -e "$TEST_TMP/daemon.json" ] || echo '{}' >"$TEST_TMP/daemon.json"
    # shellcheck disable=SC2206
    extra=(${SECRETD_TEST_DOCKERD_ARGS:-})
    echo "=== start_dockerd $(date -u +%FT%T.%NZ) ===" >>"$DOCKERD_LOG"
    # --ip-forward/--ip-masq default to true and would flip host sysctls.
    # dockerd supervises its own containerd under --exec-root (config,
    # sockets, pid) and --data-root (content store), so that is private too.
    # TMPDIR: when its health check times out (seen at load average ~10)
    # dockerd SIGUSR1s and restarts its containerd, which then drops a
    # containerd.<pid>.stacks.log into TMPDIR: keep those with the run.
    TMPDIR=$TEST_TMP setsid setpriv --pdeathsig TERM -- dockerd \
        --config-file "$TEST_TMP/daemon.json" \
        --data-root "$DOCKER_DATA_ROOT" \
        --exec-root "$DOCKER_EXEC_ROOT" \
        -H "unix://$DOCKER_SOCK" \
        --pidfile "$TEST_TMP/dockerd.pid" \
        --iptables=false --ip-forward=false --ip-masq=false \
        --bridge=none \
        --storage-driver=vfs \
        --cgroup-parent "$DOCKER_CGROUP_PARENT" \
        "${extra[@]}" "${_dockerd_args[@]}" \
        </dev/null >>"$DOCKERD_LOG" 2>&1 {_secretd_out}>&- {_secretd_err}>&- &
    DOCKERD_PID=$!
    if [ "$_dockerd_registered" = 0 ]; then
        _dockerd_registered=1
        on_exit "stop_dockerd"
    fi
    _dockerd_died=0
    if ! wait_for "${SECRETD_TEST_DOCKERD_TIMEOUT:-30}" _dockerd_ready \
        || [ "$_dockerd_died" = 1 ]; then
        diag "dockerd did not come up (pid $DOCKERD_PID, died=$_dockerd_died)"
        diag_file "$DOCKERD_LOG"
        return 1
    fi
    DOCKERD_START_SECONDS=$(elapsed "$t0")
    diag "dockerd $DOCKERD_PID ready in ${DOCKERD_START_SECONDS}s on $DOCKER_HOST"
}

_containerd_pid() {
    local pid
    pid=$(cat "$DOCKER_EXEC_ROOT/containerd/containerd.pid" 2>/dev/null) || return 1
    # A stale pidfile may name a recycled pid: only trust it if that process
    # still refers to our exec-root.
    local argv
    { mapfile -d '' -t argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
    [[ " ${argv[*]} " == *"$DOCKER_EXEC_ROOT/"* ]] || return 1
    echo "$pid"
}

stop_dockerd() {
    local sig=TERM cpid=""
    [ "${1:-}" = --kill ] && sig=KILL
    if [ -z "$DOCKERD_PID" ]; then
        return 0
    fi
    cpid=$(_containerd_pid) || cpid=""
    kill -s "$sig" "$DOCKERD_PID" 2>/dev/null || true
    # Graceful shutdown stops running containers (10 s stop timeout each,
    # in parallel) unless --live-restore, hence the generous deadline.
    if ! wait_for 30 _pid_gone "$DOCKERD_PID"; then
        diag "dockerd $DOCKERD_PID did not stop in 30 s; killing it"
        diag_file "$DOCKERD_LOG"
        kill -KILL "$DOCKERD_PID" 2>/dev/null || true
        wait_for 5 _pid_gone "$DOCKERD_PID" || true
    fi
    wait "$DOCKERD_PID" 2>/dev/null || true
    # The supervised containerd exits with dockerd (SIGTERM on a clean stop,
    # its pdeathsig SIGKILL on a crash); the shims and their containers
    # deliberately survive, exactly as on a real host.
    if [ -n "$cpid" ] && ! wait_for 10 _pid_gone "$cpid"; then
        diag "containerd $cpid outlived dockerd; killing it"
        kill -KILL "$cpid" 2>/dev/null || true
        wait_for 5 _pid_gone "$cpid" || true
    fi
    # After a crash containerd is reparented to pid 1, which here reaps only
    # every few seconds. dockerd's supervisor takes the zombie named in this
    # pidfile for a live containerd ("containerd is still running"), waits
    # on a socket nobody serves and gives up after ~15 s. It is dead: forget
    # it.
    rm -f "$DOCKER_EXEC_ROOT/containerd/containerd.pid"
    DOCKERD_PID=""
}

restart_dockerd() {
    local kill=()
    if [ "${1:-}" = --kill ]; then
        kill=(--kill)
        shift
    fi
    stop_dockerd "${kill[@]}"
    start_dockerd "$@"
}

_busybox_tarball() {
    local bb=${SECRETD_TEST_BUSYBOX:-/bin/busybox}
    local cache=${SECRETD_TEST_CACHE-/tmp/secretd-test-cache}
    local key root tmp a
    [ -x "$bb" ] || bail_out "no static busybox at $bb (apt install busybox-static)"
    # Keyed on the binary and on this layout's version, so a busybox upgrade
    # or a change below never serves a stale image.
    key=$({ echo layout-1; sha256sum <"$bb"; } | sha256sum)
    key=${key:0:16}
    if [ -n "$cache" ]; then
        # shellcheck disable=SC2174  # only the cache dir itself needs 0700
        mkdir -p -m 0700 "$cache" 2>/dev/null || true
        # /tmp is world-writable: only trust a cache dir that is ours and
        # that nobody else can plant a tarball in.
        if [ ! -d "$cache" ] || [ "$(stat -c %u "$cache")" != "$(id -u)" ] \
            || [ -n "$(find "$cache" -maxdepth 0 -perm /022)" ]; then
            diag "ignoring unsafe cache dir $cache"
            cache=""
        fi
    fi
    [ -n "$cache" ] || cache=$_H
    if [ -s "$cache/busybox-$key.tar" ]; then
        echo "$cache/busybox-$key.tar"
        return 0
    fi
    root=$TEST_TMP/busybox-rootfs
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/user,tmp,var/tmp,proc,sys,dev,run}
    cp "$bb" "$root/bin/busybox"
    while IFS= read -r a; do
        [ "$a" = bin/busybox ] || ln -sf /bin/busybox "$root/$a"
    done < <("$bb" --list-full)
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
user:x:1000:
nogroup:x:65534:
EOF
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 0700 "$root/root"
    chown 1000:1000 "$root/home/user"
    # Write under a temporary name and rename: parallel runs filling the
    # cache at the same time never see a half-written tarball.
    tmp=$(mktemp "$cache/.busybox-$key.XXXXXX")
    tar --numeric-owner --sort=name -C "$root" -cf "$tmp" .
    chmod 0600 "$tmp"
    mv -f "$tmp" "$cache/busybox-$key.tar"
    rm -rf "$root"
    echo "$cache/busybox-$key.tar"
}

busybox_image() {
    local name=${1:-secretd-busybox} t0 tarball
    t0=$EPOCHREALTIME
    tarball=$(_busybox_tarball)
    # Same as `tar -C rootfs -c . | docker import - NAME`, from the cache.
    BUSYBOX_IMAGE_ID=$(docker import --change 'CMD ["/bin/sh"]' - "$name" <"$tarball")
    BUSYBOX_IMAGE=$name
    BUSYBOX_IMAGE_SECONDS=$(elapsed "$t0")
    export BUSYBOX_IMAGE BUSYBOX_IMAGE_ID
    diag "image $name = $BUSYBOX_IMAGE_ID in ${BUSYBOX_IMAGE_SECONDS}s"
}

run_busybox() {
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        opts+=("$1")
        shift
    done
    [ "${1:-}" = -- ] && shift
    docker run --rm --network none "${opts[@]}" "${BUSYBOX_IMAGE:?busybox_image first}" "$@"
}

unique_driver_name() {
    local name
    while :; do
        name=$(printf 'secretd-t%08x' "$SRANDOM")
        [ -e "/run/docker/plugins/$name.sock" ] || [ -e "/run/docker/plugins/$name" ] || break
    done
    printf '%s\n' "$name" >>"$_H/drivers"
    printf '%s\n' "$name"
}

# -------------------------------------------------------------- etcd -------

_port_in_use() {
    local hex
    hex=$(printf ':%04X' "$1")
    # Any socket bound to the port, listening or not, blocks a bind.
    awk -v h="$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { f = 1 }
                     END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

free_port() {
    local p i lo
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
    for i in $(seq 200); do
        p=$((10000 + SRANDOM % (lo - 10000)))
        _port_in_use "$p" || {
            echo "$p"
            return 0
        }
    done
    echo "free_port: no free port found" >&2
    return 1
}

_etcd_ready() {
    if ! pid_alive "$ETCD_PID"; then
        _etcd_died=1
        return 0
    fi
    curl -s --max-time 2 "${_etcd_curl_opts[@]}" "$ETCD_ENDPOINT/health" \
        | grep -q '"health":"true"'
}

# _etcd_spawn NAME DATA_DIR CLIENT_URL PEER_PORT INITIAL_CLUSTER STATE LOG
#             [EXTRA...]: one member in the background, pid in _etcd_spawned.
_etcd_spawn() {
    local name=$1 data=$2 client=$3 peer=$4 initial=$5 state=$6 log=$7 unset_env=() v
    shift 7
    # etcd reads any ETCD_* variable as a flag (ETCD_ENDPOINT included) and
    # complains or, worse, obeys; hand it a clean environment.
    for v in $(compgen -e); do
        [[ "$v" == ETCD_* ]] && unset_env+=(-u "$v")
    done
    env "${unset_env[@]}" setsid setpriv --pdeathsig TERM -- etcd \
        --name "$name" \
        --data-dir "$data" \
        --listen-client-urls "$client" \
        --advertise-client-urls "$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$initial" \
        --initial-cluster-state "$state" \
        --initial-cluster-token "secretd-$TEST_RUN_ID" \
        --heartbeat-interval 20 --election-timeout 200 \
        --logger zap --log-outputs stderr \
        "$@" \
        </dev/null >>"$log" 2>&1 {_secretd_out}>&- {_secretd_err}>&- &
    _etcd_spawned=$!
}

# A lone member still waits one election timeout (default 1 s, plus jitter)
# before it serves, on every start: shortened since there is no network to
# be patient with.
_etcd_launch() {
    echo "=== start_etcd $(date -u +%FT%T.%NZ) ===" >>"$ETCD_LOG"
    _etcd_spawn secretd-test "$ETCD_DATA_DIR" "$ETCD_ENDPOINT" "$ETCD_PEER_PORT" \
        "secretd-test=http://127.0.0.1:$ETCD_PEER_PORT" new "$ETCD_LOG" "${_etcd_args[@]}"
    ETCD_PID=$_etcd_spawned
    _etcd_died=0
    if ! wait_for 30 _etcd_ready || [ "$_etcd_died" = 1 ]; then
        wait "$ETCD_PID" 2>/dev/null || true
        return 1
    fi
}

start_etcd() {
    local cport="" pport="" scheme=http try t0
    t0=$EPOCHREALTIME
    _etcd_curl_opts=()
    _etcd_args=()
    while [ $# -gt 0 ]; do
        case $1 in
        --client-port) cport=$2; shift 2 ;;
        --peer-port) pport=$2; shift 2 ;;
        --scheme) scheme=$2; shift 2 ;;
        --curl-opt) _etcd_curl_opts+=("$2"); shift 2 ;;
        --) shift; _etcd_args=("$@"); break ;;
        *) bail_out "start_etcd: unknown option $1" ;;
        esac
    done
    if [ "$_etcd_registered" = 0 ]; then
        _etcd_registered=1
        on_exit "stop_etcd"
    fi
    # Probing cannot reserve a port, so a race with another run is possible:
    # retry with fresh ports when the bind itself fails.
    for try in 1 2 3 4 5; do
        ETCD_CLIENT_PORT=${cport:-$(free_port)}
        ETCD_PEER_PORT=${pport:-$(free_port)}
        while [ "$ETCD_PEER_PORT" = "$ETCD_CLIENT_PORT" ]; do
            ETCD_PEER_PORT=$(free_port)
        done
        export ETCD_ENDPOINT=$scheme://127.0.0.1:$ETCD_CLIENT_PORT
        if _etcd_launch; then
            ETCD_START_SECONDS=$(elapsed "$t0")
            diag "etcd $ETCD_PID ready in ${ETCD_START_SECONDS}s at $ETCD_ENDPOINT"
            return 0
        fi
        if [ -z "$cport$pport" ] && tail -n 20 "$ETCD_LOG" | grep -q 'address already in use'; then
            diag "etcd: port taken meanwhile, retrying ($try)"
            stop_etcd --kill
            continue
        fi
        break
    done
    diag "etcd did not come up"
    diag_file "$ETCD_LOG"
    stop_etcd --kill
    return 1
}

stop_etcd() {
    local sig=TERM
    [ "${1:-}" = --kill ] && sig=KILL
    [ -n "$ETCD_PID" ] || return 0
    _stop_pid_sig "$ETCD_PID" "$sig" etcd
    ETCD_PID=""
}

restart_etcd() {
    stop_etcd
    _etcd_launch || {
        diag "etcd did not come back"
        diag_file "$ETCD_LOG"
        return 1
    }
}

_stop_pid_sig() {
    local pid=$1 sig=$2 name=$3
    kill -s "$sig" "$pid" 2>/dev/null || true
    if ! wait_for 15 _pid_gone "$pid"; then
        diag "$name ($pid) did not stop; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        wait_for 5 _pid_gone "$pid" || true
    fi
    wait "$pid" 2>/dev/null || true
}

# ------------------------------------------------------- etcd cluster -------

ETCD_MEMBER_PIDS=()
ETCD_MEMBER_PORTS=()
ETCD_MEMBER_PEER_PORTS=()
ETCD_MEMBER_LOGS=()
_etcd_cluster_args=()
_etcd_cluster_initial=""
_etcd_cluster_registered=0

_etcd_member_launch() {
    local i=$1 state=$2
    echo "=== start member $i $(date -u +%FT%T.%NZ) ===" >>"${ETCD_MEMBER_LOGS[i]}"
    _etcd_spawn "m$i" "$TEST_TMP/etcd-cluster/m$i" "http://127.0.0.1:${ETCD_MEMBER_PORTS[i]}" \
        "${ETCD_MEMBER_PEER_PORTS[i]}" "$_etcd_cluster_initial" "$state" "${ETCD_MEMBER_LOGS[i]}" \
        "${_etcd_cluster_args[@]}"
    ETCD_MEMBER_PIDS[i]=$_etcd_spawned
}

_etcd_member_healthy() {
    curl -s --max-time 2 "http://127.0.0.1:${ETCD_MEMBER_PORTS[$1]}/health" | grep -q '"health":"true"'
}

_etcd_members_healthy() {
    local i
    for i in "${!ETCD_MEMBER_PIDS[@]}"; do
        [ -n "${ETCD_MEMBER_PIDS[i]}" ] || continue
        _etcd_member_healthy "$i" || return 1
    done
}

start_etcd_cluster() {
    local n=3 i t0=$EPOCHREALTIME
    if [ $# -gt 0 ] && [ "$1" != -- ]; then n=$1; shift; fi
    [ "${1:-}" = -- ] && shift
    _etcd_cluster_args=("$@")
    mkdir -p "$TEST_TMP/etcd-cluster"
    _etcd_cluster_initial=""
    for ((i = 0; i < n; i++)); do
        ETCD_MEMBER_PORTS[i]=$(free_port)
        ETCD_MEMBER_PEER_PORTS[i]=$(free_port)
        ETCD_MEMBER_LOGS[i]=$TEST_TMP/etcd-cluster/m$i.log
        _etcd_cluster_initial+="${_etcd_cluster_initial:+,}m$i=http://127.0.0.1:${ETCD_MEMBER_PEER_PORTS[i]}"
    done
    if [ "$_etcd_cluster_registered" = 0 ]; then
        _etcd_cluster_registered=1
        on_exit "_stop_etcd_cluster"
    fi
    for ((i = 0; i < n; i++)); do
        _etcd_member_launch "$i" new
    done
    if ! wait_for 30 _etcd_members_healthy; then
        for ((i = 0; i < n; i++)); do diag_file "${ETCD_MEMBER_LOGS[i]}" 15; done
        return 1
    fi
    ETCD_CLUSTER_ENDPOINTS=""
    for ((i = 0; i < n; i++)); do
        ETCD_CLUSTER_ENDPOINTS+="${ETCD_CLUSTER_ENDPOINTS:+,}127.0.0.1:${ETCD_MEMBER_PORTS[i]}"
    done
    export ETCD_CLUSTER_ENDPOINTS
    diag "etcd cluster of $n ready in $(elapsed "$t0")s: $ETCD_CLUSTER_ENDPOINTS"
}

stop_etcd_member() {
    local i=$1 sig=TERM
    [ "${2:-}" = --kill ] && sig=KILL
    [ -n "${ETCD_MEMBER_PIDS[i]:-}" ] || return 0
    _stop_pid_sig "${ETCD_MEMBER_PIDS[i]}" "$sig" "etcd member $i"
    ETCD_MEMBER_PIDS[i]=""
}

start_etcd_member() {
    local i=$1
    _etcd_member_launch "$i" existing
    wait_for 30 _etcd_member_healthy "$i" || {
        diag_file "${ETCD_MEMBER_LOGS[i]}" 15
        return 1
    }
}

# Every member down (SIGTERM), as in a whole-cluster outage.
stop_etcd_cluster() {
    _stop_etcd_cluster
}

# Every stopped member back at once (one alone has no quorum, so waiting
# member by member would never see it healthy).
start_etcd_cluster_again() {
    local i
    for i in "${!ETCD_MEMBER_PORTS[@]}"; do
        if [ -z "${ETCD_MEMBER_PIDS[i]:-}" ]; then
            _etcd_member_launch "$i" existing
        fi
    done
    wait_for 30 _etcd_members_healthy || {
        for i in "${!ETCD_MEMBER_PORTS[@]}"; do diag_file "${ETCD_MEMBER_LOGS[i]}" 15; done
        return 1
    }
}

_stop_etcd_cluster() {
    local i
    for i in "${!ETCD_MEMBER_PIDS[@]}"; do
        stop_etcd_member "$i" || true
    done
}

etcd_cluster_leader() {
    local i status member leader
    for i in "${!ETCD_MEMBER_PIDS[@]}"; do
        [ -n "${ETCD_MEMBER_PIDS[i]}" ] || continue
        status=$(curl -s --max-time 2 "http://127.0.0.1:${ETCD_MEMBER_PORTS[i]}/v3/maintenance/status" -d '{}') || continue
        member=$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' <<<"$status")
        leader=$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' <<<"$status")
        if [ -n "$member" ] && [ "$member" = "$leader" ]; then
            echo "$i"
            return 0
        fi
    done
    return 1
}

etcd_member_of_endpoint() {
    local i
    for i in "${!ETCD_MEMBER_PORTS[@]}"; do
        if [ "127.0.0.1:${ETCD_MEMBER_PORTS[i]}" = "$1" ]; then
            echo "$i"
            return 0
        fi
    done
    return 1
}

# ------------------------------------------------- etcd TLS and users -------

_make_ca_and_certs() {
    local d=$1
    mkdir -p "$d"
    (
        cd "$d"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
            -days 2 -subj "/CN=secretd test CA $TEST_RUN_ID" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
            -subj /CN=etcd 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
            -extfile server.ext 2>/dev/null
        # No CN: with authentication on, etcd's gateway refuses client
        # certificates that carry one (it would take it as the user name).
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr \
            -subj /O=secretd 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 \
            -extfile client.ext 2>/dev/null
        chmod 0600 ./*.key
    )
}

make_test_pki() {
    _make_ca_and_certs "$1"
    _make_ca_and_certs "$1/other"
}

etcdctl_tls() {
    env -u ETCDCTL_API etcdctl --endpoints "$ETCD_ENDPOINT" --cacert "$ETCD_PKI/ca.pem" \
        --cert "$ETCD_PKI/client.pem" --key "$ETCD_PKI/client.key" --user "root:$ETCD_ROOT_PASSWORD" "$@"
}

_auth_file() {
    local f=$1
    printf 'user = %s\npassword = %s\n' "$2" "$3" >"$f"
    chmod 0600 "$f"
}

start_etcd_tls_auth() {
    local prefix=${1:-secretd-test} pw
    ETCD_PKI=$TEST_TMP/pki
    make_test_pki "$ETCD_PKI"
    start_etcd --scheme https --curl-opt --cacert --curl-opt "$ETCD_PKI/ca.pem" \
        --curl-opt --cert --curl-opt "$ETCD_PKI/client.pem" --curl-opt --key --curl-opt "$ETCD_PKI/client.key" \
        -- --cert-file "$ETCD_PKI/server.pem" --key-file "$ETCD_PKI/server.key" \
        --trusted-ca-file "$ETCD_PKI/ca.pem" --client-cert-auth || return 1
    ETCD_ROOT_PASSWORD=root-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    pw=app-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    # etcdctl user add reads NAME:PASSWORD; without auth on, no --user yet.
    env -u ETCDCTL_API etcdctl --endpoints "$ETCD_ENDPOINT" --cacert "$ETCD_PKI/ca.pem" \
        --cert "$ETCD_PKI/client.pem" --key "$ETCD_PKI/client.key" user add "root:$ETCD_ROOT_PASSWORD" >/dev/null
    local plain=(env -u ETCDCTL_API etcdctl --endpoints "$ETCD_ENDPOINT" --cacert "$ETCD_PKI/ca.pem"
        --cert "$ETCD_PKI/client.pem" --key "$ETCD_PKI/client.key")
    "${plain[@]}" role add app-rw >/dev/null
    "${plain[@]}" role grant-permission --prefix=true app-rw readwrite "$prefix/" >/dev/null
    "${plain[@]}" user add "app:$pw" >/dev/null
    "${plain[@]}" user grant-role app app-rw >/dev/null
    "${plain[@]}" user add "noperm:$pw" >/dev/null
    "${plain[@]}" auth enable >/dev/null 2>&1
    ETCD_AUTH_APP=$TEST_TMP/etcd-auth-app
    ETCD_AUTH_BAD_PASSWORD=$TEST_TMP/etcd-auth-bad-password
    ETCD_AUTH_UNKNOWN_USER=$TEST_TMP/etcd-auth-unknown-user
    ETCD_AUTH_NOPERM=$TEST_TMP/etcd-auth-noperm
    _auth_file "$ETCD_AUTH_APP" app "$pw"
    _auth_file "$ETCD_AUTH_BAD_PASSWORD" app "not-$pw"
    _auth_file "$ETCD_AUTH_UNKNOWN_USER" nosuchuser "$pw"
    _auth_file "$ETCD_AUTH_NOPERM" noperm "$pw"
    export ETCD_PKI ETCD_ROOT_PASSWORD ETCD_AUTH_APP ETCD_AUTH_BAD_PASSWORD ETCD_AUTH_UNKNOWN_USER ETCD_AUTH_NOPERM
}

# ---------------------------------------------------------- teardown -------

# The sweeps below kill and unmount by prefix: with TEST_TMP unset or odd
# (teardown of a half-initialised run) the prefix could be "/" itself.
_tmp_sane() {
    [[ "${TEST_TMP:-}" == /*/secretd-test.?* ]] && [ -n "${_H:-}" ]
}

# Processes whose argv names our $TEST_TMP: containerd, shims and anything a
# test started with a path in there. The trailing slash keeps
# /tmp/secretd-test.AB from matching /tmp/secretd-test.ABC.
_pids_mentioning_tmp() {
    local d pid argv
    _tmp_sane || return 0
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        if [ "$pid" = "$_secretd_main_pid" ] || [ "$pid" = "$BASHPID" ]; then
            continue
        fi
        { mapfile -d '' -t argv <"$d/cmdline"; } 2>/dev/null || continue
        [ ${#argv[@]} -gt 0 ] || continue
        if [[ " ${argv[*]} " == *"$TEST_TMP/"* ]]; then
            echo "$pid"
        fi
    done
}

_cgroup_dirs() {
    # With an empty name this would be every hierarchy's root.
    [[ "${DOCKER_CGROUP_PARENT:-}" == /secretd-test-?* ]] || return 0
    # One directory per mounted hierarchy (v1 has many, v2 one).
    awk '{ for (i = 7; $i != "-"; i++); if ($(i+1) == "cgroup" || $(i+1) == "cgroup2") print $5 }' \
        /proc/self/mountinfo | while IFS= read -r mp; do
        [ -d "$mp$DOCKER_CGROUP_PARENT" ] && echo "$mp$DOCKER_CGROUP_PARENT"
    done
    return 0
}

_cgroup_procs() {
    local d
    for d in $(_cgroup_dirs); do
        find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
    done
    return 0
}

_cgroups_gone() {
    local d
    for d in $(_cgroup_dirs); do
        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    [ -z "$(_cgroup_dirs)" ]
}

_shim_socket() {
    # containerd 1.6 names a shim's socket sha256(address/namespace/id) under
    # /run/containerd/s; a SIGKILLed shim cannot unlink it, so we do.
    local pid=$1 argv i addr="" ns="" id="" h
    { mapfile -d '' -t argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 0
    [[ "${argv[0]:-}" == *containerd-shim* ]] || return 0
    for ((i = 0; i < ${#argv[@]} - 1; i++)); do
        case ${argv[i]} in
        -address) addr=${argv[i + 1]} ;;
        -namespace) ns=${argv[i + 1]} ;;
        -id) id=${argv[i + 1]} ;;
        esac
    done
    [ -n "$addr" ] && [ -n "$ns" ] && [ -n "$id" ] || return 0
    h=$(printf '%s' "$addr/$ns/$id" | sha256sum)
    echo "/run/containerd/s/${h:0:64}"
}

_no_stray_pids() {
    [ -z "$(_pids_mentioning_tmp)$(_cgroup_procs)" ]
}

_kill_strays() {
    local pids pid d socks=()
    # A frozen task never handles SIGKILL; thaw first.
    for d in $(_cgroup_dirs); do
        find "$d" -name freezer.state -exec sh -c 'for f; do echo THAWED >"$f"; done' _ {} + 2>/dev/null || true
        find "$d" -name cgroup.freeze -exec sh -c 'for f; do echo 0 >"$f"; done' _ {} + 2>/dev/null || true
    done
    pids=$(_cgroup_procs; _pids_mentioning_tmp)
    pids=$(sort -un <<<"$pids")
    pids=${pids//$'\n'/ }
    [ -n "$pids" ] || return 0
    for pid in $pids; do
        d=$(_shim_socket "$pid")
        [ -z "$d" ] || socks+=("$d")
    done
    diag "teardown: killing leftover processes: $pids"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    wait_for 10 _no_stray_pids || diag "teardown: still alive: $(_pids_mentioning_tmp) $(_cgroup_procs)"
    [ ${#socks[@]} -eq 0 ] || rm -f "${socks[@]}"
}

# Mount points at or below $TEST_TMP, deepest first, octal escapes decoded.
_tmp_mounts() {
    local mp
    _tmp_sane || return 0
    awk '{ print $5 }' /proc/self/mountinfo | while IFS= read -r mp; do
        mp=$(printf '%b' "$mp")
        if [ "$mp" = "$TEST_TMP" ] || [[ "$mp" == "$TEST_TMP/"* ]]; then
            echo "$mp"
        fi
    done | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}

_unmount_tmp() {
    local _pass mp left
    # Several passes: a point can carry stacked mounts, and lazy unmounts of
    # parents may reveal children.
    for _pass in 1 2 3 4 5; do
        left=$(_tmp_mounts)
        [ -n "$left" ] || return 0
        while IFS= read -r mp; do
            umount -- "$mp" 2>/dev/null || umount -l -- "$mp" 2>/dev/null || true
        done <<<"$left"
    done
    [ -z "$(_tmp_mounts)" ]
}

_remove_driver_sockets() {
    local n
    [ -r "$_H/drivers" ] || return 0
    while IFS= read -r n; do
        [ -n "$n" ] || continue
        rm -f "/run/docker/plugins/$n.sock" "/run/docker/plugins/$n/$n.sock" \
            "/etc/docker/plugins/$n.spec" "/etc/docker/plugins/$n.json" \
            "/usr/lib/docker/plugins/$n.spec" "/usr/lib/docker/plugins/$n.json"
        rmdir "/run/docker/plugins/$n" 2>/dev/null || true
    done <"$_H/drivers"
}

_remove_all_containers() {
    local ids
    ids=$(timeout 20 docker ps -aq 2>/dev/null) || return 0
    [ -n "$ids" ] || return 0
    # shellcheck disable=SC2086
    timeout 60 docker rm -f $ids >/dev/null 2>&1 || diag "teardown: docker rm -f failed"
}

_secretd_teardown() {
    local rc=$? cmds i keep=0 t0=$EPOCHREALTIME
    # Subshells inherit nothing here in bash, but a `bash -c` sourcing us
    # twice or an odd fork must never tear down the parent's world.
    [ "$BASHPID" = "$_secretd_main_pid" ] || return "$rc"
    exec 1>&"$_secretd_out" 2>&"$_secretd_err"
    set +eu
    trap - ERR
    # A second ^C must not abandon the teardown half-way.
    trap '' INT TERM HUP

    if [ "$rc" != 0 ] && [ "$_tap_skip_all" = 0 ]; then
        # Unless a failing start_* already showed it.
        [ -z "$DOCKERD_PID" ] || [[ "$_shown_logs" == *" $DOCKERD_LOG "* ]] || diag_file "$DOCKERD_LOG"
        [ -z "$ETCD_PID" ] || [[ "$_shown_logs" == *" $ETCD_LOG "* ]] || diag_file "$ETCD_LOG"
    fi

    # Containers first, while the plugin (whatever the test registered) is
    # still alive to answer Unmount; otherwise each removal stalls ~15 s in
    # dockerd's plugin retries, and graceful shutdown would wait 10 s per
    # container that ignores SIGTERM.
    if [ -n "$DOCKERD_PID" ] && pid_alive "$DOCKERD_PID"; then
        _remove_all_containers
    fi

    cmds=()
    [ ! -r "$_H/cleanup" ] || mapfile -t cmds <"$_H/cleanup"
    for ((i = ${#cmds[@]} - 1; i >= 0; i--)); do
        [ -n "${cmds[i]}" ] || continue
        eval "${cmds[i]}" || diag "teardown: '${cmds[i]}' failed"
    done

    _kill_strays
    wait_for 10 _cgroups_gone || diag "teardown: cgroup $DOCKER_CGROUP_PARENT not removable"
    if compgen -G "$TEST_TMP/containerd.*.stacks.log" >/dev/null; then
        diag "note: dockerd restarted an unresponsive containerd during this run" \
            "(stack dumps: $(cd "$TEST_TMP" && echo containerd.*.stacks.log))"
    fi
    _remove_driver_sockets
    if ! _unmount_tmp; then
        keep=1
        diag "teardown: still mounted, NOT deleting $TEST_TMP:" "$(_tmp_mounts)"
    fi
    if [ "${SECRETD_TEST_KEEP:-0}" = 1 ]; then
        keep=1
        diag "keeping $TEST_TMP (SECRETD_TEST_KEEP=1)"
    fi
    if [ "$keep" = 0 ] && _tmp_sane; then
        # --one-file-system: if something slipped past the unmount, do not
        # descend into it.
        rm -rf --one-file-system "$TEST_TMP" || diag "teardown: could not remove $TEST_TMP"
    fi

    diag "teardown took $(elapsed "$t0")s"
    # Tells the watchdog to stand down (it also does when $_H is gone).
    [ ! -d "$_H" ] || : >"$_H/teardown-done"

    if [ "$_tap_skip_all" = 1 ]; then
        exit 0
    fi
    if [ "$rc" != 0 ] && [ "$_tap_done" = 0 ]; then
        # Turn the early exit into a visible failing point plus a plan, so
        # the TAP consumer names it instead of reporting a bare parse error.
        _tap_count=$((_tap_count + 1))
        echo "not ok $_tap_count - script exited early with status $rc"
        [ -n "$_tap_plan" ] || echo "1..$_tap_count"
        _tap_failed=$((_tap_failed + 1))
    elif [ "$_tap_done" = 0 ] && [ -z "$_tap_plan" ]; then
        diag "no plan: call plan N or done_testing"
        rc=1
    fi
    if [ -n "$_tap_plan" ] && [ "$_tap_count" != "$_tap_plan" ]; then
        diag "planned $_tap_plan tests but ran $_tap_count"
        [ "$rc" != 0 ] || rc=1
    fi
    if [ "$_tap_failed" -gt 0 ]; then
        diag "$_tap_failed of $_tap_count test(s) failed"
        [ "$rc" != 0 ] || rc=1
    fi
    exit "$rc"
}

_secretd_on_err() {
    local rc=$1 cmd=$2
    [ "$BASHPID" = "$_secretd_main_pid" ] || return 0
    [ "$_err_reported" = 0 ] || return 0
    _err_reported=1
    diag "error: '$cmd' exited with status $rc at $(_caller)"
}

# Start time of a pid, to tell our test shell from a recycled pid.
_proc_start() {
    local stat f
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    # shellcheck disable=SC2206
    f=(${stat##*) })
    [ "${f[0]}" != Z ] || return 1
    echo "${f[19]}"
}

# The watchdog for the one death no trap sees: SIGKILL of the test shell.
# meson on timeout sends SIGTERM to the test's process group and SIGKILL
# 0.5 s later, well before a teardown can finish. The watchdog has its own
# session, so it survives that, notices the shell is gone and
# sweeps: container processes, then a SIGTERM to everything naming $TEST_TMP,
# then the same SIGKILL/cgroup/socket/unmount/rm sweep as the normal
# teardown. on_exit commands other than register_pid are not run here: they
# may need state only the dead shell had. It is this file run as a script
# in a new session (see the end), because a subshell cannot leave the test's
# process group. It stops by itself once the teardown is done: signalling
# it by pid could hit a recycled pid (containerd got our SIGUSR1 that way).
_reaper() {
    local start line pids f
    set +eu
    trap '' INT TERM HUP
    start=$(_proc_start "$_secretd_main_pid") || exit 0
    while [ "$(_proc_start "$_secretd_main_pid")" = "$start" ]; do
        [ -d "$_H" ] && [ ! -e "$_H/teardown-done" ] || exit 0
        sleep 0.25
    done
    [ -d "$_H" ] && [ ! -e "$_H/teardown-done" ] || exit 0
    diag "reaper: test shell $_secretd_main_pid died without teardown; sweeping"
    pids=$(_cgroup_procs)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
    pids=$(_pids_mentioning_tmp)
    while IFS= read -r line; do
        # shellcheck disable=SC2206
        f=($line)
        if [ "${f[0]}" = _stop_pid ] && [ "$(_proc_start "${f[1]}")" = "${f[3]:-}" ]; then
            pids+=" ${f[1]}"
        fi
    done <"$_H/cleanup"
    # shellcheck disable=SC2086
    [ -z "${pids// /}" ] || kill -TERM $pids 2>/dev/null
    for line in $pids; do
        wait_for 20 _pid_gone "$line" || true
    done
    _kill_strays
    wait_for 10 _cgroups_gone || true
    _remove_driver_sockets
    if _unmount_tmp && [ "${SECRETD_TEST_KEEP:-0}" != 1 ]; then
        rm -rf --one-file-system "$TEST_TMP"
    fi
    exit 0
}

# ------------------------------------------- side effects start here -------
# Only now, after every function above has parsed: a syntax error in this
# file must not leave a $TEST_TMP behind without the trap that removes it.

if [ -n "${_SECRETD_REAPER_MAIN:-}" ]; then
    _secretd_main_pid=$_SECRETD_REAPER_MAIN
    _H=$TEST_TMP/.harness
    DOCKER_CGROUP_PARENT=/secretd-test-${TEST_TMP##*.}
    _reaper
fi

_secretd_tmp_base=${TMPDIR:-/tmp}
if [ ${#_secretd_tmp_base} -gt 40 ]; then
    # The deepest socket is $TEST_TMP/x/containerd/containerd.sock.ttrpc;
    # sun_path holds 107 bytes.
    _secretd_tmp_base=/tmp
fi
# A trap runs with the redirections of whatever command it interrupted: a
# SIGTERM landing inside `wait_for` (whose probe runs >/dev/null) would
# send the whole teardown report to /dev/null. Keep the real ones to restore.
# Daemons started here do not inherit these copies, or they would hold
# meson's pipe open.
exec {_secretd_out}>&1 {_secretd_err}>&2
TEST_TMP=$(mktemp -d "$_secretd_tmp_base/secretd-test.XXXXXXXX")
_H=$TEST_TMP/.harness
trap _secretd_teardown EXIT
trap '_secretd_on_err $? "$BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# A daemon or agent that drops privileges still has to reach its files.
chmod 0755 "$TEST_TMP"
TEST_RUN_ID=${TEST_TMP##*.}
export TEST_TMP TEST_RUN_ID
mkdir "$_H"
: >"$_H/cleanup"
: >"$_H/drivers"

DOCKER_SOCK=$TEST_TMP/docker.sock
DOCKER_DATA_ROOT=$TEST_TMP/docker
DOCKER_EXEC_ROOT=$TEST_TMP/x
DOCKERD_LOG=$TEST_TMP/dockerd.log
# Absolute, so runc puts it at the hierarchy root instead of under whatever
# cgroup the shim happens to live in; per run, so teardown can find and kill
# every container process of this run and nobody else's.
DOCKER_CGROUP_PARENT=/secretd-test-$TEST_RUN_ID
DOCKERD_PID=""
_dockerd_args=()
_dockerd_registered=0
export DOCKER_HOST=unix://$DOCKER_SOCK
# The CLI must not read the user's contexts, credentials or TLS settings;
# any of those could send it to another daemon.
export DOCKER_CONFIG=$TEST_TMP/docker-config
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_TLS

ETCD_PID=""
ETCD_LOG=$TEST_TMP/etcd.log
ETCD_DATA_DIR=$TEST_TMP/etcd
_etcd_registered=0

# A separate bash in a new session rather than a subshell: only setsid gets
# it out of the test's process group (`set -m` would too, but in a script it
# also fiddles with the terminal and signal dispositions).
_SECRETD_REAPER_MAIN=$_secretd_main_pid TEST_TMP=$TEST_TMP \
    setsid "$BASH" "$_secretd_lib_abs" </dev/null >>"$_H/reaper.log" 2>&1 \
    {_secretd_out}>&- {_secretd_err}>&- &
_secretd_reaper_pid=$!
