#!/bin/bash
# The etcd store backend against a real etcd (Debian's etcd-server 3.4):
#   - secretctl put/get/ls/history/rm round trip on etcd://127.0.0.1:PORT/secretd-test;
#   - two secretctl processes racing 30 puts each on one name leave versions
#     1..60, no gap, no duplicate, every payload exactly once;
#   - keys planted through the gateway: a sibling prefix never shows up, a
#     key of a foreign shape inside the prefix is reported and skipped;
#   - the raw values in etcd hold no plaintext (canary);
#   - an envelope over etcd's request limit fails as "too large";
#   - etcd stopped: secretctl fails fast (exit 1) saying "unreachable";
#     restarted: nothing lost;
#   - the watch (etcd-watch-driver): a put is reported, the stream survives
#     an etcd restart, and a resume point lost to compaction makes it report
#     every name;
#   - the agent serves a container from the etcd store (and, when the agent
#     watches the store, a put reaches the running container).

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd etcd curl base64 setpriv setsid
: "${ETCD_WATCH_DRIVER:?ETCD_WATCH_DRIVER must name the built etcd-watch-driver (meson sets it)}"

# A 1 MiB request limit (etcd's default is 1.5 MiB) puts the largest
# envelope secretctl can make (a 1 MiB value) over it.
start_etcd -- --max-request-bytes=1048576
agent_fixture
PREFIX=secretd-test
agent_use_etcd "$PREFIX"
STORE=$SECRETD_STORE

b64() { printf '%s' "$1" | base64 -w0; }
# etcdctl-free access to the raw store, as an attacker with etcd access has.
gateway() { curl -sS --max-time 10 "$ETCD_ENDPOINT/v3/kv/$1" -d "$2"; }
raw_put() { gateway put "{\"key\":\"$(b64 "$1")\",\"value\":\"$(b64 "$2")\"}" >/dev/null; }
raw_delete() { gateway deleterange "{\"key\":\"$(b64 "$1")\"}" >/dev/null; }

# ------------------------------------------------------------ round trip ----
canary=canary-etcd-$(random_hex 24)
values=$TEST_TMP/values
mkdir -m 0700 "$values"
printf '%s' "$canary-v1" >"$values/v1"
printf '%s' "$canary-v2" >"$values/v2"

check "put db (version 1) on $STORE" put_secret db "$values/v1"
run "$SECRETCTL" get db
assert_eq "$output" "$canary-v1" "get db returns version 1's value"
check "put db again (version 2)" put_secret db "$values/v2"
run "$SECRETCTL" get db
assert_eq "$output" "$canary-v2" "get db returns the latest value"
run "$SECRETCTL" get db --version 1
assert_eq "$output" "$canary-v1" "get db --version 1 still returns the first value"
run "$SECRETCTL" ls
assert_contains "$output" "db    2        active" "ls shows db at version 2, active"
run "$SECRETCTL" history db
assert_eq "$(awk 'NR > 1 { printf "%s %s %s;", $1, $2, $5 }' <<<"$output")" "1 value ok;2 value ok;" \
    "history db lists versions 1 and 2, both verified"
run "$SECRETCTL" rm db
assert_eq "$status" 0 "rm db writes a tombstone"
run "$SECRETCTL" ls
assert_contains "$output" "db    3        deleted" "ls shows db deleted at version 3"
run "$SECRETCTL" get db
assert_eq "$status" 3 "get of a deleted secret exits 3 (not found)"
run "$SECRETCTL" get nosuch
assert_eq "$status" 3 "get of a missing secret exits 3"

# ------------------------------------------------------------- no plaintext --
gateway range "{\"key\":\"$(b64 "$PREFIX/")\",\"range_end\":\"$(b64 "${PREFIX}0")\"}" >"$TEST_TMP/raw.json"
python3 - "$TEST_TMP/raw.json" >"$TEST_TMP/raw.values" <<'EOF'
import base64, json, sys
for kv in json.load(open(sys.argv[1])).get("kvs", []):
    sys.stdout.buffer.write(base64.b64decode(kv["key"]) + b"\n" + base64.b64decode(kv.get("value", "")) + b"\n")
EOF
raw_keys=$(grep -c "^$PREFIX/" "$TEST_TMP/raw.values" || true)
if [ "$raw_keys" -ge 4 ] && ! grep -qF "$canary" "$TEST_TMP/raw.values"; then
    ok "etcd holds $raw_keys keys under the prefix and none holds the plaintext canary"
else
    fail "no plaintext in etcd" "keys: $raw_keys" "$(grep -F "$canary" "$TEST_TMP/raw.values" | head -3)"
fi

# ------------------------------------------------------------ racing puts ---
racer() {
    local tag=$1 i
    for i in $(seq 30); do
        printf '%s' "race-$tag-$i" >"$values/race-$tag"
        "$SECRETCTL" put race <"$values/race-$tag" >/dev/null 2>>"$TEST_TMP/racer-$tag.err" || return 1
    done
}
t0=$EPOCHREALTIME
racer a &
pid_a=$!
racer b &
pid_b=$!
race_status=0
wait "$pid_a" || race_status=1
wait "$pid_b" || race_status=1
diag "60 racing puts took $(elapsed "$t0") s"
assert_eq "$race_status" 0 "two secretctl processes each put 'race' 30 times without an error"
run "$SECRETCTL" history race
assert_eq "$(awk 'NR > 1 { print $1 }' <<<"$output" | tr '\n' ' ')" "$(seq 1 60 | tr '\n' ' ')" \
    "history race is exactly 1..60: no gap, no duplicate"
payloads=$TEST_TMP/payloads
: >"$payloads"
for v in $(seq 1 60); do
    "$SECRETCTL" get race --version "$v" >>"$payloads" 2>>"$TEST_TMP/get-race.err" || echo "get $v failed" >>"$payloads"
    echo >>"$payloads"
done
expected=$( (for i in $(seq 30); do echo "race-a-$i"; echo "race-b-$i"; done) | sort)
assert_eq "$(sort "$payloads")" "$expected" "each of the 60 payloads is stored in exactly one version"

# --------------------------------------------------------- planted keys -----
sibling_key=${PREFIX}-other/secrets/planted/00000000000000000001
raw_put "$sibling_key" "junk"
raw_put "${PREFIX}x/recipients/evil" "junk"
run "$SECRETCTL" ls
assert_not_contains "$output" "planted" "a key under a sibling prefix (${PREFIX}-other/) never shows up in ls"
run "$SECRETCTL" recipient ls
assert_not_contains "$output" "evil" "a recipient under a sibling prefix (${PREFIX}x/) never shows up"

raw_put "$PREFIX/secrets/race/not-a-version" "junk"
raw_put "$PREFIX/secrets/bad..name/00000000000000000001" "junk"
run "$SECRETCTL" ls
assert_contains "$output" "etcd key '$PREFIX/secrets/race/not-a-version': the version is not 20 digits; skipped" \
    "ls reports a planted key of a foreign shape inside the prefix"
assert_contains "$output" "not a valid secret name; skipped" "ls reports a planted key with an invalid name"
assert_contains "$output" "race  60" "ls still lists race at version 60 beside them"
run "$SECRETCTL" get race
assert_eq "$(tail -n 1 <<<"$output")" "$(sed -n 60p "$payloads")" \
    "get race still returns version 60 (the planted key sorts after it and is skipped)"
raw_delete "$PREFIX/secrets/race/not-a-version"
raw_delete "$PREFIX/secrets/bad..name/00000000000000000001"

# -------------------------------------------------------------- too large ---
# 1 MiB of random bytes is within secretd's value limit; its envelope is
# over the 1 MiB request limit this etcd was started with.
head -c $((1024 * 1024)) /dev/urandom >"$values/big"
run "$SECRETCTL" put big <"$values/big"
if [ "$status" != 0 ] && [[ "$output" == *"too large"* ]]; then
    ok "an envelope over etcd's request limit fails as too large ($status)"
else
    fail "an envelope over etcd's request limit fails as too large" "status $status" "$output"
fi
run "$SECRETCTL" history big
assert_eq "$status" 3 "and nothing was stored for it"

# ------------------------------------------------------------------ watch ---
spawn watch "$ETCD_WATCH_DRIVER" "$STORE"
watch_pid=$SPAWN_PID
watch_log=$TEST_TMP/watch.log
wait_for 10 grep -qx ready "$watch_log" || diag_file "$watch_log"
printf 'w1' >"$values/w"
put_secret watched "$values/w" >/dev/null
if wait_for 10 grep -qx "changed watched" "$watch_log"; then
    ok "the watch reports a put"
else
    fail "the watch reports a put" "$(cat "$watch_log")"
fi

# -------------------------------------------------------------- outage ------
stop_etcd
t0=$EPOCHREALTIME
run "$SECRETCTL" ls
took=$(elapsed "$t0")
assert_eq "$status" 1 "with etcd stopped, secretctl ls exits 1"
assert_contains "$output" "is unreachable" "and says etcd is unreachable"
if awk -v t="$took" 'BEGIN { exit !(t < 5) }'; then
    ok "and fails fast (${took} s)"
else
    fail "and fails fast" "took ${took} s"
fi
run "$SECRETCTL" put db <"$values/v1"
assert_eq "$status" 1 "a put during the outage exits 1"
wait_for 10 grep -q "reconnecting" "$watch_log" || true
assert_contains "$(cat "$watch_log")" "reconnecting" "the watch reports the lost stream"
# A watcher that starts during the outage (an agent booting before etcd).
spawn watch2 "$ETCD_WATCH_DRIVER" "$STORE"
watch2_log=$TEST_TMP/watch2.log
if wait_for 10 grep -qx ready "$watch2_log"; then
    ok "a watch can start while etcd is down"
else
    fail "a watch can start while etcd is down" "$(cat "$watch2_log")"
fi

restart_etcd
run "$SECRETCTL" history race
assert_eq "$(awk 'NR > 1 { print $1 }' <<<"$output" | tr '\n' ' ')" "$(seq 1 60 | tr '\n' ' ')" \
    "after the restart, race still has versions 1..60"
run "$SECRETCTL" get db --version 2
assert_eq "$output" "$canary-v2" "and db version 2 still decrypts"
if wait_for 15 grep -qx "changed race" "$watch2_log"; then
    ok "once etcd answers, that watch reports every name (it cannot know what changed)"
else
    fail "the watch started during the outage reports every name" "$(cat "$watch2_log")"
fi
wait_for 15 grep -q "restored" "$watch_log" || true
printf 'w2' >"$values/w"
put_secret watched "$values/w" >/dev/null
if wait_for 15 sh -c "[ \$(grep -cx 'changed watched' '$watch_log') -ge 2 ]"; then
    ok "the watch resumes after the etcd restart and reports the next put"
else
    fail "the watch resumes after the etcd restart" "$(cat "$watch_log")"
fi

# Compaction: freeze the watcher, restart etcd under it (its stream dies),
# write and compact past its resume point, then let it go on.  It must find
# its revision compacted and report every name, including unchanged ones.
kill -STOP "$watch_pid"
restart_etcd
# Two revisions, so that the compaction point lies past the resume point
# (a watch may start at the compaction revision itself).
for v in w3 w4; do
    printf '%s' "$v" >"$values/w"
    put_secret watched "$values/w" >/dev/null
done
rev=$(gateway range "{\"key\":\"$(b64 "$PREFIX/")\",\"count_only\":true}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
gateway compaction "{\"revision\":\"$rev\",\"physical\":true}" >/dev/null
kill -CONT "$watch_pid"
if wait_for 20 grep -q "compacted" "$watch_log" && wait_for 10 sh -c "[ \$(grep -cx 'changed race' '$watch_log') -ge 1 ]"; then
    ok "after a compaction past its resume point the watch reports every name (race, unchanged, too)"
else
    fail "the watch handles compaction" "$(cat "$watch_log")"
fi

# ------------------------------------------------------------------ agent ---
if ! command -v dockerd >/dev/null; then
    skip "the agent serves a container from etcd" "no dockerd"
else
    start_dockerd
    busybox_image
    printf '%s' "$canary-agent-v1" >"$values/agent"
    put_secret agent_secret "$values/agent" >/dev/null
    agent_start
    vol=ev-$TEST_RUN_ID
    docker volume create -d "$AGENT_DRIVER" -o secrets=agent_secret "$vol" >/dev/null
    run run_busybox -v "$vol:/run/secrets" -- cat /run/secrets/agent_secret
    assert_eq "$output" "$canary-agent-v1" "the agent on $STORE delivers a secret into a container"

    if grep -qs sd_store_watch_fd "$SECRETD_SOURCE_ROOT"/agent/*.c; then
        docker run -d --name "ew-$TEST_RUN_ID" --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" \
            sleep 300 >/dev/null
        printf '%s' "$canary-agent-v2" >"$values/agent"
        put_secret agent_secret "$values/agent" >/dev/null
        if wait_for 15 sh -c "[ \"\$(docker exec ew-$TEST_RUN_ID cat /run/secrets/agent_secret)\" = '$canary-agent-v2' ]"; then
            ok "a put on etcd reaches the running container"
        else
            fail "a put on etcd reaches the running container" \
                "$(docker exec "ew-$TEST_RUN_ID" cat /run/secrets/agent_secret)"
        fi
        docker rm -f "ew-$TEST_RUN_ID" >/dev/null 2>&1 || true
    else
        skip "a put on etcd reaches the running container" "the agent does not watch the store yet"
    fi
    printf '%s\n' "$canary" >"$TEST_TMP/canaries-agent"
    assert_log_free_of "the agent log holds no secret value" "$TEST_TMP/canaries-agent"
fi

done_testing
