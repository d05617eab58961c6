#!/bin/bash
# The rollback floor fails closed (docs/agent.md "Rollback floor"): a
# container got token v2, then the store is rolled back to v1.  For each
# way the floor file can stop being trustworthy (malformed, too large, a
# symbolic link, owned by another uid) the agent still starts (so Unmounts
# and wipes go on) but:
#   - a new container on the volume is refused, and docker's message names
#     the floor file and the fix;
#   - the floor file is byte for byte what it was;
#   - v1 is never delivered.
# With the file back, v1 is refused as the rollback it is, and the running
# container kept v2 throughout.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid sha256sum truncate

start_dockerd
busybox_image
agent_fixture

store=${SECRETD_STORE#file://}
mkdir -m 0700 "$TEST_TMP/values"
printf '%s' "$SECRETD_CANARY_PREFIX-floor1-$(random_hex 24)" >"$TEST_TMP/values/one"
printf '%s' "$SECRETD_CANARY_PREFIX-floor2-$(random_hex 24)" >"$TEST_TMP/values/two"
one_sha=$(sha256_of "$TEST_TMP/values/one")
two_sha=$(sha256_of "$TEST_TMP/values/two")
check "secretctl put token twice (v1, v2)" \
    eval 'put_secret token "$TEST_TMP/values/one" && put_secret token "$TEST_TMP/values/two"'

agent_start
vol=fl-$TEST_RUN_ID
check "docker volume create -o secrets=token" docker volume create -d "$AGENT_DRIVER" -o secrets=token "$vol"
c=$(docker run -d --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
reads() {
    local sum
    sum=$(docker exec "$c" sha256sum /run/secrets/token) && [ "${sum%% *}" = "$1" ]
}
check "a running container reads v2" wait_for 20 reads "$two_sha"
run cat "$AGENT_FLOOR"
assert_eq "$output" '{"token":2}' "the floor file records v2"
cp -p "$AGENT_FLOOR" "$TEST_TMP/floor.good"
floor_sha=$(sha256_of "$AGENT_FLOOR")

# The store goes back to v1.
rm -f "$store/secrets/token/00000000000000000002.env"

# refused CASE NEEDLE: restart the agent over the floor as it is now; a new
# container is refused naming the file and NEEDLE, the file is unchanged,
# the running container keeps v2, v1 is nowhere.
refused() {
    local case=$1 needle=$2 before after
    before=$(stat -c '%F %s %u %a' "$AGENT_FLOOR")
    after=$before
    agent_stop
    local marker
    marker=$(wc -l <"$AGENT_LOG")
    if agent_start; then ok "$case: the agent starts"; else fail "$case: the agent starts"; fi
    run run_busybox -v "$vol:/run/secrets" -- sha256sum /run/secrets/token
    if [ "$status" != 0 ] && grep -qF "rollback floor $AGENT_FLOOR" <<<"$output" \
        && grep -qF -- "$needle" <<<"$output" && grep -q 'refusing to deliver secrets until it is fixed: ' <<<"$output"; then
        ok "$case: a new container is refused, naming the floor file, the reason and the fix"
    else
        fail "$case: a new container is refused, naming the floor file, the reason and the fix" \
            "status $status, expected '$needle' in:" "$output"
    fi
    assert_not_contains "$output" "$one_sha" "$case: v1 was not delivered"
    run eval 'tail -n +"$((marker + 1))" "$AGENT_LOG" | grep -F "secretd[error]: rollback floor $AGENT_FLOOR: "'
    assert_contains "$output" "$needle" "$case: the agent logged why at start"
    after=$(stat -c '%F %s %u %a' "$AGENT_FLOOR")
    assert_eq "$after" "$before" "$case: the floor file's type, size, owner and mode are unchanged"
}

printf '{"token":2,' >"$AGENT_FLOOR"
bad_sha=$(sha256_of "$AGENT_FLOOR")
refused "malformed" "not a JSON object"
assert_eq "$(sha256_of "$AGENT_FLOOR")" "$bad_sha" "malformed: byte for byte unchanged"

cp -p "$TEST_TMP/floor.good" "$AGENT_FLOOR"
truncate -s $((32 * 1024 * 1024 + 1)) "$AGENT_FLOOR"
big_sha=$(sha256_of "$AGENT_FLOOR")
refused "too large" "larger than the limit of 33554432"
assert_eq "$(sha256_of "$AGENT_FLOOR")" "$big_sha" "too large: byte for byte unchanged"

cp -p "$TEST_TMP/floor.good" "$TEST_TMP/floor.elsewhere"
rm -f "$AGENT_FLOOR"
ln -s "$TEST_TMP/floor.elsewhere" "$AGENT_FLOOR"
refused "symlink" "it is a symbolic link"
check "symlink: still a link" test -L "$AGENT_FLOOR"
assert_eq "$(sha256_of "$TEST_TMP/floor.elsewhere")" "$floor_sha" "symlink: its target is unchanged"

rm -f "$AGENT_FLOOR"
cp -p "$TEST_TMP/floor.good" "$AGENT_FLOOR"
chown 1000:1000 "$AGENT_FLOOR"
refused "owned by uid 1000" "it is owned by uid 1000"
assert_eq "$(sha256_of "$AGENT_FLOOR")" "$floor_sha" "owned by uid 1000: byte for byte unchanged"

check "the running container kept v2 throughout" reads "$two_sha"

# Fixed: the floor is trusted again, and v1 is the rollback it is.
chown 0:0 "$AGENT_FLOOR"
agent_stop
agent_start
run run_busybox -v "$vol:/run/secrets" -- sha256sum /run/secrets/token
if [ "$status" != 0 ] && grep -qF "refusing a rollback" <<<"$output"; then
    ok "with the floor file restored, v1 is refused as a rollback"
else
    fail "with the floor file restored, v1 is refused as a rollback" "status $status:" "$output"
fi
assert_eq "$(sha256_of "$AGENT_FLOOR")" "$floor_sha" "the floor file is still {\"token\":2}"

docker rm -f "$c" >/dev/null
check "the container's instance is wiped" wait_for 20 no_instances_left
agent_stop
printf '%s\n%s\n' "$(cat "$TEST_TMP/values/one")" "$(cat "$TEST_TMP/values/two")" >"$TEST_TMP/canaries"
assert_log_free_of "no secret value appears in the agent's log" "$TEST_TMP/canaries"

done_testing
