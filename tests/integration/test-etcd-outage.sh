#!/bin/bash
# The agent against a three-member etcd cluster on loopback, beside a real
# dockerd (issue 11; docs/agent.md "Store outages"):
#   - the leader is killed (SIGKILL) right after the last put of a loop, while
#     the agent fetches it (no put follows): the running container still
#     reaches that last value;
#   - all of etcd stopped: the running container keeps its secret, `secretctl
#     status` and /metrics show the store degraded (member, failovers, time
#     since the last contact), a new container starts from the local cache;
#   - a tampered cache entry is refused, with a message naming the entry;
#   - etcd back: a new put reaches both containers, and the status is ok;
#   - a second agent (its own driver name, agent key, state and cache) on the
#     same cluster: one put reaches a container of each agent.  (Both agents
#     share this test's dockerd: lib.sh runs one dockerd per test.)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd etcd dockerd docker curl setpriv setsid

start_etcd_cluster 3 || bail_out "the etcd cluster did not start"
start_dockerd
busybox_image
agent_fixture
agent_use_etcd secretd-outage "$ETCD_CLUSTER_ENDPOINTS"
values=$TEST_TMP/values
mkdir -m 0700 "$values"
canary=canary-outage-$(random_hex 24)
printf '%s\n' "$canary" >"$TEST_TMP/canaries"

put_value() {
    printf '%s' "$canary-$2" >"$values/$1"
    put_secret "$1" "$values/$1" >/dev/null
}
reads() {
    [ "$(docker exec "$1" cat /run/secrets/db 2>/dev/null)" = "$canary-$2" ]
}
status_text() {
    "$SECRETCTL" status --admin-socket "$AGENT_ADMIN_SOCK" 2>&1
}
status_says() {
    status_text | grep -q "$1"
}
metrics() {
    curl -sS --max-time 10 --unix-socket "$AGENT_ADMIN_SOCK" http://localhost/metrics
}

put_value db v1 || bail_out "the first put failed"
agent_start || bail_out "the agent did not start"
vol=eo-$TEST_RUN_ID
docker volume create -d "$AGENT_DRIVER" -o secrets=db "$vol" >/dev/null
docker run -d --name "eo1-$TEST_RUN_ID" --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600 >/dev/null
c1=eo1-$TEST_RUN_ID
if wait_for 10 reads "$c1" v1; then ok "a container started with the store up reads v1"; else fail "container 1 reads v1"; fi
entry=$(find "$AGENT_CACHE" -maxdepth 1 -name 'db.*.env' -printf '%p\n')
assert_eq "$(stat -c '%a %U' "$AGENT_CACHE") $(stat -c '%a %U' "$entry" 2>/dev/null)" "700 root 600 root" \
    "the cache keeps db's envelope ($entry) in a root-only directory"

# ------------------------------------ leader killed during the last fetch ---
t0=$EPOCHREALTIME
for i in 2 3 4 5 6 7 8 9 10; do
    put_value db "v$i" || fail "put v$i"
done
leader=$(etcd_cluster_leader) || bail_out "no leader found"
stop_etcd_member "$leader" --kill
diag "killed the leader, member $leader, right after the last put (v10)"
if wait_for 30 reads "$c1" v10; then
    ok "the running container reaches the last put, v10, across the leader's death"
else
    fail "the running container reaches v10" "$(docker exec "$c1" cat /run/secrets/db)" "$(tail -5 "$AGENT_LOG")"
fi
diag "puts v2..v10 and the leader kill until v10 was in the container: $(elapsed "$t0") s"
start_etcd_member "$leader" || bail_out "member $leader did not come back"

# ------------------------------------------------------------- outage ---
t0=$EPOCHREALTIME
stop_etcd_cluster
if wait_for 30 status_says "degraded"; then
    ok "secretctl status shows the store degraded"
else
    fail "secretctl status shows the store degraded" "$(status_text)"
fi
run status_text
assert_contains "$output" "failover(s), last contact" "status names the member, its failovers and the last contact"
run metrics
assert_contains "$output" "secretd_store_up 0" "/metrics: secretd_store_up 0"
assert_contains "$output" "secretd_store_seconds_since_contact " "/metrics: seconds since the last contact"
assert_contains "$output" "secretd_store_endpoint_info{endpoint=\"127.0.0.1:" "/metrics: the member in use"
if wait_for 5 reads "$c1" v10; then ok "the running container keeps v10 with etcd down"; else fail "container 1 keeps v10"; fi
c2=eo2-$TEST_RUN_ID
run docker run -d --name "$c2" --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600
if [ "$status" = 0 ] && wait_for 10 reads "$c2" v10; then
    ok "a new container starts from the local cache with etcd down, and reads v10"
else
    fail "a new container starts from the cache" "$output" "$(tail -5 "$AGENT_LOG")"
fi
diag "etcd down to a second container running on the cache: $(elapsed "$t0") s"
run status_text
assert_contains "$output" "1 secret(s) served from it" "status counts the secret served from the cache"
assert_contains "$(metrics)" "secretd_cache_deliveries_total 1" "/metrics counts it too"

# ---------------------------------------------------- a tampered entry ---
entry=$(find "$AGENT_CACHE" -maxdepth 1 -name 'db.*.env' -printf '%p\n')
assert_eq "${entry##*/}" "db.00000000000000000010.env" "the cache holds v10, the newest version served"
cp -p "$entry" "$TEST_TMP/entry.saved"
python3 - "$entry" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 1
open(p, 'wb').write(bytes(b))
EOF
run run_busybox -v "$vol:/run/secrets" -- cat /run/secrets/db
if [ "$status" != 0 ] && [[ "$output" == *"cache entry $entry"* ]]; then
    ok "a tampered cache entry is refused, and the message names it"
else
    fail "a tampered cache entry is refused, naming it" "status $status" "$output"
fi
assert_not_contains "$output" "$canary" "the refusal shows no value"
assert_contains "$(metrics)" 'secretd_errors_total{kind="verify"} 1' "it counts as a verify error"
cp -p "$TEST_TMP/entry.saved" "$entry"

# ---------------------------------------------------------- etcd is back ---
t0=$EPOCHREALTIME
start_etcd_cluster_again || bail_out "etcd did not come back"
put_value db v11 || fail "put v11 after the outage"
if wait_for 30 reads "$c1" v11 && wait_for 10 reads "$c2" v11; then
    ok "etcd back: a new put reaches both containers"
else
    fail "etcd back: v11 reaches both containers" "$(docker exec "$c1" cat /run/secrets/db)" \
        "$(docker exec "$c2" cat /run/secrets/db)"
fi
diag "etcd restart and a put until both containers read it: $(elapsed "$t0") s"
if wait_for 10 status_says "store: .*: ok"; then ok "status shows the store ok again"; else fail "status ok again" "$(status_text)"; fi
assert_eq "$(find "$AGENT_CACHE" -maxdepth 1 -name 'db.*.env' | wc -l)" 1 "the cache holds one entry for db, the newest"

# ----------------------------------------------------- a second agent ---
agent_save first
agent_add agent2 host2
put_value db v12 || fail "put v12 (sealed to both hosts)"
agent_start || bail_out "the second agent did not start"
vol2=eo2-$TEST_RUN_ID
docker volume create -d "$AGENT_DRIVER" -o secrets=db "$vol2" >/dev/null
c3=eo3-$TEST_RUN_ID
docker run -d --name "$c3" --network none -v "$vol2:/run/secrets" "$BUSYBOX_IMAGE" sleep 600 >/dev/null
if wait_for 10 reads "$c3" v12; then ok "the second agent serves v12"; else fail "the second agent serves v12"; fi
t0=$EPOCHREALTIME
put_value db v13 || fail "put v13"
if wait_for 20 reads "$c3" v13 && wait_for 20 reads "$c1" v13; then
    ok "one put reaches a container of each agent"
else
    fail "one put reaches a container of each agent" "$(docker exec "$c1" cat /run/secrets/db)" \
        "$(docker exec "$c3" cat /run/secrets/db)"
fi
diag "one put until both agents' containers read it: $(elapsed "$t0") s"
assert_log_free_of "the second agent's log holds no secret value" "$TEST_TMP/canaries"
docker rm -f "$c3" >/dev/null 2>&1 || true
agent_stop
agent_load first

docker rm -f "$c1" "$c2" >/dev/null 2>&1 || true
assert_log_free_of "the agent log holds no secret value" "$TEST_TMP/canaries"

done_testing
