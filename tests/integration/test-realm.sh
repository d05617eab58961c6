#!/bin/bash
# The realm as the agent sees it, against a real dockerd and a real etcd:
#   - a put sealed under a newer policy version than the agent holds (a
#     writer added after the agent started) makes the agent verify the
#     chain again and deliver, without a restart;
#   - an envelope copied from another realm's store is refused by the agent,
#     at rotation and at Mount, naming both realms; running containers keep
#     their value, a new container gets the newest version that verifies,
#     and status shows the secret stale;
#   - a store that offers an older policy version than the agent verified
#     (the latest policy file withdrawn) stops the agent at start-up, naming
#     both versions; with the file back it starts;
#   - `secretctl realm pin | secretd join -` pins like `secretd join PIN`;
#   - export from the file store, import into etcd: every policy version and
#     secret version byte for byte, values identical; a flipped byte in the
#     archive is refused naming the entry, and nothing reaches etcd.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker etcd curl jq python3 setpriv setsid sha256sum base64 timeout

start_dockerd
busybox_image
agent_fixture
store=${SECRETD_STORE#file://}

# The pin can be piped, as docs/secretctl.md shows over ssh.
pipe_join() { "$SECRETCTL" realm pin | "$SECRETD" join --realm-file "$TEST_TMP/agent/realm-piped" -; }
run pipe_join
assert_eq "$status" 0 "secretctl realm pin | secretd join - writes the realm file"
check "... the same pin as secretd join PIN" \
    eval 'diff <(grep -v "^#" "$AGENT_REALM") <(grep -v "^#" "$TEST_TMP/agent/realm-piped")'
check "... root-owned, mode 0644" eval '[ "$(stat -c "%u %a" "$TEST_TMP/agent/realm-piped")" = "0 644" ]'

mkdir -m 0700 "$TEST_TMP/values"
value() { printf '%s' "$SECRETD_CANARY_PREFIX-realm$1-$(random_hex 24)" >"$TEST_TMP/values/$1"; }
for v in one two three bob staging; do value "$v"; done
check "put db (v1)" put_secret db "$TEST_TMP/values/one"
agent_start

vol=rl-$TEST_RUN_ID
check "docker volume create -o secrets=db" docker volume create -d "$AGENT_DRIVER" -o secrets=db "$vol"
c=$(docker run -d --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
reads() { [ "$(docker exec "$c" cat /run/secrets/db)" = "$(cat "$TEST_TMP/values/$1")" ]; }
check "a running container reads db v1" reads one

# ---------------------------------------------- a newer policy, live -------
bob_joins
run bob put db <"$TEST_TMP/values/bob"
assert_eq "$status" 7 "a writer not yet in the policy: put fails at put time (exit 7)"
check "... and nothing was stored (db is still at v1)" test ! -e "$store/secrets/db/00000000000000000002.env"
check "... and the container still reads v1" reads one
"$SECRETCTL" writer add bob "$(head -n 1 "$TEST_TMP/bob.id")" >/dev/null
run bob put db <"$TEST_TMP/values/bob"
assert_eq "$status" 0 "once added, bob's put is stored"
check "the agent (started under an older policy) delivers bob's version" wait_for 10 reads bob
check "... after verifying the chain again up to policy v3 (its state file says v3)" \
    jq -e '.version == 3' "$TEST_TMP/agent/realm-state.json"

# --------------------------------------- an envelope from another realm ----
staging=file://$TEST_TMP/staging
"$SECRETCTL" --store "$staging" realm init >/dev/null 2>&1
"$SECRETCTL" --store "$staging" recipient add host "$AGENT_PUB" >/dev/null 2>&1
"$SECRETCTL" --store "$staging" put db <"$TEST_TMP/values/staging" >/dev/null
staging_realm=$("$SECRETCTL" --store "$staging" realm show --json | jq -r .realm | cut -c1-16)
prod_realm=$("$SECRETCTL" realm show --json | jq -r .realm | cut -c1-16)
cp "$TEST_TMP/staging/secrets/db/00000000000000000001.env" "$store/secrets/db/.copy.tmp"
mv "$store/secrets/db/.copy.tmp" "$store/secrets/db/00000000000000000003.env"
refused_copy() { grep -q "belongs to realm $staging_realm, the pinned realm is $prod_realm" "$AGENT_LOG"; }
check "the agent refuses the copied envelope at rotation, naming both realms" wait_for 10 refused_copy
check "... and the running container keeps bob's version" reads bob
run docker run --rm --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" cat /run/secrets/db
assert_eq "$output" "$(cat "$TEST_TMP/values/bob")" \
    "a new container gets bob's version, the newest that verifies (on-unverifiable = previous)"
run "$SECRETCTL" status --admin-socket "$AGENT_ADMIN_SOCK"
assert_contains "$output" "stale:     db: newest v3 does not verify, serving v2" "... and secretctl status says db is stale"
assert_contains "$output" "belongs to realm $staging_realm, the pinned realm is $prod_realm" \
    "... naming both realms"
rm -f "$store/secrets/db/00000000000000000003.env"
docker rm -f "$c" >/dev/null
docker volume rm "$vol" >/dev/null

# --------------------------------- an older policy than the agent saw -----
agent_stop
latest=$(find "$store/policy" -name '*.env' | sort | tail -n 1)
mv "$latest" "$TEST_TMP/withdrawn.env"
run timeout 30 "$SECRETD" run --store "$SECRETD_STORE" --driver "$(unique_driver_name)" --key "$AGENT_KEY" \
    --realm-file "$AGENT_REALM" --state-dir "$AGENT_STATE" --docker-socket "$DOCKER_SOCK" \
    --floor-file "$AGENT_FLOOR" --admin-socket "$AGENT_ADMIN_SOCK" --audit-log ""
assert_eq "$status" 1 "with the latest policy file withdrawn the agent refuses to start"
assert_contains "$output" "the store offers policy v2" "... naming the version offered"
assert_contains "$output" "older than v3 already verified" "... and the one it verified"
mv "$TEST_TMP/withdrawn.env" "$latest"
if agent_start; then ok "with the file back the agent starts"; else fail "with the file back the agent starts"; fi
agent_stop

# --------------------------------------------- export, import into etcd ----
start_etcd
etcd_store=etcd://${ETCD_ENDPOINT#http://}/realm-$TEST_RUN_ID
"$SECRETCTL" put other <"$TEST_TMP/values/three" >/dev/null
archive=$TEST_TMP/store.archive
run "$SECRETCTL" export "$archive"
assert_eq "$status" 0 "secretctl export from the file store"
run "$SECRETCTL" --store "$etcd_store" import "$archive"
assert_eq "$status" 0 "secretctl import into etcd"
assert_contains "$output" "imported into $etcd_store" "... says where"
for name in db other; do
    run diff <("$SECRETCTL" history "$name" --json) <("$SECRETCTL" --store "$etcd_store" history "$name" --json)
    assert_eq "$status" 0 "history of $name is identical in etcd"
    run cmp <("$SECRETCTL" get "$name") <("$SECRETCTL" --store "$etcd_store" get "$name")
    assert_eq "$status" 0 "the value of $name is identical in etcd"
done
"$SECRETCTL" --store "$etcd_store" export "$TEST_TMP/again.archive" >/dev/null
run cmp <(tail -n +2 "$archive") <(tail -n +2 "$TEST_TMP/again.archive")
assert_eq "$status" 0 "exported again from etcd, every entry (policies, envelopes, signatures) is byte-identical"

# One bit flipped inside other's envelope.
line=$(grep -n '"name":"other"' "$archive" | cut -d: -f1)
python3 - "$archive" "$TEST_TMP/bad.archive" <<'EOF'
import sys
data = bytearray(open(sys.argv[1], 'rb').read())
at = data.index(b'"name":"other"') + 60
data[at] ^= 1
open(sys.argv[2], 'wb').write(data)
EOF
bad_store=etcd://${ETCD_ENDPOINT#http://}/bad-$TEST_RUN_ID
run "$SECRETCTL" --store "$bad_store" import "$TEST_TMP/bad.archive"
assert_eq "$status" 5 "an archive with a flipped byte is refused (exit 5)"
assert_contains "$output" "archive line $line" "... naming the entry's line"
run curl -sS --max-time 10 "$ETCD_ENDPOINT/v3/kv/range" \
    -d "{\"key\":\"$(printf '%s' "bad-$TEST_RUN_ID/" | base64 -w0)\",\"range_end\":\"$(printf '%s' "bad-${TEST_RUN_ID}0" | base64 -w0)\",\"count_only\":true}"
assert_not_contains "$output" '"count"' "... and nothing reached etcd"

check "no value in the agent log" eval '! grep -aqF -f <(cat "$TEST_TMP"/values/*) "$AGENT_LOG"'
done_testing
