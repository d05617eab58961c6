#!/bin/bash
# Container start latency with a secretd volume, against a real dockerd.
#
# Table 1: `docker run --rm -v VOL:/run/secrets IMAGE cat /run/secrets/x`
#   with VOL a secretd volume, vs. the same container with a host tmpfs
#   directory bind-mounted read-only at /run/secrets.  N runs each (default
#   30), interleaved, after 3 unmeasured warm-ups of each.  Two times per run:
#   "to first read" (docker run started -> the secret's first line arrives on
#   stdout) and "whole run" (until `docker run --rm` returns, container
#   removed).  Median, p90 (nearest rank) and the secretd/bind ratio.
# Table 2: the plugin alone, straight on its socket: /VolumeDriver.Mount and
#   /VolumeDriver.Unmount for a volume of 1, 10, 64 and 100 secrets of 4 KiB
#   each (each Mount makes, fills and binds a fresh tmpfs), M runs each
#   (default 20), timed by curl (time_total).  A volume size the agent
#   refuses at Create (docs/agent.md: at most 128 secrets per volume) shows
#   as a row saying so.
#
# Environment: SECRETD_BENCH_RUNS (30), SECRETD_BENCH_MOUNT_RUNS (20),
# SECRETD_BENCH_MOUNT_SIZES ("1 10 64 100").
# Prints tables; asserts nothing about time.

# shellcheck source=../integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=../integration/agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/agent-lib.sh"
# shellcheck source=bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid

runs=${SECRETD_BENCH_RUNS:-30}
mount_runs=${SECRETD_BENCH_MOUNT_RUNS:-20}
mount_sizes=${SECRETD_BENCH_MOUNT_SIZES:-1 10 64 100}

start_dockerd
busybox_image
agent_fixture
AGENT_LOG_LEVEL=info
AGENT_ARGS=(--max-size 16m)

# -------------------------------------------------------------- helpers -----

# stats FILE: "median p90" in ms (values in FILE are microseconds).
stats() { bench_stats "$1" 90; }

# ------------------------------------------------- table 1: docker run -------

bench_value=bench-$(random_hex 32)
printf '%s\n' "$bench_value" >"$TEST_TMP/bench-value"
check "secretctl put x" put_secret x "$TEST_TMP/bench-value"
agent_start
vol=bench-$TEST_RUN_ID
check "docker volume create -d <driver> -o secrets=x" \
    docker volume create -d "$AGENT_DRIVER" -o secrets=x "$vol"

# The baseline: what an operator would otherwise hand-roll, a host tmpfs with
# the file, bound read-only.
host_dir=$TEST_TMP/host-secrets
mkdir "$host_dir"
mount -t tmpfs -o size=64k,mode=0755,nosuid,nodev,noexec bench-baseline "$host_dir"
on_exit "umount '$host_dir' 2>/dev/null || true"
install -m 0400 "$TEST_TMP/bench-value" "$host_dir/x"

res=$TEST_TMP/results
mkdir "$res"
failures=$(interleaved_starts "$res/secretd" "$vol:/run/secrets" "$res/bind" "$host_dir:/run/secrets:ro" "$runs" 3 \
    "$bench_value")
assert_eq "$failures" 0 "$runs interleaved runs each read the secret every time"
check "no instance is left after the runs" wait_for 20 no_instances_left

read -r s_first_med s_first_p90 < <(stats "$res/secretd.first")
read -r b_first_med b_first_p90 < <(stats "$res/bind.first")
read -r s_total_med s_total_p90 < <(stats "$res/secretd.total")
read -r b_total_med b_total_p90 < <(stats "$res/bind.total")

# --------------------------------------- table 2: Mount on the plugin socket -

mount_table=()
for n in $mount_sizes; do
    names=()
    for i in $(seq "$n"); do
        name=m${n}_$i
        head -c 3072 /dev/urandom | base64 -w0 | head -c 4096 >"$TEST_TMP/bench-v"
        put_secret "$name" "$TEST_TMP/bench-v" >/dev/null
        names+=("$name")
    done
    list=$(IFS=,; echo "${names[*]}")
    vname=mount-$n-$TEST_RUN_ID
    plugin_call Create "{\"Name\":\"$vname\",\"Opts\":{\"secrets\":\"$list\",\"size\":\"2m\"}}" >"$TEST_TMP/reply"
    if reply_ok "$TEST_TMP/reply"; then
        ok "Create a volume of $n secrets of 4 KiB on the plugin socket"
    elif grep -q 'more than [0-9]* secrets' "$TEST_TMP/reply"; then
        # A documented limit, not a failure of the benchmark.
        skip "Create a volume of $n secrets of 4 KiB on the plugin socket" "$(cat "$TEST_TMP/reply")"
        mount_table+=("$(printf '| %7s | %-59s |' "$n" "refused at Create: $(grep -o 'more than [0-9]* secrets' "$TEST_TMP/reply")")")
        continue
    else
        fail "Create a volume of $n secrets of 4 KiB on the plugin socket" "$(cat "$TEST_TMP/reply")"
        continue
    fi
    : >"$res/mount-$n"
    : >"$res/unmount-$n"
    bad=0
    for i in $(seq "$mount_runs"); do
        id=$(random_hex 64)
        t=$(curl -sS --max-time 130 --unix-socket "$AGENT_SOCK" -o "$TEST_TMP/reply" -w '%{time_total}' \
            -X POST --data-binary "{\"Name\":\"$vname\",\"ID\":\"$id\"}" http://localhost/VolumeDriver.Mount)
        if reply_ok "$TEST_TMP/reply" && [ "$(find "$AGENT_STATE/instances/$id/rw" -maxdepth 1 -name 'm*' 2>/dev/null | wc -l)" = "$n" ]; then
            awk -v t="$t" 'BEGIN { printf "%d\n", t * 1000000 }' >>"$res/mount-$n"
        else
            bad=$((bad + 1))
            diag "Mount $n: $(cat "$TEST_TMP/reply")"
        fi
        t=$(curl -sS --max-time 70 --unix-socket "$AGENT_SOCK" -o "$TEST_TMP/reply" -w '%{time_total}' \
            -X POST --data-binary "{\"Name\":\"$vname\",\"ID\":\"$id\"}" http://localhost/VolumeDriver.Unmount)
        if reply_ok "$TEST_TMP/reply"; then
            awk -v t="$t" 'BEGIN { printf "%d\n", t * 1000000 }' >>"$res/unmount-$n"
        else
            bad=$((bad + 1))
            diag "Unmount $n: $(cat "$TEST_TMP/reply")"
        fi
    done
    assert_eq "$bad" 0 "$mount_runs Mount/Unmount pairs with $n secrets all succeeded (all $n files present)"
    plugin_call Remove "{\"Name\":\"$vname\"}" >/dev/null || true
    read -r m_med m_p90 < <(stats "$res/mount-$n")
    read -r u_med u_p90 < <(stats "$res/unmount-$n")
    mount_table+=("$(printf '| %7s | %11s | %11s | %13s | %13s |' "$n" "$m_med" "$m_p90" "$u_med" "$u_p90")")
done
check "no instance is left after the Mount/Unmount runs" no_instances_left

# ----------------------------------------------------------------- report ----
{
    echo
    echo "Container start, $runs runs each, interleaved (ms; p90 = nearest rank)"
    echo
    printf '| %-38s | %8s | %8s | %10s | %10s |\n' "docker run --rm ... cat /run/secrets/x" "median" "p90" "whole med" "whole p90"
    printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..40})" "----------" "----------" "------------" "------------"
    printf '| %-38s | %8s | %8s | %10s | %10s |\n' "secretd volume" "$s_first_med" "$s_first_p90" "$s_total_med" "$s_total_p90"
    printf '| %-38s | %8s | %8s | %10s | %10s |\n' "host tmpfs bind-mounted :ro" "$b_first_med" "$b_first_p90" "$b_total_med" "$b_total_p90"
    printf '| %-38s | %8s | %8s | %10s | %10s |\n' "ratio secretd / bind" \
        "$(ratio "$s_first_med" "$b_first_med")" "$(ratio "$s_first_p90" "$b_first_p90")" \
        "$(ratio "$s_total_med" "$b_total_med")" "$(ratio "$s_total_p90" "$b_total_p90")"
    echo
    echo "(median/p90: docker run started -> first line of the secret read; whole: until docker run --rm returned)"
    echo
    echo "Plugin socket, $mount_runs runs each, secrets of 4 KiB (ms, curl time_total)"
    echo
    printf '| %7s | %11s | %11s | %13s | %13s |\n' "secrets" "Mount med" "Mount p90" "Unmount med" "Unmount p90"
    printf '|---------|-------------|-------------|---------------|---------------|\n'
    for row in "${mount_table[@]}"; do echo "$row"; done
    echo
} | tee "$TEST_TMP/bench-start.txt"

docker volume rm "$vol" >/dev/null || true
done_testing
