#!/bin/bash
# Mounts run in parallel (issue 8): 50 `docker run -d` started at once on
# one secretd volume all read their secret, and the agent's log shows
# fetches that overlap (one began before another ended: no lock makes the
# Mounts take turns).  Then all 50 go and no instance is left.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl etcd setpriv setsid

n=50
start_etcd
start_dockerd
busybox_image
agent_fixture
# On etcd a fetch is a network round trip, as on most hosts that share
# secrets: long enough for the Mounts dockerd sends side by side to meet.
agent_use_etcd secretd-parallel
mkdir -m 0700 "$TEST_TMP/values"
value=$SECRETD_CANARY_PREFIX-parallel-$(random_hex 24)
printf '%s' "$value" >"$TEST_TMP/values/token"
check "secretctl put token" put_secret token "$TEST_TMP/values/token"
agent_start
vol=par-$TEST_RUN_ID
check "docker volume create -o secrets=token" docker volume create -d "$AGENT_DRIVER" -o secrets=token "$vol"

marker=$(wc -l <"$AGENT_LOG")
pids=()
for i in $(seq "$n"); do
    # Each container prints its secret once, then waits to be removed.
    (docker run -d --name "par-$TEST_RUN_ID-$i" --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" \
        sh -c 'cat /run/secrets/token; echo; exec sleep 600' >"$TEST_TMP/run-$i.out" 2>&1) &
    pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
assert_eq "$failed" 0 "$n docker run -d at once all started"
if [ "$failed" != 0 ]; then
    for i in $(seq "$n"); do grep -q . "$TEST_TMP/run-$i.out" && diag "run $i: $(tail -n 1 "$TEST_TMP/run-$i.out")"; done
fi

all_read() {
    local i
    for i in $(seq "$n"); do
        [ "$(docker logs "par-$TEST_RUN_ID-$i" 2>/dev/null | head -n 1)" = "$value" ] || return 1
    done
}
check "all $n containers read their secret" wait_for 120 all_read
check "each has its own instance" test "$(agent_instance_count)" = "$n"

# Fetch starts and ends in log order: the most in flight at one moment.
most=$(tail -n +"$((marker + 1))" "$AGENT_LOG" | awk '
    /fetch of secret .token. started/ { in_flight++; if (in_flight > most) most = in_flight }
    /fetch of secret .token. ended/ { in_flight-- }
    END { print most + 0 }')
diag "at most $most fetches of the secret were in flight at once"
check "the agent's log shows overlapping fetches (one began before another ended)" test "$most" -ge 2

names=()
for i in $(seq "$n"); do names+=("par-$TEST_RUN_ID-$i"); done
run docker rm -f "${names[@]}"
assert_eq "$status" 0 "docker rm -f all $n"
check "every instance is wiped" wait_for 120 no_instances_left
agent_stop
printf '%s\n' "$value" >"$TEST_TMP/canaries"
assert_log_free_of "no secret value appears in the agent's log" "$TEST_TMP/canaries"

done_testing
