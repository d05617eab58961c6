#!/bin/bash
# Rotation into running containers (design.md points 3 and 4; agent/rotate.h):
#   - a put while a container runs is readable inside within seconds, and
#     the container is not restarted;
#   - a reader that resolves ..data once (`cd /run/secrets/..data`) never
#     reads a cert and key of different versions over 200+ rotations;
#   - a container labelled secretd.reload-signal=SIGHUP gets exactly one
#     SIGHUP per (spaced) rotation, and a handful for a burst of 10 puts;
#   - a forged envelope written straight into the store leaves the previous
#     value in place, and is logged and audited;
#   - `secretctl rm`: the file keeps its last value by default (warning),
#     and disappears with -o on-delete=remove;
#   - after agent kill -9 and restart, a put still reaches the container.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid dd

start_dockerd
busybox_image
agent_fixture

AUDIT_LOG=$TEST_TMP/agent/audit.log
AGENT_ARGS=(--audit-log "$AUDIT_LOG" --admin-socket "$TEST_TMP/agent/admin.sock")
mkdir -m 0700 "$TEST_TMP/values"

# put_value NAME VALUE: the value goes through a 0600 file, never argv.
put_value() {
    printf '%s\n' "$2" >"$TEST_TMP/values/$1"
    put_secret "$1" "$TEST_TMP/values/$1" >/dev/null
}

for s in token pair reload gone other; do
    put_value "$s" "$s-1"
done
agent_start

check "volumes created" eval '
    docker volume create -d "$AGENT_DRIVER" -o secrets=token v-token >/dev/null &&
    docker volume create -d "$AGENT_DRIVER" -o secrets=pair:cert,pair:key v-pair >/dev/null &&
    docker volume create -d "$AGENT_DRIVER" -o secrets=reload v-reload >/dev/null &&
    docker volume create -d "$AGENT_DRIVER" -o secrets=gone,other -o on-delete=remove v-gone >/dev/null'

c_token=$(docker run -d --network none -v v-token:/run/secrets "$BUSYBOX_IMAGE" sleep 600)
# The reader resolves ..data once per pair (cd), reads cert and key with the
# shell's read builtin (no fork between them), and counts pairs whose
# stamps differ; /tmp/stop ends it and /tmp/result holds the counts.
c_pair=$(docker run -d --network none -v v-pair:/run/secrets "$BUSYBOX_IMAGE" sh -c '
    n=0; bad=0; fail=0; seen=0; last=
    while [ ! -e /tmp/stop ]; do
        if cd /run/secrets/..data 2>/dev/null && read -r c <cert && read -r k <key; then
            n=$((n + 1))
            [ "$c" = "$k" ] || bad=$((bad + 1))
            [ "$c" = "$last" ] || { seen=$((seen + 1)); last=$c; }
        else
            fail=$((fail + 1))
        fi
        cd /
    done
    echo "$n $bad $fail $seen" >/tmp/result.tmp && mv /tmp/result.tmp /tmp/result
    sleep 600')
# PID 1 is this shell: its trap is its handler (no --init needed).
c_reload=$(docker run -d --network none --label secretd.reload-signal=SIGHUP -v v-reload:/run/secrets \
    "$BUSYBOX_IMAGE" sh -c 'n=0; echo 0 >/tmp/hups; trap '\''n=$((n + 1)); echo $n >/tmp/hups'\'' HUP
        while :; do sleep 1 & wait $!; done')
c_gone=$(docker run -d --network none -v v-gone:/run/secrets "$BUSYBOX_IMAGE" sleep 600)

reads() {  # reads CONTAINER FILE VALUE
    [ "$(docker exec "$1" cat "/run/secrets/$2" 2>/dev/null)" = "$3" ]
}
check "every container reads its first values" eval '
    reads "$c_token" token token-1 && reads "$c_pair" cert pair-1 && reads "$c_pair" key pair-1 &&
    reads "$c_reload" reload reload-1 && reads "$c_gone" gone gone-1 && reads "$c_gone" other other-1'

# ---- a put reaches a running container, which keeps running ----
started=$(docker inspect -f '{{.State.StartedAt}}' "$c_token")
t0=$EPOCHREALTIME
put_value token token-2
check "a put is readable inside the running container within 5 s" wait_for 5 reads "$c_token" token token-2
diag "token-2 seen inside after $(elapsed "$t0") s (docker exec polling included)"
assert_eq "$(docker inspect -f '{{.State.StartedAt}}' "$c_token")" "$started" "the container was not restarted"
assert_contains "$(cat "$AGENT_LOG")" "secret 'token' version 2" "the rotation is logged"

# ---- reload signals, spaced rotations ----
hups() {
    docker exec "$c_reload" cat /tmp/hups 2>/dev/null
}
hups_is() {
    [ "$(hups)" = "$1" ]
}
linked() {
    grep -lq "\"ContainerID\":\"$c_reload\"" "$AGENT_STATE"/mounts/*.json 2>/dev/null
}
check "the labelled container's instance is linked to it" wait_for 15 linked
for i in 2 3 4; do
    put_value reload "reload-$i"
    check "spaced rotation $i: the value is readable" wait_for 5 reads "$c_reload" reload "reload-$i"
    check "spaced rotation $i: SIGHUP number $((i - 1)) arrived" wait_for 5 hups_is $((i - 1))
done

# ---- multi-file atomicity under 200 rotations ----
pair_id=$(container_instance "$c_pair") || pair_id=""
pair_ro=$AGENT_STATE/instances/$pair_id/ro
check "the reader's instance is found ($pair_id)" test -n "$pair_id" -a -d "$pair_ro"
host_reads() {
    [ "$(cat "$pair_ro/cert" 2>/dev/null)" = "$1" ]
}
gen_before=$(readlink "$pair_ro/..data")
t0=$EPOCHREALTIME
missed=0
for i in $(seq 2 211); do
    put_value pair "pair-$i"
    # Wait for each rotation (host side, cheap), so each put is one
    # generation and none is coalesced with the next.
    wait_for 5 host_reads "pair-$i" || missed=$((missed + 1))
done
rot_seconds=$(elapsed "$t0")
gen_after=$(readlink "$pair_ro/..data")
assert_eq "$missed" 0 "each of 210 puts became visible within 5 s"
gens=$((10#${gen_after#..g} - 10#${gen_before#..g}))
check "at least 200 generations were published ($gens in $rot_seconds s)" test "$gens" -ge 200
docker exec "$c_pair" touch /tmp/stop
result_ready() {
    docker exec "$c_pair" test -s /tmp/result
}
check "the reader finished" wait_for 10 result_ready
read -r n bad fail seen <<<"$(docker exec "$c_pair" cat /tmp/result)"
diag "reader: $n pairs read, $bad mismatched, $fail failed reads, $seen distinct versions seen"
assert_eq "$bad" 0 "cert and key read through one ..data always carry the same version"
check "the reader saw many versions ($seen) and read many pairs ($n)" test "$seen" -ge 20 -a "$n" -ge 200
check "at most two generations exist in the instance" \
    test "$(find "$pair_ro" -maxdepth 1 -name '..g*' | wc -l)" -le 2

# ---- a forged envelope never replaces a good file ----
store_dir=${SECRETD_STORE#file://}/secrets/token
latest=$(find "$store_dir" -name '*.env' -printf '%f\n' | sort | tail -n 1)
v=$((10#${latest%.env}))
next=$(printf '%020d.env' $((v + 1)))
cp "$store_dir/$latest" "$TEST_TMP/forged"
size=$(stat -c %s "$TEST_TMP/forged")
off=$((size / 2))
byte=$(dd if="$TEST_TMP/forged" bs=1 skip="$off" count=1 2>/dev/null)
if [ "$byte" = A ]; then repl=B; else repl=A; fi
printf '%s' "$repl" | dd of="$TEST_TMP/forged" bs=1 seek="$off" count=1 conv=notrunc 2>/dev/null
# Renamed into place, as a writer's put would be (the watch sees IN_MOVED_TO).
cp "$TEST_TMP/forged" "$store_dir/.forged.tmp"
mv "$store_dir/.forged.tmp" "$store_dir/$next"
refused() {
    grep -q "rotation of secret 'token' refused" "$AGENT_LOG"
}
check "the forged version $((v + 1)) is refused with a warning" wait_for 5 refused
grep "rotation of secret 'token' refused" "$AGENT_LOG" | head -n 2 | while IFS= read -r line; do diag "log: $line"; done
check "the container still reads the previous value" reads "$c_token" token token-2
audit_refused() {
    grep -q '"event":"refuse".*"secret":"token"' "$AUDIT_LOG"
}
check "the refusal is audited" wait_for 2 audit_refused
check "the refusal is counted (secretd_refusals_total > 0)" eval \
    'curl -sS --unix-socket "$TEST_TMP/agent/admin.sock" http://localhost/metrics | grep -Eq "^secretd_refusals_total [1-9]"'
put_value token token-3
check "a good put after the forged one is delivered" wait_for 5 reads "$c_token" token token-3

# ---- tombstones ----
check "no extra SIGHUP arrived meanwhile (still 3)" hups_is 3
"$SECRETCTL" rm token >/dev/null 2>&1
deleted_warned() {
    grep -q "secret 'token' was deleted" "$AGENT_LOG"
}
check "secretctl rm: the agent warns" wait_for 5 deleted_warned
check "secretctl rm: the file keeps its last value by default" reads "$c_token" token token-3
"$SECRETCTL" rm gone >/dev/null 2>&1
gone_removed() {
    ! docker exec "$c_gone" test -e /run/secrets/gone
}
check "secretctl rm with on-delete=remove: the file disappears" wait_for 5 gone_removed
check "... and the volume's other file stays" reads "$c_gone" other other-1
put_value other other-2
check "... and later rotations of the other secret still work" wait_for 5 reads "$c_gone" other other-2

# ---- a burst of puts is coalesced into a few signals ----
# The ten puts must land inside the debounce window whatever the machine's
# speed (one put under ASan on a loaded host takes longer than the window),
# so the agent is paused while they are written: it then finds them all
# waiting, as it would after ten puts from a fast writer.
kill -STOP "$AGENT_PID"
for i in $(seq 5 14); do
    put_value reload "reload-$i"
done
kill -CONT "$AGENT_PID"
check "burst: the last value is readable" wait_for 5 reads "$c_reload" reload reload-14
hups_above_3() {
    [ "$(hups)" -gt 3 ]
}
check "burst: at least one SIGHUP arrived" wait_for 5 hups_above_3

# ---- agent crash and restart ----
agent_stop --kill
agent_start
put_value pair pair-restart
check "after kill -9 and restart, a put reaches the running container" \
    wait_for 5 reads "$c_pair" cert pair-restart

# Checked last: the burst's debounce (at most 1 s) is long over.
burst=$(($(hups) - 3))
diag "burst of 10 puts gave $burst SIGHUP(s)"
check "burst: between 1 and 4 SIGHUPs for 10 quick puts ($burst)" test "$burst" -ge 1 -a "$burst" -le 4

check "no value in the agent log" eval '! grep -Eq "(token|pair|reload|gone|other)-[0-9]+" "$AGENT_LOG"'

done_testing
