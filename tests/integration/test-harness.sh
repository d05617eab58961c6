#!/bin/bash
# Smoke test of lib.sh itself: if this fails, no other integration test's
# result means anything. It checks that the private dockerd runs containers
# from the busybox image (bind mounts, read-only, uid 1000), that etcd's
# JSON gateway works, that a dockerd restart keeps the image, and that the
# teardown really leaves nothing behind, after a failed assertion with a
# crashed dockerd and after a SIGTERM, by running this same script as a
# child in those modes (SECRETD_HARNESS_INNER=fail|term).

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
require_cmd dockerd docker containerd runc etcd curl setpriv setsid base64

t_start=$EPOCHREALTIME

b64() { printf '%s' "$1" | base64 -w0; }

etcd_call() {
    curl -sS --max-time 5 -X POST "$ETCD_ENDPOINT$1" -d "$2"
}

# ------------------------------------------------------------------ child --

# Leaves one of everything running (dockerd + containerd + shim + container,
# etcd, a registered helper, a plugin socket, nested mounts in $TEST_TMP),
# records where it all is, then dies in the requested way.
inner() {
    local mode=$1 info=$SECRETD_HARNESS_INFO nap cid helper drv shim
    start_dockerd
    busybox_image
    nap=$((1000000 + SRANDOM % 1000000))
    cid=$(docker run -d --network none "$BUSYBOX_IMAGE" sleep "$nap")
    start_etcd
    sleep "$nap" >/dev/null 2>&1 &
    helper=$!
    register_pid "$helper" helper
    drv=$(unique_driver_name)
    mkdir -p /run/docker/plugins
    : >"/run/docker/plugins/$drv.sock"
    mkdir "$TEST_TMP/mnt"
    mount -t tmpfs harness-outer "$TEST_TMP/mnt"
    mkdir "$TEST_TMP/mnt/sub"
    mount -t tmpfs harness-inner "$TEST_TMP/mnt/sub"
    on_exit "touch '$SECRETD_HARNESS_MARKER'"
    shim=$(printf '%s' "$DOCKER_EXEC_ROOT/containerd/containerd.sock/moby/$cid" | sha256sum)
    {
        echo "tmp=$TEST_TMP"
        echo "nap=$nap"
        echo "helper=$helper"
        echo "dockerd=$DOCKERD_PID"
        echo "etcd=$ETCD_PID"
        echo "drv=$drv"
        echo "cgroup=$DOCKER_CGROUP_PARENT"
        echo "shim=/run/containerd/s/${shim:0:64}"
    } >"$info.tmp"
    mv "$info.tmp" "$info"
    ok "inner: everything started"
    case $mode in
    fail)
        # A crash the library does not know about: dockerd and its
        # containerd gone, shim + container + netns mount + data-root
        # bind mount left behind.
        kill -KILL "$DOCKERD_PID"
        fail "inner: forced failure"
        done_testing
        ;;
    term)
        echo ready >"$info.ready"
        # `wait` returns as soon as the trapped SIGTERM arrives.
        sleep 600 >/dev/null 2>&1 &
        register_pid $! waiter
        wait $! || true
        fail "inner: should have been terminated"
        done_testing
        ;;
    esac
}

if [ -n "${SECRETD_HARNESS_INNER:-}" ]; then
    inner "$SECRETD_HARNESS_INNER"
    exit 0
fi

# ------------------------------------------------------------------- main --

start_dockerd
first_start=$DOCKERD_START_SECONDS
ok "private dockerd answers on $DOCKER_HOST"
assert_eq "$(docker info --format '{{.Driver}}')" vfs "storage driver is vfs"
assert_eq "$(docker info --format '{{.DockerRootDir}}')" "$DOCKER_DATA_ROOT" \
    "data-root is private"
assert_eq "$(docker info --format '{{.CgroupDriver}}')" cgroupfs "cgroup driver"

busybox_image
assert_contains "$BUSYBOX_IMAGE_ID" "sha256:" "busybox image imported"

run run_busybox -- cat /etc/passwd
assert_eq "$status" 0 "cat /etc/passwd in a container"
assert_contains "$output" "user:x:1000:1000:" "image has user 1000"

run run_busybox --user 1000 -- sh -c 'id -u; id -g; touch /tmp/x && echo tmp-ok'
assert_eq "$output" $'1000\n1000\ntmp-ok' "runs as uid 1000 with writable /tmp"

run run_busybox -- sh -c 'ls /sys/class/net; echo; which nc wget'
assert_eq "$(head -n1 <<<"$output")" lo "--network none: loopback only"
assert_contains "$output" /bin/nc "applet symlinks resolve"

hostdir=$TEST_TMP/hostdir
mkdir "$hostdir"
echo "hello from the host" >"$hostdir/file"
run run_busybox -v "$hostdir:/data:ro" -- cat /data/file
assert_eq "$output" "hello from the host" "read a file through a read-only bind mount"

run run_busybox -v "$hostdir:/data:ro" -- touch /data/new
assert_eq "$status" 1 "touch on a read-only bind mount fails"
assert_contains "$output" "Read-only file system" "with EROFS"
check "nothing was created on the host" test ! -e "$hostdir/new"

run docker run --rm --network none --tmpfs /s:size=64k,mode=0700 "$BUSYBOX_IMAGE" \
    sh -c 'stat -c "%a %U" /s; dd if=/dev/zero of=/s/big bs=1k count=128 2>&1; echo rc=$?'
assert_contains "$output" "700 root" "tmpfs mount mode"
assert_contains "$output" "No space left on device" "tmpfs size cap holds"

drv=$(unique_driver_name)
assert_contains "$drv" secretd-t "unique driver name ($drv)"
check "driver names differ" test "$drv" != "$(unique_driver_name)"

# --------------------------------------------------------------- etcd ------

start_etcd
assert_contains "$(curl -s "$ETCD_ENDPOINT/health")" '"health":"true"' "etcd healthy at $ETCD_ENDPOINT"
key=$(b64 "/secretd/test/$TEST_RUN_ID")
run etcd_call /v3/kv/put "{\"key\":\"$key\",\"value\":\"$(b64 'v1 with spaces')\"}"
assert_contains "$output" '"revision"' "put through the JSON gateway"
run etcd_call /v3/kv/range "{\"key\":\"$key\"}"
got=$(sed -n 's/.*"value":"\([^"]*\)".*/\1/p' <<<"$output" | base64 -d)
assert_eq "$got" "v1 with spaces" "range returns what was put"
run etcd_call /v3/kv/range "{\"key\":\"$(b64 /secretd/absent)\"}"
assert_not_contains "$output" '"kvs"' "absent key: kvs omitted, not empty"
run etcd_call /v3/kv/txn "{\"compare\":[{\"key\":\"$key\",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"$key\",\"value\":\"$(b64 v2)\"}}]}"
assert_not_contains "$output" '"succeeded"' "create-only txn on an existing key fails"

stop_etcd
run curl -s --max-time 2 "$ETCD_ENDPOINT/health"
assert_eq "$status" 7 "stopped etcd refuses connections"
restart_etcd
run etcd_call /v3/kv/range "{\"key\":\"$key\"}"
assert_contains "$output" "$(b64 'v1 with spaces')" "data survives an etcd restart"

# ------------------------------------------------------ dockerd restart ----

# --init: a bare `sleep` as pid 1 ignores SIGTERM and would cost the 10 s
# stop timeout on every graceful restart.
docker run -d --init --name survivor --network none "$BUSYBOX_IMAGE" sleep 100000 >/dev/null
t0=$EPOCHREALTIME
restart_dockerd
diag "restart_dockerd (graceful, one running container) took $(elapsed "$t0")s"
run run_busybox -- echo again
assert_eq "$output" again "container runs after a dockerd restart"
assert_eq "$(docker inspect -f '{{.State.Running}}' survivor)" false \
    "without live-restore a graceful restart stops containers"

docker start survivor >/dev/null
t0=$EPOCHREALTIME
restart_dockerd --kill
diag "restart_dockerd --kill took $(elapsed "$t0")s"
survivor_stopped() { [ "$(docker inspect -f '{{.State.Running}}' survivor)" = false ]; }
check "after a dockerd crash the restored container is seen as stopped" \
    wait_for 10 survivor_stopped
run run_busybox -- echo again
assert_eq "$output" again "container runs after a dockerd crash + restart"

# ---------------------------------------------------- teardown, for real ---

# shellcheck disable=SC2317  # called through check_clean_after
leftovers() {
    local tmp=$1 nap=$2 cg=$3
    pgrep -af -- "$tmp/" || true
    pgrep -af -- "^sleep $nap\$" || true
    grep -F -- "$tmp" /proc/self/mountinfo || true
    ls -d /sys/fs/cgroup/*"$cg" 2>/dev/null || true
}

check_clean_after() {
    local what=$1 info=$2 tmp nap helper dockerd etcd drv cgroup shim left
    # shellcheck disable=SC1090
    . "$info"
    left=$(leftovers "$tmp" "$nap" "$cgroup")
    assert_eq "$left" "" "$what: no process, mount or cgroup left"
    check "$what: TEST_TMP removed" test ! -e "$tmp"
    for p in "$dockerd" "$etcd" "$helper"; do
        pid_alive "$p" && fail "$what: pid $p still alive" "$(ps -o pid,args -p "$p")"
    done
    ok "$what: dockerd, etcd and registered pid are gone"
    check "$what: plugin socket removed" test ! -e "/run/docker/plugins/$drv.sock"
    check "$what: shim socket removed" test ! -e "$shim"
    check "$what: on_exit command ran" test -e "$marker"
}

marker=$TEST_TMP/on-exit-marker

# 1. failed assertion after an unannounced dockerd crash
t0=$EPOCHREALTIME
SECRETD_HARNESS_INNER=fail SECRETD_HARNESS_INFO=$TEST_TMP/inner-fail \
    SECRETD_HARNESS_MARKER=$marker \
    bash "${BASH_SOURCE[0]}" >"$TEST_TMP/inner-fail.out" 2>&1 && rc=0 || rc=$?
diag "inner run (fail) took $(elapsed "$t0")s"
assert_eq "$rc" 1 "a failed assertion makes the script exit 1"
assert_contains "$(cat "$TEST_TMP/inner-fail.out")" "not ok 2 - inner: forced failure" "and is reported as not ok"
if [ -e "$TEST_TMP/inner-fail" ]; then
    check_clean_after "after failure" "$TEST_TMP/inner-fail"
else
    fail "inner (fail) did not start" "$(cat "$TEST_TMP/inner-fail.out")"
fi
rm -f "$marker"

# 2. SIGTERM while the test waits
t0=$EPOCHREALTIME
SECRETD_HARNESS_INNER=term SECRETD_HARNESS_INFO=$TEST_TMP/inner-term \
    SECRETD_HARNESS_MARKER=$marker \
    bash "${BASH_SOURCE[0]}" >"$TEST_TMP/inner-term.out" 2>&1 &
inner_pid=$!
if wait_for 60 test -e "$TEST_TMP/inner-term.ready"; then
    kill -TERM "$inner_pid"
    wait "$inner_pid" && rc=0 || rc=$?
    diag "inner run (term) took $(elapsed "$t0")s"
    assert_eq "$rc" 143 "SIGTERM: exit status 143"
    assert_contains "$(cat "$TEST_TMP/inner-term.out")" "exited early with status 143" \
        "SIGTERM is reported as a failing test point"
    check_clean_after "after SIGTERM" "$TEST_TMP/inner-term"
else
    fail "inner (term) did not get ready" "$(cat "$TEST_TMP/inner-term.out")"
    kill -KILL "$inner_pid" 2>/dev/null || true
fi

# 3. SIGKILL of the test shell: only the reaper can clean up
t0=$EPOCHREALTIME
SECRETD_HARNESS_INNER=term SECRETD_HARNESS_INFO=$TEST_TMP/inner-kill \
    SECRETD_HARNESS_MARKER=$marker \
    bash "${BASH_SOURCE[0]}" >"$TEST_TMP/inner-kill.out" 2>&1 &
inner_pid=$!
if wait_for 60 test -e "$TEST_TMP/inner-kill.ready"; then
    # shellcheck disable=SC1091
    kill_tmp=$(. "$TEST_TMP/inner-kill"; echo "$tmp")
    kill -KILL "$inner_pid"
    wait "$inner_pid" 2>/dev/null || true
    if wait_for 60 test ! -e "$kill_tmp"; then
        ok "SIGKILL: the reaper removed TEST_TMP"
    else
        fail "SIGKILL: the reaper removed TEST_TMP" "$(cat "$kill_tmp/.harness/reaper.log" 2>&1)"
    fi
    diag "inner run (kill) took $(elapsed "$t0")s"
    # shellcheck disable=SC1091
    left=$(. "$TEST_TMP/inner-kill"; leftovers "$tmp" "$nap" "$cgroup"; ls "/run/docker/plugins/$drv.sock" "$shim" 2>/dev/null || true)
    assert_eq "$left" "" "SIGKILL: no process, mount or cgroup left"
else
    fail "inner (kill) did not get ready" "$(cat "$TEST_TMP/inner-kill.out")"
    kill -KILL "$inner_pid" 2>/dev/null || true
fi

diag "start_dockerd ${first_start}s, busybox_image ${BUSYBOX_IMAGE_SECONDS}s, whole test $(elapsed "$t_start")s before teardown"
done_testing
