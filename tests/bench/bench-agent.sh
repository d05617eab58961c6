#!/bin/bash
# The agent's five headline figures (issue 8), one table, against a real
# dockerd:
#
#   1. Mount of a volume of 10 secrets of 4 KiB straight on the plugin
#      socket (curl time_total), median of M runs (default 30); each Mount
#      is followed by its Unmount.
#   2. 50 containers started at once (`docker run --rm` in parallel), each
#      reading its secret: time from the launch until the last of them has
#      read it, median of R rounds (default 3); the same with a host tmpfs
#      bind-mounted read-only, and the ratio.
#   3. The agent's RSS with 1,000 live instances of one volume.
#   4. Rotation fan-out to those 1,000 instances: `secretctl put` returned
#      -> the new value readable in every instance, median and p99 of R
#      rotations (default 30).
#   5. Container start (`docker run --rm ... cat /run/secrets/x`, docker run
#      started -> the first line read), secretd volume vs host tmpfs bind
#      :ro, N runs each interleaved (default 20): medians and their ratio.
#
# As in production the state directory is a tmpfs (/run/secretd) and the
# rollback floor file is on the disk (/var/lib/secretd).  Figures 3 and 4
# use an agent whose docker socket leads nowhere: the events reconcile would
# otherwise wipe instances that no container holds.
#
# Environment: SECRETD_BENCH_RUNS (20), SECRETD_BENCH_MOUNT_RUNS (30),
# SECRETD_BENCH_ROUNDS (3), SECRETD_BENCH_ROTATIONS (30),
# SECRETD_BENCH_INSTANCES (1000).  Prints a table; asserts nothing about
# time.

# shellcheck source=../integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=../integration/agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/agent-lib.sh"
# shellcheck source=bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid python3

runs=${SECRETD_BENCH_RUNS:-20}
mount_runs=${SECRETD_BENCH_MOUNT_RUNS:-30}
rounds=${SECRETD_BENCH_ROUNDS:-3}
rotations=${SECRETD_BENCH_ROTATIONS:-30}
instances=${SECRETD_BENCH_INSTANCES:-1000}
parallel=50

start_dockerd
busybox_image
agent_fixture
AGENT_LOG_LEVEL=info
LIMITS=(--max-instances-per-volume 5000 --max-total-tmpfs 64G --max-size 16m)
AGENT_ARGS=("${LIMITS[@]}" --audit-log "")
mkdir -p "$AGENT_STATE"
mount -t tmpfs -o mode=0700,size=512m secretd-bench-state "$AGENT_STATE"
mkdir -m 0700 "$TEST_TMP/values"
res=$TEST_TMP/results
mkdir "$res"

value=bench-$(random_hex 32)
printf '%s\n' "$value" >"$TEST_TMP/values/x"
check "secretctl put x" put_secret x "$TEST_TMP/values/x"
list=$(put_random_secrets m 10)
agent_start

# ------------------------------------------ 1. Mount of 10 x 4 KiB --------
plugin_call Create "{\"Name\":\"m10\",\"Opts\":{\"secrets\":\"$list\",\"size\":\"1m\"}}" >"$TEST_TMP/reply"
check "Create a volume of 10 secrets of 4 KiB" reply_ok "$TEST_TMP/reply"
: >"$res/mount"
bad=0
for i in $(seq "$mount_runs"); do
    id=$(random_hex 64)
    t=$(curl -sS --max-time 130 --unix-socket "$AGENT_SOCK" -o "$TEST_TMP/reply" -w '%{time_total}' \
        -X POST --data-binary "{\"Name\":\"m10\",\"ID\":\"$id\"}" http://localhost/VolumeDriver.Mount)
    if reply_ok "$TEST_TMP/reply" && [ "$(find "$AGENT_STATE/instances/$id/rw" -maxdepth 1 -name 'm*' | wc -l)" = 10 ]; then
        awk -v t="$t" 'BEGIN { printf "%d\n", t * 1000000 }' >>"$res/mount"
    else
        bad=$((bad + 1))
        diag "Mount: $(cat "$TEST_TMP/reply")"
    fi
    plugin_call Unmount "{\"Name\":\"m10\",\"ID\":\"$id\"}" >/dev/null
done
assert_eq "$bad" 0 "$mount_runs Mounts of 10 secrets delivered all 10 files"
read -r mount_med _ < <(bench_stats "$res/mount" 50)

# ------------------------------------------------ 5. container start -------
vol=bench-x
check "docker volume create -o secrets=x" docker volume create -d "$AGENT_DRIVER" -o secrets=x "$vol"
host_dir=$TEST_TMP/host-secrets
mkdir "$host_dir"
mount -t tmpfs -o size=64k,mode=0755,nosuid,nodev,noexec bench-baseline "$host_dir"
on_exit "umount '$host_dir' 2>/dev/null || true"
install -m 0400 "$TEST_TMP/values/x" "$host_dir/x"

failures=$(interleaved_starts "$res/start-secretd" "$vol:/run/secrets" "$res/start-bind" "$host_dir:/run/secrets:ro" \
    "$runs" 2 "$value")
assert_eq "$failures" 0 "$runs interleaved container starts each read the secret"
read -r start_s _ < <(bench_stats "$res/start-secretd.first" 50)
read -r start_b _ < <(bench_stats "$res/start-bind.first" 50)

# ------------------------------------------- 2. 50 containers at once ------
# parallel_round OUT DOCKER_RUN_ARGS...: $parallel `docker run --rm` at
# once; appends the microseconds until the last one read the secret.
parallel_round() {
    local out=$1 t0 i last=0 s pids=()
    shift
    rm -f "$TEST_TMP"/stamp-*
    t0=$(usec_now)
    for i in $(seq "$parallel"); do
        (docker run --rm --network none "$@" "$BUSYBOX_IMAGE" cat /run/secrets/x 2>"$TEST_TMP/par-$i.err" \
            | { IFS= read -r line && [ "$line" = "$value" ] && usec_now >"$TEST_TMP/stamp-$i"; cat >/dev/null; }) &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
    for i in $(seq "$parallel"); do
        if [ ! -s "$TEST_TMP/stamp-$i" ]; then
            diag "parallel run $i did not read the secret: $(head -c 300 "$TEST_TMP/par-$i.err")"
            return 1
        fi
        s=$(cat "$TEST_TMP/stamp-$i")
        [ "$s" -gt "$last" ] && last=$s
    done
    echo $((last - t0)) >>"$out"
}
failures=0
for i in $(seq "$rounds"); do
    parallel_round "$res/par-secretd" -v "$vol:/run/secrets" || failures=$((failures + 1))
    parallel_round "$res/par-bind" -v "$host_dir:/run/secrets:ro" || failures=$((failures + 1))
done
assert_eq "$failures" 0 "$rounds rounds of $parallel containers at once all read their secret"
check "no instance is left after the container runs" wait_for 60 no_instances_left
read -r par_s _ < <(bench_stats "$res/par-secretd" 50)
read -r par_b _ < <(bench_stats "$res/par-bind" 50)
docker volume rm "$vol" >/dev/null || true

# ------------------------------- 3 and 4. 1,000 instances: RSS, rotation ---
agent_stop
AGENT_ARGS=("${LIMITS[@]}" --audit-log "" --docker-socket "$TEST_TMP/no-docker.sock")
agent_start
printf 'fan-0\n' >"$TEST_TMP/values/fan"
put_secret fan "$TEST_TMP/values/fan" >/dev/null
reply=$(plugin_call Create '{"Name":"fan","Opts":{"secrets":"fan","size":"16k"}}')
assert_eq "$reply" "{}" "Create the fan-out volume"
rss_before_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT_PID/status")
plugin_many Mount fan "$instances" "$TEST_TMP/dirs"
assert_eq "$(wc -l <"$TEST_TMP/dirs")" "$instances" "$instances Mounts of the fan-out volume"
rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT_PID/status")
threads=$(awk '/^Threads:/ { print $2 }' "/proc/$AGENT_PID/status")

rotation_measure fan "$TEST_TMP/dirs" "$res/rotation" "$rotations" "$TEST_TMP/values" || true
check "$rotations rotations reached all $instances instances" test -s "$res/rotation"
read -r rot_med rot_p99 < <(bench_stats "$res/rotation" 99)
plugin_many Unmount fan "$instances"
check "all fan-out instances unmounted" wait_for 60 no_instances_left
agent_stop

{
    echo
    echo "secretd agent, five figures ($(date -u +%F), load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    printf '| %-58s | %-30s |\n' "figure" "measured"
    printf '|%s|%s|\n' "------------------------------------------------------------" "--------------------------------"
    printf '| %-58s | %-30s |\n' "Mount of 10 x 4 KiB secrets on the plugin socket, median" "$mount_med ms"
    printf '| %-58s | %-30s |\n' "$parallel containers at once, all read: secretd / ro bind" \
        "$par_s / $par_b ms = $(ratio "$par_s" "$par_b")"
    printf '| %-58s | %-30s |\n' "agent RSS with $instances instances" \
        "$((rss_kb / 1024)) MiB ($rss_kb kB; $((rss_before_kb / 1024)) MiB before, $threads threads)"
    printf '| %-58s | %-30s |\n' "rotation fan-out to $instances instances, median / p99" "$rot_med / $rot_p99 ms"
    printf '| %-58s | %-30s |\n' "container start, secretd / ro tmpfs bind, median" \
        "$start_s / $start_b ms = $(ratio "$start_s" "$start_b")"
    echo
} | tee "$TEST_TMP/bench-agent.txt" | while IFS= read -r line; do diag "$line"; done

done_testing
