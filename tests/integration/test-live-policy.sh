#!/bin/bash
# Realm policy changes reach running agents, against a real three-member
# etcd cluster and two hosts (two dockerds, two agents with their own keys,
# driver names and caches, both watching all three members), with no
# restart and no file edited on either host:
#   - a writer not yet in the policy fails at put time and no container
#     breaks; once an admin adds it, its put is delivered by both agents;
#   - once it is removed, a version it signed (written to the store as a
#     removed writer with store access could) is refused by both agents:
#     running containers keep the last good value, a new container gets the
#     newest version that verifies, and `secretctl status` says stale;
#   - a store that withdraws the latest policy version (offers an older one
#     than the agents verified) is refused: the agents keep the newer one.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker etcd curl jq base64

t_start=$EPOCHREALTIME
start_etcd_cluster 3 || bail_out "the etcd cluster did not start"
# Direct reads and writes (the forged version below) go to one member.
ETCD_ENDPOINT=http://${ETCD_CLUSTER_ENDPOINTS%%,*}
start_dockerd
busybox_image
agent_fixture
prefix=lp-$TEST_RUN_ID
agent_use_etcd "$prefix" "$ETCD_CLUSTER_ENDPOINTS"

# ---------------------------------------------------- the two hosts -------
# One set of the harness's docker and agent variables per host; `host a`
# and `host b` switch between them.
hostvars=(DOCKER_SOCK DOCKER_DATA_ROOT DOCKER_EXEC_ROOT DOCKERD_LOG DOCKERD_PID DOCKER_HOST
    AGENT_KEY AGENT_STATE AGENT_FLOOR AGENT_LOG AGENT_ADMIN_SOCK AGENT_AUDIT AGENT_REALM AGENT_DRIVER AGENT_SOCK
    AGENT_PUB AGENT_PID AGENT_CACHE)
declare -A saved
host_save() { local v; for v in "${hostvars[@]}"; do saved[$1.$v]=${!v}; done; }
host() {
    local v
    [ "$current" = "$1" ] && return 0
    host_save "$current"
    for v in "${hostvars[@]}"; do printf -v "$v" '%s' "${saved[$1.$v]}"; done
    export DOCKER_HOST
    current=$1
}
current=a
host_save a

# Host b: its own dockerd (sockets under a short path), key, state and
# driver name; recipient "hostb" of the same realm.
b=$TEST_TMP/b
mkdir -p "$b" "$TEST_TMP/hb"
DOCKER_SOCK=$TEST_TMP/hb/docker.sock
DOCKER_DATA_ROOT=$b/docker
DOCKER_EXEC_ROOT=$TEST_TMP/y
DOCKERD_LOG=$b/dockerd.log
DOCKERD_PID=""
export DOCKER_HOST=unix://$DOCKER_SOCK
AGENT_KEY=$b/agent.key
AGENT_STATE=$b/state
AGENT_FLOOR=$b/delivered.json
AGENT_LOG=$b/secretd.log
AGENT_ADMIN_SOCK=$b/admin.sock
AGENT_AUDIT=$b/audit.log
AGENT_REALM=$b/realm
AGENT_CACHE=$b/cache
AGENT_DRIVER=$(unique_driver_name)
AGENT_SOCK=/run/docker/plugins/$AGENT_DRIVER.sock
AGENT_PID=""
current=b
# A repeated flag: dockerd takes the last one.
start_dockerd --pidfile "$b/dockerd.pid"
# The teardown runs in this shell: each command picks its host and leaves
# host a's variables for the harness's own commands.
on_exit "host b; stop_dockerd; host a"
busybox_image
AGENT_PUB=$("$SECRETD" init --key "$AGENT_KEY" 2>"$TEST_TMP/init-b.err") \
    || bail_out "secretd init (host b) failed: $(cat "$TEST_TMP/init-b.err")"
check "recipient add hostb" eval '"$SECRETCTL" recipient add hostb "$AGENT_PUB" >/dev/null 2>&1'
agent_pin_realm

mkdir -m 0700 "$TEST_TMP/values"
value() { printf '%s' "$SECRETD_CANARY_PREFIX-lp$1-$(random_hex 24)" >"$TEST_TMP/values/$1"; }
for v in one bob three forged; do value "$v"; done
check "put db (v1)" put_secret db "$TEST_TMP/values/one"

vol=lp-$TEST_RUN_ID
declare -A ctr
for h in a b; do
    host $h
    agent_start
    check "host $h: volume create -o secrets=db" docker volume create -d "$AGENT_DRIVER" -o secrets=db "$vol"
    ctr[$h]=$(docker run -d --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
done
# Containers go while their agent still answers Unmount.
on_exit "host a; _remove_all_containers; host b; _remove_all_containers; host a"
reads() { host "$1"; [ "$(docker exec "${ctr[$1]}" cat /run/secrets/db)" = "$(cat "$TEST_TMP/values/$2")" ]; }
both_read() { reads a "$1" && reads b "$1"; }
check "both hosts' containers read db v1" both_read one
status_of() { host "$1"; "$SECRETCTL" status --admin-socket "$AGENT_ADMIN_SOCK"; }
policy_is() { status_of "$1" | grep -q "policy v$2 "; }
both_at_policy() { policy_is a "$1" && policy_is b "$1"; }
check "status shows the realm policy version (v3: realm, recipient host, recipient hostb)" both_at_policy 3

# ------------------------------------------------ a writer added -----------
bob_joins
run bob put db <"$TEST_TMP/values/bob"
assert_eq "$status" 7 "bob, not yet a writer: put fails at put time (exit 7)"
check "... and both containers still read v1" both_read one

t0=$EPOCHREALTIME
check "writer add bob" eval '"$SECRETCTL" writer add bob "$(head -n 1 "$TEST_TMP/bob.id")" >/dev/null'
check "both agents apply policy v4 live" wait_for 10 both_at_policy 4
diag "policy change to accepted by both agents: $(elapsed "$t0")s"
check "bob's put (v2) succeeds" eval 'bob put db <"$TEST_TMP/values/bob"'
check "... and is delivered by both agents, no restart, no file edited" wait_for 10 both_read bob
check "an admin's put (v3) is delivered by both" eval 'put_secret db "$TEST_TMP/values/three" && wait_for 10 both_read three'

# bob keeps a version to write later: his put to a copy of the store, made
# while he may (the copy holds the same policy chain).
"$SECRETCTL" export "$TEST_TMP/copy.archive" >/dev/null
copy=etcd://${ETCD_ENDPOINT#http://}/copy-$TEST_RUN_ID
"$SECRETCTL" --store "$copy" import "$TEST_TMP/copy.archive" >/dev/null
bob --store "$copy" realm join "$("$SECRETCTL" realm pin)" >/dev/null
check "bob puts v4 into the copy" eval 'bob --store "$copy" put db <"$TEST_TMP/values/forged" >/dev/null'

# ------------------------------------------------ the writer removed -------
check "writer rm bob" eval '"$SECRETCTL" writer rm bob >/dev/null'
check "both agents apply policy v5 live" wait_for 10 both_at_policy 5
key64() { printf '%s' "$1" | base64 -w0; }
v4key=secrets/db/$(printf '%020u' 4)
forged=$(curl -sS --max-time 10 "$ETCD_ENDPOINT/v3/kv/range" -d "{\"key\":\"$(key64 "copy-$TEST_RUN_ID/$v4key")\"}" \
    | jq -r '.kvs[0].value')
check "bob's v4 is written into the store" \
    eval 'curl -sS --max-time 10 "$ETCD_ENDPOINT/v3/kv/put" -d "{\"key\":\"$(key64 "$prefix/$v4key")\",\"value\":\"$forged\"}" >/dev/null'
refused() { host "$1"; grep -q "rotation of secret 'db' refused: secret 'db' version 4: signed by .* who is not a writer in policy v5" "$AGENT_LOG"; }
check "both agents refuse v4, signed by a removed writer" wait_for 10 eval 'refused a && refused b'
check "... running containers keep v3, the last good value" both_read three
for h in a b; do
    host $h
    out=$(docker run --rm --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" cat /run/secrets/db)
    assert_eq "$out" "$(cat "$TEST_TMP/values/three")" "host $h: a new container gets v3, the newest that verifies"
    run status_of $h
    assert_contains "$output" "stale:     db: newest v4 does not verify, serving v3" "host $h: secretctl status says db is stale"
    check "host $h: the stale delivery is audited" grep -q '"event":"deliver".*"version":3.*not a writer in policy v5' "$AGENT_AUDIT"
done

# ------------------------------------------ an older policy offered -------
# The store withdraws policy v5: it now offers v4 as its latest.
curl -sS --max-time 10 "$ETCD_ENDPOINT/v3/kv/deleterange" \
    -d "{\"key\":\"$(key64 "$prefix/policy/$(printf '%020u' 5)")\"}" >/dev/null
older_refused() { host "$1"; grep -q "realm policy changed in the store but cannot be verified now: .*v4.*v5\|realm policy changed in the store but cannot be verified now: .*v5.*v4" "$AGENT_LOG"; }
check "both agents refuse the older policy, naming both versions" wait_for 10 eval 'older_refused a && older_refused b'
check "... and keep policy v5" both_at_policy 5
check "... so bob's v4 is still refused: containers read v3" both_read three

check "no value in either agent's log" \
    eval '! grep -aqF -f <(cat "$TEST_TMP"/values/*) "$TEST_TMP/agent/secretd.log" "$b/secretd.log"'
host a
diag "test body: $(elapsed "$t_start")s"
done_testing
