#!/bin/bash
# Attacks on the store (design: "The store is untrusted: ... writing it
# cannot inject, swap (name/version binding), or roll back a secret"), each
# against an agent that restarted in between, so nothing is only in memory:
#   - v2 was delivered; the store's latest file is replaced by a copy of v1
#     renamed as v3: v3 does not verify (the signature binds the version),
#     so a new Mount gets v2, the newest version that does (never v1, below
#     the floor), and the log names v3's failure; with on-unverifiable =
#     refuse the new Mount is refused; the running container keeps v2;
#   - v2 deleted, v1 left as latest (a pure rollback, 1 < delivered 2): a new
#     Mount is refused with a message naming the rollback, and the log says
#     so; the floor lives in floor-file, so it holds even after the state
#     directory is lost (a reboot clears /run) and at Create;
#   - a symlink planted in the file store as a secret's directory is refused
#     at Create with a message saying so;
#   - a store directory writable by others (0777), or a floor-file directory
#     writable by others, makes the agent refuse to start, naming the path
#     and the mode.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid sha256sum timeout

start_dockerd
busybox_image
agent_fixture

store=${SECRETD_STORE#file://}
vdir=$store/secrets/token
v1=$vdir/00000000000000000001.env
v2=$vdir/00000000000000000002.env
v3=$vdir/00000000000000000003.env

mkdir -m 0700 "$TEST_TMP/values"
printf '%s' "$SECRETD_CANARY_PREFIX-attack1-$(random_hex 24)" >"$TEST_TMP/values/one"
printf '%s' "$SECRETD_CANARY_PREFIX-attack2-$(random_hex 24)" >"$TEST_TMP/values/two"
two_sha=$(sha256_of "$TEST_TMP/values/two")
check "secretctl put token twice (v1, v2)" \
    eval 'put_secret token "$TEST_TMP/values/one" && put_secret token "$TEST_TMP/values/two"'
check "the store holds both version files" test -f "$v1" -a -f "$v2"
cp -p "$v1" "$TEST_TMP/v1.env"
cp -p "$v2" "$TEST_TMP/v2.env"

agent_start
vol=sa-$TEST_RUN_ID
check "docker volume create -o secrets=token" docker volume create -d "$AGENT_DRIVER" -o secrets=token "$vol"
c=$(docker run -d --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
reads_two() {
    local sum
    sum=$(docker exec "$c" sha256sum /run/secrets/token) && [ "${sum%% *}" = "$two_sha" ]
}
check "a running container reads v2" reads_two
run grep -F "delivered token v2" "$AGENT_LOG"
assert_eq "$status" 0 "the agent logs that it delivered token v2"
run cat "$AGENT_FLOOR"
assert_eq "$output" '{"token":2}' "the floor file records v2 as delivered"

# (agent_start runs in the main shell: inside check's $(...) the agent would
# die with the subshell.)
# new_mount_refused DESC NEEDLE: a new container on the volume does not start
# and docker's stderr carries NEEDLE from the agent.
new_mount_refused() {
    run run_busybox -v "$vol:/run/secrets" -- cat /run/secrets/token
    if [ "$status" != 0 ] && grep -q 'VolumeDriver.Mount' <<<"$output" && grep -qF -- "$2" <<<"$output"; then
        ok "$1"
    else
        fail "$1" "status $status, expected '$2' in:" "$output"
    fi
}

# ------------------------------------- v1 renamed as v3 (binding) ---------
agent_stop
cp -p "$TEST_TMP/v1.env" "$v3"
if agent_start; then ok "agent restarted over a store whose latest (v3) is v1's envelope"; else fail "agent restarted over a store whose latest (v3) is v1's envelope"; fi
run run_busybox -v "$vol:/run/secrets" -- sha256sum /run/secrets/token
assert_eq "${output%% *}" "$two_sha" "a new Mount gets v2, the newest version that verifies: v1's envelope does not verify as v3"
run grep -F "envelope is version 1, asked for 3" "$AGENT_LOG"
assert_eq "$status" 0 "the agent's log names v3's failure (the version mismatch)"
agent_stop
if agent_start --on-unverifiable refuse; then ok "agent restarted with on-unverifiable = refuse"; else fail "agent restarted with on-unverifiable = refuse"; fi
new_mount_refused "with on-unverifiable = refuse, a new Mount is refused: v1's envelope does not verify as v3" \
    "version 3: envelope is version 1, asked for 3"
run grep -F "envelope is version 1, asked for 3" "$AGENT_LOG"
assert_contains "$output" "mount " "the agent's log names the refused mount and the version mismatch"
check "the running container still reads v2" reads_two
rm -f "$v3"

# ----------------------------------------- v2 deleted (rollback) ----------
agent_stop
rm -f "$v2"
if agent_start; then ok "agent restarted over a store whose latest is v1 (v2 deleted)"; else fail "agent restarted over a store whose latest is v1 (v2 deleted)"; fi
new_mount_refused "a new Mount is refused with a message naming the rollback" \
    "the store offers version 1 but version 2 was already delivered on this host; refusing a rollback"
run grep -F "refusing a rollback" "$AGENT_LOG"
assert_contains "$output" "mount " "the agent's log says it refused a rollback at Mount"
check "the running container still reads v2 (nothing delivered is lost)" reads_two

# A reboot clears /run: the state directory goes, the floor file stays.
docker rm -f "$c" >/dev/null
check "container removed: no instance left" wait_for 20 no_instances_left
agent_stop
docker volume rm "$vol" >/dev/null 2>&1 || true
rm -rf "$AGENT_STATE"
if agent_start; then ok "agent started with an empty state directory (as after a reboot)"; else fail "agent started with an empty state directory (as after a reboot)"; fi
run docker volume create -d "$AGENT_DRIVER" -o secrets=token "sa2-$TEST_RUN_ID"
if [ "$status" != 0 ] && grep -qF "refusing a rollback" <<<"$output"; then
    ok "after the state directory is lost, Create still refuses the rollback (floor-file persists)"
else
    fail "after the state directory is lost, Create still refuses the rollback (floor-file persists)" \
        "status $status:" "$output"
fi
cp -p "$TEST_TMP/v2.env" "$v2"
check "with v2 back in the store, Create succeeds again" \
    docker volume create -d "$AGENT_DRIVER" -o secrets=token "sa2-$TEST_RUN_ID"
run run_busybox -v "sa2-$TEST_RUN_ID:/run/secrets" -- sha256sum /run/secrets/token
assert_eq "${output%% *}" "$two_sha" "... and a container reads v2"
docker volume rm "sa2-$TEST_RUN_ID" >/dev/null

# ------------------------------------------ a symlink as secret dir ---------
mkdir -m 0755 "$TEST_TMP/elsewhere"
cp -p "$TEST_TMP/v1.env" "$TEST_TMP/elsewhere/00000000000000000001.env"
ln -s "$TEST_TMP/elsewhere" "$store/secrets/planted"
run docker volume create -d "$AGENT_DRIVER" -o secrets=planted "sa3-$TEST_RUN_ID"
if [ "$status" != 0 ] && grep -qF "secrets/planted is a symbolic link; refusing to follow it" <<<"$output"; then
    ok "a symlink planted as a secret's directory is refused at Create, saying so"
else
    fail "a symlink planted as a secret's directory is refused at Create, saying so" "status $status:" "$output"
fi
run docker volume ls -q
assert_not_contains "$output" "sa3-$TEST_RUN_ID" "... and no volume is left behind"
rm -f "$store/secrets/planted"
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "SIGTERM: the agent exits 0"

# ---------------------------------------- directories open to others --------
# start_refused DESC NEEDLE ARGS...: `secretd run` exits 1 at once and says
# NEEDLE; it never serves its socket.
start_refused() {
    local desc=$1 needle=$2 driver
    shift 2
    driver=$(unique_driver_name)
    run timeout 30 "$SECRETD" run --store "$SECRETD_STORE" --driver "$driver" --key "$AGENT_KEY" \
        --realm-file "$AGENT_REALM" --state-dir "$AGENT_STATE" --docker-socket "$DOCKER_SOCK" \
        --floor-file "$AGENT_FLOOR" "$@"
    if [ "$status" = 1 ] && grep -qF -- "$needle" <<<"$output"; then
        ok "$desc"
    else
        fail "$desc" "status $status, expected '$needle' in:" "$output"
    fi
    check "$desc: no socket was served" test ! -e "/run/docker/plugins/$driver.sock"
}
chmod 0777 "$store"
start_refused "a file store directory with mode 0777 stops the agent, naming the path and mode" "$store"
assert_contains "$output" "0777" "... the message shows the mode 0777"
chmod 0700 "$store"
chmod 0777 "$store/secrets"
start_refused "a store's secrets/ with mode 0777 stops the agent, naming it and its mode" "file store '$store': secrets/ has mode 0777"
chmod 0755 "$store/secrets"
mkdir -m 0777 "$TEST_TMP/open"
chmod 0777 "$TEST_TMP/open"
start_refused "a floor-file in a directory writable by others stops the agent, naming it and its mode" \
    "floor-file $TEST_TMP/open/delivered.json: its directory is owned by uid 0 with mode 0777" \
    --floor-file "$TEST_TMP/open/delivered.json"
if agent_start; then ok "with the modes fixed the agent starts again"; else fail "with the modes fixed the agent starts again"; fi
agent_stop

cat "$TEST_TMP/values/one" >"$TEST_TMP/canaries"
printf '\n' >>"$TEST_TMP/canaries"
cat "$TEST_TMP/values/two" >>"$TEST_TMP/canaries"
assert_log_free_of "no secret value appears in the agent's log" "$TEST_TMP/canaries"

done_testing
