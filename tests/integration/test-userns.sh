#!/bin/bash
# secretd under dockerd --userns-remap=default:
#   - the agent learns the remap from dockerd (GET /info) and chowns each
#     file to the host id that the container sees as the asked uid/gid
#     (dockremap's first /etc/subuid and /etc/subgid range + uid);
#   - inside, `stat` shows uid 1000 / gid 1000 and mode 0400, and a process
#     running as uid 1000 (docker run --user 1000) reads the value, while
#     uid 1001 cannot;
#   - on the host the files belong to base+1000, not to 1000.
# Without remap nothing changes: test-plugin checks uid 1000 there.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid sha256sum

start_dockerd --userns-remap=default
busybox_image
agent_fixture

# dockerd created dockremap and its ranges (useradd + usermod -v/-w).
first_range() { awk -F: '$1 == "dockremap" { print $2, $3; exit }' "$1"; }
read -r ubase ucount <<<"$(first_range /etc/subuid)" || true
read -r gbase gcount <<<"$(first_range /etc/subgid)" || true
diag "dockremap: uids $ubase+$ucount, gids $gbase+$gcount"
if [ -z "$ubase" ] || [ -z "$gbase" ]; then
    bail_out "dockerd --userns-remap=default left no dockremap range in /etc/subuid or /etc/subgid"
fi
run docker info --format '{{json .SecurityOptions}}'
assert_contains "$output" "name=userns" "docker info lists name=userns"

secrets_dir=$TEST_TMP/values
mkdir -m 0700 "$secrets_dir"
canary=$SECRETD_CANARY_PREFIX-userns-$(random_hex 24)
printf '%s' "$canary" >"$secrets_dir/token"
printf '%s\n' "$canary" >"$TEST_TMP/canaries"
check "secretctl put token" put_secret token "$secrets_dir/token"

agent_start

vol=uv-$TEST_RUN_ID
run docker volume create -d "$AGENT_DRIVER" -o secrets=token -o uid=1000 -o gid=1000 -o mode=0400 "$vol"
assert_eq "$status" 0 "docker volume create -o uid=1000 -o gid=1000 -o mode=0400"
[ "$status" = 0 ] || diag "$output"

c=$(docker run -d --network none --user 1000:1000 -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600) || c=""
check "a container with --user 1000:1000 and the volume starts" test -n "$c"

run docker exec "$c" stat -L -c '%a %u %g' /run/secrets/token
assert_eq "$output" "400 1000 1000" "inside: token is mode 0400 owned by 1000:1000"
run docker exec "$c" cat /run/secrets/token
if [ "$status" = 0 ] && [ "$output" = "$canary" ]; then
    ok "inside: uid 1000 reads the value"
else
    fail "inside: uid 1000 reads the value" "exit $status, $(wc -c <<<"$output") bytes"
fi
run docker exec --user 1001:1001 "$c" cat /run/secrets/token
assert_eq "$status" 1 "inside: uid 1001 cannot read it (mode 0400)"
assert_contains "$output" "ermission denied" "... Permission denied"

id=$(container_instance "$c") || id=""
host_file=$AGENT_STATE/instances/$id/rw/token
run stat -L -c '%u %g' "$host_file"
assert_eq "$output" "$((ubase + 1000)) $((gbase + 1000))" "on the host the file belongs to dockremap's base + 1000"
check "the agent logged the remap" grep -q "user namespace remap: uid 1000 -> $((ubase + 1000))" "$AGENT_LOG"

# A rotation writes a new file: it must get the mapped owner too.
canary2=$SECRETD_CANARY_PREFIX-userns-$(random_hex 24)
printf '%s' "$canary2" >"$secrets_dir/token"
printf '%s\n' "$canary2" >>"$TEST_TMP/canaries"
check "secretctl put token (rotation)" put_secret token "$secrets_dir/token"
reads_new_value() { [ "$(docker exec "$c" cat /run/secrets/token 2>/dev/null)" = "$canary2" ]; }
check "inside: uid 1000 reads the rotated value" wait_for 10 reads_new_value
run docker exec "$c" stat -L -c '%a %u %g' /run/secrets/token
assert_eq "$output" "400 1000 1000" "inside: the rotated token is still mode 0400 owned by 1000:1000"

run docker stop -t 1 "$c"
check "after the container stops its instance is gone" wait_for 20 no_instances_left
docker rm "$c" >/dev/null 2>&1 || true
run docker volume rm "$vol"
assert_eq "$status" 0 "docker volume rm"

assert_log_free_of "the value never appears in the agent's log" "$TEST_TMP/canaries"
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "SIGTERM: the agent exits 0"
done_testing
