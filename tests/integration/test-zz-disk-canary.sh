#!/bin/bash
# Plaintext never reaches a disk (design.md: "never ... disk, except tmpfs
# delivery").  Runs last in the integration suite (meson priority -100).
#
# Part 1, on its own: a full cycle with a fresh canary: dockerd + the agent
# with a file store, a container gets the secret, a put rotates it while
# the container runs, the container stops, the agent stops.  Then the
# canary must be absent from the store, the agent's state dir and log, its
# audit log, dockerd's data root, exec root and log.  Controls: the value
# file the test itself wrote does contain it (the grep works), and the
# store is not empty.
#
# Part 2, after the suite: every test's values look like
# "$SECRETD_CANARY_PREFIX-<word>-<24+ hex>" (agent-lib.sh).  That shape must
# not appear in the test cache, /run/secretd, /var/lib/docker, the build's
# meson logs, or in agent logs, agent state and docker data roots of any
# test dir left in /tmp (kept runs; a test's own value files are inputs, not
# leaks, and are skipped).

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid grep find

# grep_tree PATTERN_KIND PATTERN PATH...: prints the files holding PATTERN
# (-F fixed or -E extended), never the matching text.
grep_tree() {
    local kind=$1 pattern=$2
    shift 2
    local existing=() p
    for p in "$@"; do
        [ -e "$p" ] && existing+=("$p")
    done
    [ ${#existing[@]} -gt 0 ] || return 0
    # -a binary files as text, -l names only, -s quiet about sockets and
    # vanished files; -D skip devices, fifos and sockets.
    grep -r -a -l -s -D skip "$kind" -e "$pattern" "${existing[@]}" || true
}

# ============================================ part 1: one full cycle ======
start_dockerd
busybox_image
agent_fixture
AUDIT_LOG=$TEST_TMP/agent/audit.log
AGENT_ARGS=(--audit-log "$AUDIT_LOG" --admin-socket "$TEST_TMP/agent/admin.sock")

mkdir -m 0700 "$TEST_TMP/values"
canary1=$SECRETD_CANARY_PREFIX-disk1-$(random_hex 32)
canary2=$SECRETD_CANARY_PREFIX-disk2-$(random_hex 32)
printf '%s\n' "$canary1" >"$TEST_TMP/values/token"
check "secretctl put token (canary 1)" put_secret token "$TEST_TMP/values/token"
agent_start

run docker volume create -d "$AGENT_DRIVER" -o secrets=token v-disk
assert_eq "$status" 0 "docker volume create"
c=$(docker run -d --network none -v v-disk:/run/secrets "$BUSYBOX_IMAGE" sleep 600) || c=""
reads() { [ "$(docker exec "$c" cat /run/secrets/token)" = "$1" ]; }
check "the container reads canary 1" wait_for 20 reads "$canary1"
printf '%s\n' "$canary2" >"$TEST_TMP/values/token"
check "secretctl put token (canary 2)" put_secret token "$TEST_TMP/values/token"
check "the running container reads canary 2 (rotation)" wait_for 30 reads "$canary2"
run docker stop -t 1 "$c"
check "the container's instance is wiped after it stops" wait_for 20 no_instances_left
docker rm "$c" >/dev/null 2>&1 || true
run docker volume rm v-disk
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "the agent stops cleanly"
stop_dockerd

# Controls: the grep finds what is there, and there is something to search.
assert_eq "$(grep_tree -F "$canary2" "$TEST_TMP/values")" "$TEST_TMP/values/token" \
    "control: the grep finds canary 2 in the test's own value file"
check "control: the store holds envelopes" test -n "$(find "$TEST_TMP/store" -type f -print -quit)"
check "control: the agent's state dir and log exist" test -d "$AGENT_STATE" -a -s "$AGENT_LOG"

places=("$TEST_TMP/store" "$AGENT_STATE" "$AGENT_LOG" "$AUDIT_LOG" "$DOCKER_DATA_ROOT" "$DOCKER_EXEC_ROOT"
    "$DOCKERD_LOG" "$TEST_TMP/config")
diag "searching $(du -sch "${places[@]}" 2>/dev/null | tail -n 1 | cut -f1) in: ${places[*]}"
for i in 1 2; do
    var=canary$i
    hits=$(grep_tree -F "${!var}" "${places[@]}")
    if [ -z "$hits" ]; then
        ok "canary $i is in none of the store, state dir, agent and audit logs, docker data/exec root and log"
    else
        fail "canary $i is in none of the store, state dir, agent and audit logs, docker data/exec root and log" \
            "found in:" "$hits"
    fi
done
# Not the value's base64 either (a JSON body that carried it would).
b64=$(printf '%s\n' "$canary2" | base64 -w0)
hits=$(grep_tree -F "${b64:0:40}" "${places[@]}")
assert_eq "$hits" "" "nor its base64"

# ============================================ part 2: after the suite =====
shape="$SECRETD_CANARY_PREFIX-[A-Za-z0-9]+-[0-9a-f]{24}"
build_root=$(cd "$(dirname "$SECRETD")/.." && pwd)
suite_places=("${SECRETD_TEST_CACHE:-/tmp/secretd-test-cache}" /run/secretd /var/lib/docker /var/lib/secretd /var/log/secretd
    "$build_root/meson-logs")
# Test dirs under /tmp (kept runs, or ones whose teardown is still going):
# their agent state, agent and audit logs, dockerd data root and logs.
for d in /tmp/secretd-test.*; do
    [ -d "$d" ] && [ "$d" != "$TEST_TMP" ] || continue
    suite_places+=("$d/agent" "$d/docker" "$d/dockerd.log")
    while IFS= read -r f; do
        suite_places+=("$f")
    done < <(find "$d" -maxdepth 2 -name '*.log' -type f 2>/dev/null)
done
# Plain files directly under /tmp and /var/log (a debug dump, a stray log).
while IFS= read -r f; do
    suite_places+=("$f")
done < <(find /tmp /var/log -maxdepth 1 -type f 2>/dev/null)
# A running test's delivered files are on its instance tmpfs (source
# "secretd"): that is where values belong, not a disk.
instance_mounts=$(awk '{ for (i = 7; $i != "-"; i++); if ($(i + 1) == "tmpfs" && $(i + 2) == "secretd") print $5 }' \
    /proc/self/mountinfo)
on_instance_tmpfs() {
    local m
    while IFS= read -r m; do
        [ -n "$m" ] && [[ "$1" == "$m/"* ]] && return 0
    done <<<"$instance_mounts"
    return 1
}
hits=""
while IFS= read -r f; do
    [ -n "$f" ] && [[ "$f" != "$TEST_TMP/"* ]] && ! on_instance_tmpfs "$f" && hits+="$f"$'\n'
done < <(grep_tree -E "$shape" "${suite_places[@]}" | sort -u)
hits=${hits%$'\n'}
if [ -z "$hits" ]; then
    ok "no test canary ($shape) in the test cache, /run/secretd, /var/lib/docker, meson logs, test dirs' agent and docker files, /tmp, /var/log"
else
    fail "no test canary ($shape) in the test cache, /run/secretd, /var/lib/docker, meson logs, test dirs' agent and docker files, /tmp, /var/log" \
        "found in:" "$hits"
fi
done_testing
