#!/bin/bash
# Where the time of a Mount goes: an agent (the built $SECRETD) beside a
# real dockerd serves M Mount/Unmount pairs of a volume of 10 secrets of
# 4 KiB on its plugin socket, twice:
#   1. sampled by `perf record -g` (CPU: where on-CPU time goes, by
#      function, children included; valgrind cannot run the agent: it does
#      not know the new mount API);
#   2. traced by `strace -f -c` (system calls: count and time, which is
#      where a Mount waits).
# The state directory is a tmpfs, as /run/secretd is.  Profile files stay
# in $TEST_TMP (kept with SECRETD_TEST_KEEP=1); nothing is asserted about
# time.  Environment: SECRETD_PROFILE_MOUNTS (50), SECRETD_PROFILE_TOP (30).

# shellcheck source=../integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=../integration/agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/agent-lib.sh"
# shellcheck source=bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid perf strace

mounts=${SECRETD_PROFILE_MOUNTS:-50}
top=${SECRETD_PROFILE_TOP:-30}

start_dockerd
agent_fixture
AGENT_LOG_LEVEL=info
mkdir -p "$AGENT_STATE"
mount -t tmpfs -o mode=0700,size=64m secretd-profile-state "$AGENT_STATE"
mkdir -m 0700 "$TEST_TMP/values"
list=$(put_random_secrets p 10)

# profiled LABEL CMD...: with CMD attached to the agent (its pid appended),
# create a volume and run the Mount/Unmount pairs, then stop CMD with
# SIGINT.
profiled() {
    local label=$1 i id bad=0 pid
    shift
    "$@" "$AGENT_PID" >"$TEST_TMP/$label.attach" 2>&1 &
    pid=$!
    register_pid "$pid" "$label"
    sleep 1 # perf and strace attach asynchronously; a missed first Mount does not matter
    plugin_call Create "{\"Name\":\"p10-$label\",\"Opts\":{\"secrets\":\"$list\"}}" >/dev/null
    for i in $(seq "$mounts"); do
        id=$(random_hex 64)
        plugin_call Mount "{\"Name\":\"p10-$label\",\"ID\":\"$id\"}" | grep -q Mountpoint || bad=$((bad + 1))
        plugin_call Unmount "{\"Name\":\"p10-$label\",\"ID\":\"$id\"}" >/dev/null
    done
    kill -INT "$pid"
    wait "$pid" || true
    assert_eq "$bad" 0 "$label: $mounts Mounts of 10 secrets succeeded"
}

AGENT_ARGS=(--audit-log "")
agent_start
profiled perf perf record -F 4999 -g -o "$TEST_TMP/perf.data" -p
check "perf wrote its profile" test -s "$TEST_TMP/perf.data"
profiled strace strace -f -c -o "$TEST_TMP/strace.out" -p
check "strace wrote its summary" test -s "$TEST_TMP/strace.out"
agent_stop

{
    echo "perf: on-CPU samples of the agent by function, children included, top $top"
    perf report -i "$TEST_TMP/perf.data" --stdio --children --sort symbol -g none 2>/dev/null \
        | grep -E '^ +[0-9]' | head -n "$top" || true
    echo
    echo "strace -f -c: system calls of the agent during the Mounts, top $top by time"
    head -n $((top + 2)) "$TEST_TMP/strace.out" || true
} >"$TEST_TMP/profile.txt"
while IFS= read -r line; do diag "$line"; done <"$TEST_TMP/profile.txt"

done_testing
