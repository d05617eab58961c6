#!/bin/bash
# What a put costs across hosts (issue 11), with a real dockerd:
#
# Table 1: `secretctl put` returned -> the new value readable in a running
#   container (read through its instance's ro/ path on the host, the tmpfs
#   the container sees; bench-lib.sh rotation_measure), R puts each (default
#   50), median and p99: a file store and one agent; a three-member etcd
#   cluster on loopback and one agent; the same cluster and two agents (own
#   driver names and keys, one container each, time until both read it).
#   Both agents share this script's dockerd (lib.sh runs one per script).
# Table 2: container start (docker run -> first line read from
#   /run/secrets) with the etcd cluster up vs all of it stopped, when the
#   Mount is served from the agent's local cache; S runs each (default 10).
#
# Environment: SECRETD_BENCH_RUNS (50), SECRETD_BENCH_START_RUNS (10).
# Prints tables; asserts nothing about time.

# shellcheck source=../integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=../integration/agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/agent-lib.sh"
# shellcheck source=bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

require_root
require_cmd dockerd docker etcd curl setpriv setsid python3

runs=${SECRETD_BENCH_RUNS:-50}
start_runs=${SECRETD_BENCH_START_RUNS:-10}

start_dockerd
busybox_image
agent_fixture
AGENT_LOG_LEVEL=info
AGENT_ARGS=(--audit-log "")
mkdir -m 0700 "$TEST_TMP/values"

# The secret is named x: bench-lib.sh's timed_run reads /run/secrets/x.
put_value() {
    printf '%s\n' "$1" >"$TEST_TMP/values/x"
    put_secret x "$TEST_TMP/values/x" >/dev/null
}

# serve VOLUME CONTAINER: a running container of the current agent with
# VOLUME at /run/secrets; prints its instance's ro/ directory.
serve() {
    local id
    docker volume create -d "$AGENT_DRIVER" -o secrets=x -o size=16k "$1" >/dev/null
    docker run -d --name "$2" --network none -v "$1:/run/secrets" "$BUSYBOX_IMAGE" sleep 3600 >/dev/null
    id=$(container_instance "$2") || bail_out "no instance found for container $2"
    echo "$AGENT_STATE/instances/$id/ro"
}

latency_table=()
# measure LABEL DIRLIST: R puts until every directory of DIRLIST has each.
measure() {
    local out=$TEST_TMP/lat-${#latency_table[@]} med p99
    if rotation_measure x "$2" "$out" "$runs" "$TEST_TMP/values"; then
        ok "$runs puts: $1"
        read -r med p99 <<<"$(bench_stats "$out" 99)"
        latency_table+=("$(printf '| %-40s | %8s | %8s |' "$1" "$med" "$p99")")
    else
        fail "$runs puts: $1"
    fi
}

# ----------------------------------------------------- file store -------
put_value file-0
agent_start || bail_out "the agent did not start"
serve "bf-$TEST_RUN_ID" "bfc-$TEST_RUN_ID" >"$TEST_TMP/dirs-file"
measure "file store, one agent" "$TEST_TMP/dirs-file"
docker rm -f "bfc-$TEST_RUN_ID" >/dev/null
agent_stop

# ------------------------------------------ etcd, one and two agents -------
start_etcd_cluster 3 || bail_out "the etcd cluster did not start"
agent_use_etcd secretd-bench "$ETCD_CLUSTER_ENDPOINTS"
# Another store, another history of x: a floor of its own (the file store's
# 51 versions would make etcd's version 1 a rollback).
AGENT_FLOOR=$TEST_TMP/agent/delivered-etcd.json
put_value etcd-0
agent_start || bail_out "the agent did not start on etcd"
vol1=be1-$TEST_RUN_ID
serve "$vol1" "bec1-$TEST_RUN_ID" >"$TEST_TMP/dirs-etcd1"
measure "etcd (3 members), one agent" "$TEST_TMP/dirs-etcd1"

agent_save first
agent_add agent2 host2
put_value etcd2-0
agent_start || bail_out "the second agent did not start"
serve "be2-$TEST_RUN_ID" "bec2-$TEST_RUN_ID" >"$TEST_TMP/dirs-etcd2"
cat "$TEST_TMP/dirs-etcd1" >>"$TEST_TMP/dirs-etcd2"
measure "etcd (3 members), two agents (both read)" "$TEST_TMP/dirs-etcd2"
agent_load first

# ------------------------------------------ start: store up vs cache -------
put_value start-value
wait_for 20 sh -c "grep -qx start-value '$(head -n 1 "$TEST_TMP/dirs-etcd1")/x'" || diag "the start value is slow"
: >"$TEST_TMP/start-up.first"
: >"$TEST_TMP/start-cache.first"
timed_run "$TEST_TMP/warm" start-value -v "$vol1:/run/secrets" || true
failures=0
for i in $(seq "$start_runs"); do
    timed_run "$TEST_TMP/start-up" start-value -v "$vol1:/run/secrets" || failures=$((failures + 1))
done
stop_etcd_cluster
timed_run "$TEST_TMP/warm" start-value -v "$vol1:/run/secrets" || true
for i in $(seq "$start_runs"); do
    timed_run "$TEST_TMP/start-cache" start-value -v "$vol1:/run/secrets" || failures=$((failures + 1))
done
assert_eq "$failures" 0 "every container started and read its secret, with etcd up and from the cache"
read -r up_med up_p99 <<<"$(bench_stats "$TEST_TMP/start-up.first" 99)"
read -r cache_med cache_p99 <<<"$(bench_stats "$TEST_TMP/start-cache.first" 99)"
served=$(curl -sS --max-time 10 --unix-socket "$AGENT_ADMIN_SOCK" http://localhost/metrics \
    | awk '$1 == "secretd_cache_deliveries_total" { print $2 }')
assert_eq "$served" "$((start_runs + 1))" "the starts with etcd down were served from the cache"

# ------------------------------------------------------------- tables -------
{
    echo
    echo "secretctl put returned -> new value readable in the container ($runs puts; ms; loopback, one host)"
    printf '| %-40s | %8s | %8s |\n' "store" "p50" "p99"
    printf '| %-40s | %8s | %8s |\n' "----" "---" "---"
    printf '%s\n' "${latency_table[@]}"
    echo
    echo "Container start, docker run -> first line read from /run/secrets ($start_runs runs; ms)"
    printf '| %-40s | %8s | %8s |\n' "etcd (3 members)" "p50" "p99"
    printf '| %-40s | %8s | %8s |\n' "----" "---" "---"
    printf '| %-40s | %8s | %8s |\n' "store up" "$up_med" "$up_p99"
    printf '| %-40s | %8s | %8s |\n' "all members stopped: from the cache" "$cache_med" "$cache_p99"
} >"$TEST_TMP/tables"
while IFS= read -r line; do diag "$line"; done <"$TEST_TMP/tables"

done_testing
