#!/bin/bash
# A stalled store holds up no wipe (issue 8): with the agent on a real etcd
# store and etcd frozen (SIGSTOP) while a Mount is fetching from it,
#   - the events thread's wipe (dockerd crashed and came back: its
#     reconcile finds the container no longer running) and
#   - an Unmount (docker stop) of another container
# both wipe their tmpfs while that fetch is still blocked: the agent's log
# has each wipe before the end of the fetch.  No time is asserted, only
# the order; the one time bound is the store client's own 10 s request
# timeout, which must not run out before the two wipes are done.
#
# The agent reaches dockerd through a link ($TEST_TMP/docker-link.sock)
# that the test removes while dockerd restarts and puts back once the
# fetch is stuck: so the reconcile (and its wipe) comes after the freeze.
# Then etcd thaws and a new container gets its secret.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl etcd setpriv setsid

start_etcd
# Teardown thaws it before stopping it (the stack runs last in, first out).
on_exit "kill -CONT $ETCD_PID 2>/dev/null || true"
start_dockerd
busybox_image
agent_fixture
agent_use_etcd secretd-stall
mkdir -m 0700 "$TEST_TMP/values"
printf '%s' "$SECRETD_CANARY_PREFIX-stall1-$(random_hex 24)" >"$TEST_TMP/values/fast"
printf '%s' "$SECRETD_CANARY_PREFIX-stall2-$(random_hex 24)" >"$TEST_TMP/values/slow"
check "secretctl put fast, slow (etcd)" \
    eval 'put_secret fast "$TEST_TMP/values/fast" && put_secret slow "$TEST_TMP/values/slow"'

link=$TEST_TMP/docker-link.sock
ln -s "$DOCKER_SOCK" "$link"
AGENT_ARGS=(--docker-socket "$link")
agent_start
check "docker volume create vfast, vslow" eval \
    'docker volume create -d "$AGENT_DRIVER" -o secrets=fast vfast-$TEST_RUN_ID && docker volume create -d "$AGENT_DRIVER" -o secrets=slow vslow-$TEST_RUN_ID'
linked() { grep -qs "\"ContainerID\":\"$2\"" "$AGENT_STATE/mounts/$1.json"; }
c2=$(docker run -d --network none -v "vfast-$TEST_RUN_ID:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
i2=$(container_instance "$c2")
check "the second container has its instance" test -n "$i2"
check "the events thread linked it to the container" wait_for 20 linked "$i2" "$c2"

# dockerd crashes and comes back; the agent cannot reach it yet.
rm -f "$link"
restart_dockerd --kill
check "the agent lost dockerd's events" wait_for 20 grep -q "docker events: cannot follow $link" "$AGENT_LOG"
c1=$(docker run -d --network none -v "vfast-$TEST_RUN_ID:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
i1=$(container_instance "$c1")
check "the first container has its instance" test -n "$i1"
check "the second container's instance is still there (not reconciled yet)" instance_mounted "$i2"

# logline PATTERN: the number of the first log line with PATTERN (fixed
# string) after the marker, or nothing.
marker=$(wc -l <"$AGENT_LOG")
logline() { tail -n +"$((marker + 1))" "$AGENT_LOG" | grep -nF -m1 -- "$1" | cut -d: -f1; }
fetching() { [ -n "$(logline "fetch of secret 'slow' started")" ]; }
fetched() { [ -n "$(logline "fetch of secret 'slow' ended")" ]; }

kill -STOP "$ETCD_PID"
id=$(random_hex 64)
spawn slow-mount curl -sS --max-time 60 --unix-socket "$AGENT_SOCK" -X POST \
    --data-binary "{\"Name\":\"vslow-$TEST_RUN_ID\",\"ID\":\"$id\"}" http://localhost/VolumeDriver.Mount
slow_pid=$SPAWN_PID
check "a Mount of vslow is fetching from the frozen etcd" wait_for 20 fetching

# The events wipe: the agent reaches dockerd again and reconciles.
ln -s "$DOCKER_SOCK" "$link"
check "the reconcile wiped the second container's tmpfs" wait_for 20 instance_gone "$i2"
events_wiped=$(logline "wiped instance ${i2:0:12} of volume 'vfast-$TEST_RUN_ID': container ${c2:0:12}")
# An Unmount: docker stop of the first container.
run docker stop -t 0 "$c1"
assert_eq "$status" 0 "docker stop the first container"
check "its Unmount wiped its tmpfs" wait_for 20 instance_gone "$i1"
unmount_wiped=$(logline "unmount ${i1:0:12} of volume 'vfast-$TEST_RUN_ID': tmpfs wiped")

if fetched; then
    fail "both wipes finished while the fetch was still blocked" \
        "the fetch ended first (log: $(tail -n +"$((marker + 1))" "$AGENT_LOG" | grep -F -m1 "fetch of secret 'slow' ended"))"
else
    ok "both wipes finished while the fetch was still blocked"
fi
check "the events wipe is in the log" test -n "$events_wiped"
check "the Unmount wipe is in the log" test -n "$unmount_wiped"
check "the Mount's HTTP request is still waiting" pid_alive "$slow_pid"

kill -CONT "$ETCD_PID"
check "after etcd thaws, the fetch ends" wait_for 30 fetched
fetch_end=$(logline "fetch of secret 'slow' ended")
check "in the log, both wipes come before the end of the fetch" \
    test "${unmount_wiped:-999999}" -lt "$fetch_end" -a "${events_wiped:-999999}" -lt "$fetch_end"
check "the stalled Mount's request returns" wait_for 30 eval '! pid_alive "$slow_pid"'
run plugin_call Unmount "{\"Name\":\"vslow-$TEST_RUN_ID\",\"ID\":\"$id\"}"
assert_eq "$output" "{}" "and its instance (if it was made) unmounts"

run run_busybox -v "vslow-$TEST_RUN_ID:/run/secrets" -- cat /run/secrets/slow
assert_eq "$output" "$(cat "$TEST_TMP/values/slow")" "a new container on vslow reads its secret"
docker rm -f "$c1" "$c2" >/dev/null 2>&1 || true
check "no instance is left" wait_for 20 no_instances_left
agent_stop
cat "$TEST_TMP/values/fast" >"$TEST_TMP/canaries"
printf '\n' >>"$TEST_TMP/canaries"
cat "$TEST_TMP/values/slow" >>"$TEST_TMP/canaries"
assert_log_free_of "no secret value appears in the agent's log" "$TEST_TMP/canaries"

done_testing
