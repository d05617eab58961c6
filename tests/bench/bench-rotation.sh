#!/bin/bash
# Rotation fan-out: how long after `secretctl put` returns is the new
# version readable in every instance (agent/rotate.h).
#
# Table 1: N instances of one volume (N = 1, 100, 1000), made as dockerd
#   makes them (Create once, then Mount with N distinct IDs on the plugin
#   socket), read through each instance's ro/ path on the host; and 20 real
#   containers (read through their instances' ro/ paths, the same tmpfs the
#   container sees).  R rotations each (default 30): median, p99 (nearest
#   rank; with 30 runs the maximum) and the agent's own figure (store change
#   detected -> last instance written, from its log).
# Table 2: the agent's RSS and CPU (utime+stime over an idle 10 s) with
#   1,000 idle instances.
# Table 3: Docker Swarm side by side: `docker service update --secret-rm s1
#   --secret-add source=s2,target=s1` until the task's container reads the
#   new value, and whether the container was replaced.
#
# The state directory is a tmpfs (as /run/secretd is); the rollback floor
# file stays on the disk (as /var/lib/secretd/delivered.json does).
# The fake instances are served by an agent whose docker socket leads
# nowhere: the events reconcile (agent/events.h) would otherwise wipe
# instances that no running container holds after 30 s.
#
# Environment: SECRETD_BENCH_RUNS (30), SECRETD_BENCH_FANOUT ("1 100 1000"),
# SECRETD_BENCH_SWARM_RUNS (3).  Prints tables; asserts nothing about time.

# shellcheck source=../integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=../integration/agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/agent-lib.sh"
# shellcheck source=bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid python3

runs=${SECRETD_BENCH_RUNS:-30}
fanouts=${SECRETD_BENCH_FANOUT:-1 100 1000}
swarm_runs=${SECRETD_BENCH_SWARM_RUNS:-3}

start_dockerd
busybox_image
agent_fixture
AGENT_LOG_LEVEL=info
LIMITS=(--max-instances-per-volume 5000 --max-total-tmpfs 4G --max-volumes 100)
AGENT_ARGS=("${LIMITS[@]}" --docker-socket "$TEST_TMP/no-docker.sock" --audit-log "")
mkdir -m 0700 "$TEST_TMP/values"

put_value() {
    printf '%s\n' "$2" >"$TEST_TMP/values/$1"
    put_secret "$1" "$TEST_TMP/values/$1" >/dev/null
}

# measure SECRET DIRLIST OUT: R puts of SECRET, each until every instance
# reads it (bench-lib.sh rotation_measure).
measure() { rotation_measure "$1" "$2" "$3" "$runs" "$TEST_TMP/values"; }

# stats FILE: "median p99" in ms (values in FILE are microseconds).
stats() { bench_stats "$1" 99; }

# agent_figure SECRET: median of the agent's "rotated into ... in X ms".
agent_figure() {
    grep -o "secret '$1' version [0-9]* .* in [0-9.]* ms" "$AGENT_LOG" | sed 's/.* in \([0-9.]*\) ms/\1/' \
        | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.1f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else print "-" }'
}

fanout_table=()

# ------------------------------------------- fan-out to plugin instances ---
for n in $fanouts; do
    put_value "fan$n" "fan$n-0"
done
# The state directory on a tmpfs, as in production (/run/secretd): on this
# host's ext4 every mount record save would cost two fsyncs, and a rotation
# saves one record per instance.
mkdir -p "$AGENT_STATE"
mount -t tmpfs -o mode=0700,size=256m secretd-bench-state "$AGENT_STATE"
agent_start

for n in $fanouts; do
    vname=fan$n
    reply=$(plugin_call Create "{\"Name\":\"$vname\",\"Opts\":{\"secrets\":\"fan$n\",\"size\":\"16k\"}}")
    assert_eq "$reply" "{}" "Create $vname"
    : >"$TEST_TMP/dirs-$n"
    bad=0
    for i in $(seq 1 "$n"); do
        id=$(printf '%064x' "$((n * 100000 + i))")
        mp=$(plugin_call Mount "{\"Name\":\"$vname\",\"ID\":\"$id\"}" | sed -n 's/.*"Mountpoint":"\([^"]*\)".*/\1/p')
        if [ -z "$mp" ]; then
            bad=$((bad + 1))
            continue
        fi
        echo "$mp" >>"$TEST_TMP/dirs-$n"
    done
    assert_eq "$bad" 0 "$n Mounts of $vname succeeded"
    if measure "fan$n" "$TEST_TMP/dirs-$n" "$TEST_TMP/lat-$n"; then
        ok "$runs rotations into $n instances"
        read -r med p99 <<<"$(stats "$TEST_TMP/lat-$n")"
        fanout_table+=("$(printf '| %-22s | %10s | %10s | %16s |' "$n instance(s)" "$med" "$p99" "$(agent_figure "fan$n")")")
    else
        fail "$runs rotations into $n instances"
    fi
done

# ------------------------------------------- idle cost with 1000 instances -
total=$(agent_instance_count)
rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT_PID/status")
ticks() { awk '{ print $14 + $15 }' "/proc/$AGENT_PID/stat"; }
hz=$(getconf CLK_TCK)
c0=$(ticks)
sleep 10
c1=$(ticks)
cpu_ms=$(((c1 - c0) * 1000 / hz))
threads=$(awk '/^Threads:/ { print $2 }' "/proc/$AGENT_PID/status")
fds=$(find "/proc/$AGENT_PID/fd" -mindepth 1 | wc -l)

# Back to a normal agent (docker socket reachable) for real containers: the
# fake instances are unmounted first, as dockerd would.
for n in $fanouts; do
    while read -r mp; do
        id=$(basename "$(dirname "$mp")")
        plugin_call Unmount "{\"Name\":\"fan$n\",\"ID\":\"$id\"}" >/dev/null
    done <"$TEST_TMP/dirs-$n"
done
check "all fake instances unmounted" no_instances_left
AGENT_ARGS=("${LIMITS[@]}" --audit-log "")
agent_restart

# ------------------------------------------------ 20 real containers -------
put_value real real-0
docker volume create -d "$AGENT_DRIVER" -o secrets=real -o size=16k vreal >/dev/null
cs=()
for i in $(seq 1 20); do
    cs+=("$(docker run -d --network none -v vreal:/run/secrets "$BUSYBOX_IMAGE" sleep 3600)")
done
: >"$TEST_TMP/dirs-real"
for c in "${cs[@]}"; do
    id=$(container_instance "$c") && echo "$AGENT_STATE/instances/$id/ro" >>"$TEST_TMP/dirs-real"
done
assert_eq "$(wc -l <"$TEST_TMP/dirs-real")" 20 "20 containers, each with its instance"
if measure real "$TEST_TMP/dirs-real" "$TEST_TMP/lat-real"; then
    ok "$runs rotations into 20 containers"
    read -r med p99 <<<"$(stats "$TEST_TMP/lat-real")"
    fanout_table+=("$(printf '| %-22s | %10s | %10s | %16s |' "20 containers" "$med" "$p99" "$(agent_figure real)")")
else
    fail "$runs rotations into 20 containers"
fi
check "the containers were not restarted" eval \
    '[ "$(docker inspect -f "{{.RestartCount}} {{.State.Running}}" "${cs[@]}" | sort -u)" = "0 true" ]'
docker rm -f "${cs[@]}" >/dev/null

# ------------------------------------------------------ Docker Swarm -------
swarm_table=()
if docker swarm init --advertise-addr 127.0.0.1 >"$TEST_TMP/swarm.out" 2>&1; then
    on_exit "docker swarm leave --force >/dev/null 2>&1 || true"
    printf 'swarm-0\n' | docker secret create s0 - >/dev/null
    docker service create --detach --name sv --no-resolve-image --secret source=s0,target=s1 \
        "$BUSYBOX_IMAGE_ID" sleep 3600 >/dev/null
    task_container() {
        docker ps -q --no-trunc --filter label=com.docker.swarm.service.name=sv | head -n 1
    }
    swarm_reads() {
        local c
        c=$(task_container)
        [ -n "$c" ] && [ "$(docker exec "$c" cat /run/secrets/s1 2>/dev/null)" = "$1" ]
    }
    if wait_for 120 swarm_reads swarm-0; then
        ok "swarm service runs and reads its secret"
        : >"$TEST_TMP/lat-swarm"
        replaced=0
        prev=s0
        for i in $(seq 1 "$swarm_runs"); do
            printf 'swarm-%d\n' "$i" | docker secret create "s$i" - >/dev/null
            before=$(task_container)
            t0=${EPOCHREALTIME/./}
            docker service update --detach --secret-rm "$prev" --secret-add "source=s$i,target=s1" sv >/dev/null
            if wait_for 180 swarm_reads "swarm-$i"; then
                t1=${EPOCHREALTIME/./}
                echo $(((10#$t1 - 10#$t0))) >>"$TEST_TMP/lat-swarm"
                [ "$(task_container)" != "$before" ] && replaced=$((replaced + 1))
            else
                diag "swarm rotation $i: the new value never showed"
            fi
            prev=s$i
        done
        read -r med p99 <<<"$(stats "$TEST_TMP/lat-swarm")"
        swarm_table+=("$(printf '| %-30s | %10s | %10s | %-26s |' "swarm service update ($swarm_runs runs)" "$med" "$p99" "container replaced $replaced/$swarm_runs")")
        docker service rm sv >/dev/null 2>&1 || true
    else
        fail "swarm service runs and reads its secret" "$(docker service ps --no-trunc sv 2>&1 | head -5)"
    fi
else
    skip "docker swarm" "$(head -c 200 "$TEST_TMP/swarm.out")"
fi

# ------------------------------------------------------------- tables -------
{
    echo
    echo "Rotation fan-out: secretctl put returned -> new value readable in every instance ($runs rotations; ms)"
    printf '| %-22s | %10s | %10s | %16s |\n' "instances" "median" "p99" "agent (median)"
    printf '|%s|%s|%s|%s|\n' "------------------------" "------------" "------------" "------------------"
    printf '%s\n' "${fanout_table[@]}"
    echo "(agent = its own log: store change detected -> last instance written)"
    echo
    echo "Agent at rest with $total live instances"
    printf '| %-14s | %-22s | %-8s | %-8s |\n' "RSS" "CPU over idle 10 s" "threads" "fds"
    printf '| %-14s | %-22s | %-8s | %-8s |\n' "$((rss_kb / 1024)) MiB ($rss_kb kB)" "$cpu_ms ms" "$threads" "$fds"
    echo
    echo "Docker Swarm secret rotation (ms, until the task's container reads the new value)"
    printf '%s\n' "${swarm_table[@]:-(not run)}"
} >"$TEST_TMP/tables"
while IFS= read -r line; do diag "$line"; done <"$TEST_TMP/tables"

done_testing
