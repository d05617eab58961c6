#!/bin/bash
# Plaintext does not linger in the agent's memory:
#   - the agent is non-dumpable, yet root (CAP_SYS_PTRACE) reads its whole
#     address space through /proc/PID/maps + /proc/PID/mem (memscan.py);
#     a positive control (the driver name) proves the scan sees the heap;
#   - after a delivery (a container read a canary secret) the canary is
#     nowhere in the agent's memory: heap, every thread's stack, the
#     sodium_malloc guarded pages, libraries' data;
#   - after a second container got the value copied from the first one's
#     tmpfs, it is not there either;
#   - after a rotation (a put of a second canary while the container runs,
#     seen inside) neither canary is there;
#   - the same after the container stops (its tmpfs wiped).

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid python3
# An AddressSanitizer agent maps terabytes of shadow memory; reading it all
# through /proc/PID/mem takes longer than the test's timeout.  The plain
# build (run first by tests/run-all.sh) runs this test.
if grep -qa __asan_init "${SECRETD:?}"; then
    skip_all "the agent is an AddressSanitizer build; the plain build scans its memory"
fi

MEMSCAN=$(dirname "${BASH_SOURCE[0]}")/memscan.py

start_dockerd
busybox_image
agent_fixture

mkdir -m 0700 "$TEST_TMP/values"
canary1=$SECRETD_CANARY_PREFIX-mem1-$(random_hex 32)
canary2=$SECRETD_CANARY_PREFIX-mem2-$(random_hex 32)
printf '%s' "$canary1" >"$TEST_TMP/values/token"
check "secretctl put token (canary 1)" put_secret token "$TEST_TMP/values/token"

agent_start

# scan DESC PATTERN...: one test point per pattern that must be absent;
# the driver name must be present (the scan reached the agent's heap).
scan() {
    local desc=$1 i=0 p out
    shift
    { echo "$AGENT_DRIVER"; printf '%s\n' "$@"; } >"$TEST_TMP/patterns"
    out=$(python3 "$MEMSCAN" "$AGENT_PID" "$TEST_TMP/patterns" 2>&1) || {
        fail "$desc: memscan ran" "$out"
        return
    }
    diag "$desc: $(tail -n 1 <<<"$out")"
    if grep -q '^pattern 0: [1-9]' <<<"$out"; then
        ok "$desc: the scan finds the driver name in the agent's memory (control)"
    else
        fail "$desc: the scan finds the driver name in the agent's memory (control)" "$out"
    fi
    for p in "$@"; do
        i=$((i + 1))
        if grep -q "^pattern $i: 0 hit" <<<"$out"; then
            ok "$desc: canary $i is nowhere in the agent's memory"
        else
            fail "$desc: canary $i is nowhere in the agent's memory" "$(grep "^pattern $i:" <<<"$out")"
        fi
    done
}

assert_eq "$(stat -c %u "/proc/$AGENT_PID/mem") $(awk '/^Uid:/ { print $2 }' "/proc/$AGENT_PID/status")" "0 0" \
    "the agent runs as root; /proc/PID/mem is root's (non-dumpable)"

run docker volume create -d "$AGENT_DRIVER" -o secrets=token v-mem
assert_eq "$status" 0 "docker volume create"
c=$(docker run -d --network none -v v-mem:/run/secrets "$BUSYBOX_IMAGE" sleep 600) || c=""
reads() { [ "$(docker exec "$c" cat /run/secrets/token)" = "$1" ]; }
check "the container reads canary 1" wait_for 20 reads "$canary1"

scan "after delivery" "$canary1"

# A second container of the same volume gets the file copied from the
# first one's tmpfs (the envelope was verified before): the copy passes
# through the agent (its seccomp filter refuses sendfile) and must not
# stay there either.
c2=$(docker run -d --network none -v v-mem:/run/secrets "$BUSYBOX_IMAGE" sleep 600) || c2=""
check "a second container reads canary 1" wait_for 20 eval '[ "$(docker exec "$c2" cat /run/secrets/token)" = "$canary1" ]'
check "... copied, not opened again" grep -q "fetch of secret 'token' ended: ok, verified before" "$AGENT_LOG"
scan "after a copy from a live instance" "$canary1"
docker rm -f "$c2" >/dev/null

# Rotation: a put while the container runs.
printf '%s' "$canary2" >"$TEST_TMP/values/token"
check "secretctl put token (canary 2)" put_secret token "$TEST_TMP/values/token"
check "the running container reads canary 2 (rotation)" wait_for 30 reads "$canary2"
scan "after rotation" "$canary1" "$canary2"

run docker stop -t 1 "$c"
check "the container's instance is wiped after it stops" wait_for 20 no_instances_left
scan "after the container stopped" "$canary1" "$canary2"

docker rm "$c" >/dev/null 2>&1 || true
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "SIGTERM: the agent exits 0"
done_testing
