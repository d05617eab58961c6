#!/bin/bash
# Container lifecycle through dockerd's events stream (design.md point 4;
# threat model: "Agent crash, agent restart, dockerd restart: running
# containers keep their last good secrets; state reconciles; no orphaned
# tmpfs and no plaintext left behind"):
#   - a running container's instance is linked to it (mount record names
#     the container and its secretd.reload-signal label);
#   - a container that exits on its own loses its instance;
#   - SIGKILL of the agent under a running container: no value on disk
#     outside the tmpfs instances nor in the log; the restarted agent adopts
#     the instance, the container still reads, docker stop wipes it;
#   - a container removed while the agent is dead: its instance is wiped by
#     the restarted agent's reconcile;
#   - dockerd restarted under the agent: disconnect and reconnect are
#     logged, and a container started afterwards gets its secret.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid sha256sum grep

start_dockerd
busybox_image
agent_fixture

mkdir -m 0700 "$TEST_TMP/values"
canary=canary-lifecycle-$(random_hex 24)
printf '%s\n' "$canary" >"$TEST_TMP/values/token"
printf '%s\n' "$canary" >"$TEST_TMP/canaries"
token_sha=$(sha256_of "$TEST_TMP/values/token")
check "secretctl put token" put_secret token "$TEST_TMP/values/token"

agent_start

vol=lv-$TEST_RUN_ID
check "docker volume create -d <driver> -o secrets=token" \
    docker volume create -d "$AGENT_DRIVER" -o secrets=token "$vol"

reads_token() {
    local sum
    sum=$(docker exec "$1" sha256sum /run/secrets/token 2>&1) || { echo "$sum"; return 1; }
    [ "${sum%% *}" = "$token_sha" ] || { echo "read: $sum"; return 1; }
}

record_names() {
    local f=$AGENT_STATE/mounts/$1.json cid=$2
    [ -f "$f" ] && grep -q "\"ContainerID\":\"$cid\"" "$f"
}

log_has() {
    grep -qF -- "$1" "$AGENT_LOG"
}

# Files under the state dir that are not inside a tmpfs instance: state
# records must hold names and versions only.
state_free_of_canary() {
    local rc=0
    grep -rlaF -D skip -f "$TEST_TMP/canaries" --exclude-dir=instances "$AGENT_STATE" || rc=$?
    [ "$rc" = 1 ]
}

# --- a running container is linked to its instance -------------------------
c=$(docker run -d --network none -l secretd.reload-signal=SIGHUP --name "lc-linked-$TEST_RUN_ID" \
    -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
check "a running container reads its secret" reads_token "$c"
id=$(container_instance "$c") || id=""
check "its instance ($id) is mounted" eval '[ -n "$id" ] && instance_mounted "$id"'
check "the mount record names the container (from the volume mount event)" \
    wait_for 10 record_names "$id" "$c"
run cat "$AGENT_STATE/mounts/$id.json"
assert_contains "$output" "\"ContainerName\":\"lc-linked-$TEST_RUN_ID\"" "... with its name"
assert_contains "$output" '"ReloadSignal":1' "... and its reload signal (SIGHUP = 1)"
run docker restart -t 1 "$c"
assert_eq "$status" 0 "docker restart the container"
check "its old instance is wiped" wait_for 10 instance_gone "$id"
check "after the restart it reads its secret" reads_token "$c"
id=$(container_instance "$c") || id=""
check "its new instance ($id) is linked to it" \
    wait_for 10 record_names "$id" "$c"

# Two instances no container holds, as a Mount for a container that is
# still being created leaves them: one just made, one made long ago.
young=$(random_hex 64)
old=$(random_hex 64)
run plugin_call Mount "{\"Name\":\"$vol\",\"ID\":\"$young\"}"
assert_contains "$output" Mountpoint "a Mount with no container (young)"
run plugin_call Mount "{\"Name\":\"$vol\",\"ID\":\"$old\"}"
assert_contains "$output" Mountpoint "a Mount with no container (old)"

# --- SIGKILL under a running container ---------------------------------------
agent_stop --kill
assert_eq "$AGENT_EXIT_STATUS" 137 "SIGKILL: the agent is dead"
check "no value on disk in the state dir outside the tmpfs instances" state_free_of_canary
check "with no agent the container still reads its secret" reads_token "$c"
# As if the agent had died between the Mount and the volume mount event:
# the record does not name the container; and the old orphan dates back.
sed -i -E 's/"Container(ID|Name)":"[^"]*",//g; s/"ReloadSignal":-?[0-9]+,//' \
    "$AGENT_STATE/mounts/$id.json"
sed -i -E 's/"MountedAt":[0-9]+/"MountedAt":1000/' "$AGENT_STATE/mounts/$old.json"
check "(the record no longer names the container)" eval '! record_names "$id" "$c"'
agent_start
check "the restarted agent adopted the instance" wait_for 10 log_has "adopted instance ${id:0:12}"
check "after the restart the container still reads its secret" reads_token "$c"
check "... and its instance is still mounted (the reconcile left it alone)" instance_mounted "$id"
check "the reconcile links it to the container again by its tmpfs device" \
    wait_for 10 record_names "$id" "$c"
check "... with its reload signal" grep -q '"ReloadSignal":1' "$AGENT_STATE/mounts/$id.json"
check "an old instance no container holds is wiped" wait_for 10 instance_gone "$old"
check "... saying why" log_has "wiped instance ${old:0:12} of volume '$vol': no running container holds it"
check "a young one is left alone (its container may be starting)" instance_mounted "$young"
run plugin_call Unmount "{\"Name\":\"$vol\",\"ID\":\"$young\"}"
check "... until its Unmount" instance_gone "$young"
run plugin_call Unmount "{\"Name\":\"$vol\",\"ID\":\"$old\"}"
assert_eq "$output" "{}" "a late Unmount of the wiped instance succeeds"
check "... quietly (info, not a warning)" log_has "unmount ${old:0:12} of volume '$vol': already wiped"
run docker stop -t 1 "$c"
assert_eq "$status" 0 "docker stop the container"
check "docker stop wipes its instance" wait_for 20 instance_gone "$id"
docker rm "$c" >/dev/null

# --- a container that exits on its own --------------------------------------
c=$(docker run -d --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" \
    sh -c 'cat /run/secrets/token >/dev/null && sleep 1; exit 3')
run docker wait "$c"
assert_eq "$output" 3 "a container reading its secret exits 3 on its own"
check "... and no instance is left within 15 s" wait_for 15 no_instances_left
docker rm "$c" >/dev/null

# --- containers removed or exited while the agent is dead --------------------
c=$(docker run -d --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
check "another container reads its secret" reads_token "$c"
id=$(container_instance "$c") || id=""
check "its record names it" wait_for 10 record_names "$id" "$c"
c2=$(docker run -d --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" \
    sh -c 'while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 3')
id2=$(container_instance "$c2") || id2=""
check "a third container's record names it" wait_for 10 record_names "$id2" "$c2"
agent_stop --kill
t0=$EPOCHREALTIME
docker exec "$c2" touch /tmp/go
# dockerd's Unmount fails while no plugin answers (it retries for ~15 s);
# the container is removed (or stays exited) all the same, and nobody
# wipes its tmpfs.  Both retry windows run side by side.
run docker rm -f "$c"
assert_eq "$status" 0 "docker rm -f the container while the agent is dead"
diag "docker rm -f took $(elapsed "$t0")s: $output"
run docker wait "$c2"
assert_eq "$output" 3 "the third container exits on its own while the agent is dead"
unmount_gave_up() {
    grep -q "Unmount.*${id2}\|${id2}.*[Uu]nmount\|${c2}.*unmount\|unmount.*${c2}" "$DOCKERD_LOG"
}
if ! wait_for 20 unmount_gave_up; then
    diag "no failed unmount of $c2 in the dockerd log:"
    diag_file "$DOCKERD_LOG" 10
fi
check "their instances outlived them (nobody answered the Unmounts)" \
    eval 'instance_mounted "$id" && instance_mounted "$id2"'
agent_start
check "the restarted agent's reconcile wipes the removed one's within 15 s" wait_for 15 instance_gone "$id"
check "... and says why" log_has "wiped instance ${id:0:12} of volume '$vol': container ${c:0:12}"
check "... and drops its mount record" test ! -e "$AGENT_STATE/mounts/$id.json"
check "it wipes the exited one's too" wait_for 15 instance_gone "$id2"
check "... saying it is not running" \
    log_has "wiped instance ${id2:0:12} of volume '$vol': container ${c2:0:12}"
docker rm "$c2" >/dev/null
check "no instance is left" no_instances_left

# --- dockerd restarted under the agent ----------------------------------------
restart_dockerd
check "the agent logs losing dockerd" wait_for 15 log_has "docker events: disconnected from"
check "... and reconnecting" wait_for 15 log_has "docker events: reconnected to"
check "the agent is still running" pid_alive "$AGENT_PID"
run run_busybox -v "$vol:/run/secrets" -- sha256sum /run/secrets/token
assert_eq "${output%% *}" "$token_sha" "a container started after the dockerd restart reads its secret"
check "... and its instance is gone once it exited" wait_for 15 no_instances_left

state_after=$(state_free_of_canary && echo clean || echo leaked)
assert_eq "$state_after" clean "no value in the state dir outside tmpfs at the end"
assert_log_free_of "the secret never appears in the agent's log" "$TEST_TMP/canaries"
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "SIGTERM: the agent stops its events thread and exits 0"

done_testing
