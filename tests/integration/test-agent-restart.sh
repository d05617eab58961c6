#!/bin/bash
# The agent restarts under a running container (design: "Agent crash, agent
# restart: running containers keep their last good secrets; state
# reconciles; no orphaned tmpfs and no plaintext left behind"):
#   - SIGTERM: the agent exits 0 and unlinks its socket, the container keeps
#     reading its secret while no agent runs; the restarted agent still
#     lists the volume, serves new containers from it, and when the old
#     container stops it removes that container's instance;
#   - the same after SIGKILL (a crash: the socket is left behind).

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid sha256sum

start_dockerd
busybox_image
agent_fixture

mkdir -m 0700 "$TEST_TMP/values"
canary=canary-restart-$(random_hex 24)
printf '%s\n' "$canary" >"$TEST_TMP/values/token"
printf '%s\n' "$canary" >"$TEST_TMP/canaries"
token_sha=$(sha256_of "$TEST_TMP/values/token")
check "secretctl put token" put_secret token "$TEST_TMP/values/token"

agent_start

vol=rv-$TEST_RUN_ID
check "docker volume create -d <driver> -o secrets=token" \
    docker volume create -d "$AGENT_DRIVER" -o secrets=token "$vol"

reads_token() {
    local sum
    sum=$(docker exec "$1" sha256sum /run/secrets/token 2>&1) || { echo "$sum"; return 1; }
    [ "${sum%% *}" = "$token_sha" ] || { echo "read: $sum"; return 1; }
}

# restart_round HOW: one container survives an agent stop (HOW = TERM or
# KILL) and a restart.
restart_round() {
    local how=$1 c id t0 out
    c=$(docker run -d --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
    check "[$how] a running container reads its secret" reads_token "$c"
    id=$(container_instance "$c") || id=""
    check "[$how] its instance ($id) is in the state dir and mounted" \
        eval '[ -n "$id" ] && [ -d "$AGENT_STATE/instances/$id" ] && instance_mounted "$id"'

    if [ "$how" = TERM ]; then
        agent_stop
        assert_eq "$AGENT_EXIT_STATUS" 0 "[$how] SIGTERM: the agent exits 0"
        check "[$how] ... and unlinks its socket" test ! -e "$AGENT_SOCK"
    else
        agent_stop --kill
        assert_eq "$AGENT_EXIT_STATUS" 137 "[$how] SIGKILL: the agent is dead"
    fi
    check "[$how] with no agent running the container still reads its secret" reads_token "$c"
    check "[$how] ... and its tmpfs stays mounted" instance_mounted "$id"

    t0=$EPOCHREALTIME
    if agent_start; then
        ok "[$how] the agent starts again on the same state dir (${AGENT_START_SECONDS}s)"
    else
        fail "[$how] the agent starts again on the same state dir"
        return 0
    fi
    check "[$how] after the restart the container still reads its secret" reads_token "$c"
    t0=$EPOCHREALTIME
    run docker volume ls -q
    assert_contains "$output" "$vol" "[$how] the volume is still listed in docker volume ls"
    diag "docker volume ls took $(elapsed "$t0")s"
    run docker volume inspect -f '{{.Driver}}' "$vol"
    assert_eq "$output" "$AGENT_DRIVER" "[$how] docker volume inspect still finds it"
    run run_busybox -v "$vol:/run/secrets" -- sha256sum /run/secrets/token
    assert_eq "${output%% *}" "$token_sha" "[$how] a new container on the volume reads the secret (the options survived)"
    check "[$how] ... and its instance is gone once it exited" wait_for 20 instance_count_is 1

    run docker stop -t 1 "$c"
    assert_eq "$status" 0 "[$how] docker stop the container that outlived the agent"
    check "[$how] its instance is gone from the state dir and mountinfo" wait_for 20 instance_gone "$id"
    check "[$how] no instance is left at all" no_instances_left
    docker rm "$c" >/dev/null
}

restart_round TERM
restart_round KILL

run docker volume rm "$vol"
assert_eq "$status" 0 "docker volume rm after both restarts"
run docker volume ls -q
assert_not_contains "$output" "$vol" "the volume is gone from docker volume ls"

assert_log_free_of "the secret never appears in the agent's log" "$TEST_TMP/canaries"
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "SIGTERM at the end: the agent exits 0"

done_testing
