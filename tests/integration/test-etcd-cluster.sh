#!/bin/bash
# The etcd store against a three-member cluster on loopback (one cluster for
# every case of this file):
#   - two secretctl writers loop 25 puts each on one name through
#     etcd://m0,m1,m2/prefix while the leader is killed (SIGKILL) and later
#     restarted: the versions have no gap and no duplicate, and every
#     payload is stored exactly once;
#   - a watch pointed at all three members survives the death of the member
#     it is connected to: it resumes on another one from the last revision
#     (no full resync), reports the latest version, and the store's health
#     shows the new member and the failover.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
require_cmd etcd curl setpriv setsid
: "${ETCD_WATCH_DRIVER:?ETCD_WATCH_DRIVER must name the built etcd-watch-driver (meson sets it)}"

start_etcd_cluster 3 || bail_out "the etcd cluster did not start"
PREFIX=secretd-test
STORE=etcd://$ETCD_CLUSTER_ENDPOINTS/$PREFIX
export SECRETD_STORE=$STORE
export XDG_CONFIG_HOME=$TEST_TMP/config
mkdir -m 0700 "$XDG_CONFIG_HOME"
"$SECRETCTL" keygen >/dev/null 2>&1 || bail_out "keygen failed"
"$SECRETCTL" realm init >"$TEST_TMP/realm.out" 2>&1 || bail_out "realm init failed: $(cat "$TEST_TMP/realm.out")"
agent_pub=$("$SECRETD" init --key "$TEST_TMP/agent.key" 2>/dev/null) || bail_out "secretd init failed"
"$SECRETCTL" recipient add host "$agent_pub" >"$TEST_TMP/recipient.out" 2>&1 \
    || bail_out "recipient add failed: $(cat "$TEST_TMP/recipient.out")"
values=$TEST_TMP/values
mkdir -m 0700 "$values"

spawn watch "$ETCD_WATCH_DRIVER" --versions "$STORE"
watch_pid=$SPAWN_PID
wait_for 10 grep -qx ready "$TEST_TMP/watch.log" || bail_out "the watch driver did not start"

# ------------------------------------------- writers across a leader kill ---
PUTS=25
# A put that fails (every member unavailable during the election) is tried
# again; the store never reports a put as failed when it was stored (it
# reads an unknown outcome back), so a retry cannot store a payload twice.
writer() {
    local tag=$1 i try
    for i in $(seq "$PUTS"); do
        printf '%s' "race-$tag-$i" >"$values/race-$tag"
        for try in $(seq 100); do
            if "$SECRETCTL" put race <"$values/race-$tag" >/dev/null 2>>"$TEST_TMP/writer-$tag.err"; then
                break
            fi
            echo "retry $i" >>"$TEST_TMP/writer-$tag.retries"
            sleep 0.1
        done
        [ "$try" -lt 100 ] || return 1
        echo "$i" >>"$TEST_TMP/writer-$tag.done"
    done
}
progress() { [ "$(cat "$TEST_TMP"/writer-*.done 2>/dev/null | wc -l)" -ge "$1" ]; }

t0=$EPOCHREALTIME
writer a &
pid_a=$!
writer b &
pid_b=$!
wait_for 60 progress 10 || diag "writers are slow"
leader=$(etcd_cluster_leader) || bail_out "no leader found"
stop_etcd_member "$leader" --kill
diag "killed the leader, member $leader, after $(cat "$TEST_TMP"/writer-*.done | wc -l) puts"
if wait_for 60 progress 30; then
    ok "puts go on with the leader dead (two members left)"
else
    fail "puts go on with the leader dead" "$(tail -3 "$TEST_TMP"/writer-*.err)"
fi
start_etcd_member "$leader" || bail_out "member $leader did not come back"
writers_status=0
wait "$pid_a" || writers_status=1
wait "$pid_b" || writers_status=1
diag "$((2 * PUTS)) puts across the leader's death took $(elapsed "$t0") s," \
    "$(cat "$TEST_TMP"/writer-*.retries 2>/dev/null | wc -l) retried"
assert_eq "$writers_status" 0 "both writers stored all $PUTS of their values"

run "$SECRETCTL" history race
assert_eq "$(awk 'NR > 1 { print $1 }' <<<"$output" | tr '\n' ' ')" "$(seq 1 $((2 * PUTS)) | tr '\n' ' ')" \
    "history race is exactly 1..$((2 * PUTS)): no gap, no duplicate"
payloads=$TEST_TMP/payloads
: >"$payloads"
for v in $(seq 1 $((2 * PUTS))); do
    "$SECRETCTL" get race --version "$v" >>"$payloads" 2>>"$TEST_TMP/get-race.err" || echo "get $v failed" >>"$payloads"
    echo >>"$payloads"
done
expected=$( (for i in $(seq "$PUTS"); do echo "race-a-$i"; echo "race-b-$i"; done) | sort)
assert_eq "$(sort "$payloads")" "$expected" "each of the $((2 * PUTS)) payloads is stored in exactly one version"
if wait_for 20 grep -qx "changed race $((2 * PUTS))" "$TEST_TMP/watch.log"; then
    ok "the watch saw the last version, $((2 * PUTS))"
else
    fail "the watch saw the last version" "$(tail -5 "$TEST_TMP/watch.log")"
fi

# ------------------------------------ kill the member the watch is using ---
connected=$(awk '/^health/ { e = $2 } END { print e }' "$TEST_TMP/watch.log")
member=$(etcd_member_of_endpoint "$connected") || bail_out "the watch's member $connected is not ours"
failovers_before=$(awk '/^health/ { f = $3 } END { print f }' "$TEST_TMP/watch.log")
stop_etcd_member "$member" --kill
diag "killed member $member ($connected), the one the watch used"
for i in 1 2 3 4 5; do
    printf '%s' "watched-$i" >"$values/w"
    "$SECRETCTL" put watched <"$values/w" >/dev/null || fail "put watched $i with member $member dead"
done
if wait_for 20 grep -qx "changed watched 5" "$TEST_TMP/watch.log"; then
    ok "the watch resumed on another member and reports version 5"
else
    fail "the watch resumed on another member and reports version 5" "$(tail -8 "$TEST_TMP/watch.log")"
fi
assert_contains "$(cat "$TEST_TMP/watch.log")" "resuming from revision" \
    "it resumed from the last revision seen"
assert_not_contains "$(cat "$TEST_TMP/watch.log")" "reporting every secret" \
    "without falling back to a full report (no event was lost)"
last=$(awk '/^health/ { print $2, $3, $4 } ' "$TEST_TMP/watch.log" | tail -n 1)
read -r now_endpoint now_failovers now_reachable <<<"$last"
if [ "$now_endpoint" != "$connected" ] && [ "$now_failovers" -gt "$failovers_before" ] && [ "$now_reachable" = reachable ]; then
    ok "sd_store_health: now on $now_endpoint, $now_failovers failover(s), reachable"
else
    fail "sd_store_health shows the failover" "before: $connected $failovers_before" "after: $last"
fi
start_etcd_member "$member" || bail_out "member $member did not come back"
kill -TERM "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true

done_testing
