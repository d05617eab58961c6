#!/bin/bash
# Socket activation (secretd.socket, docs/agent.md "Socket activation"),
# with systemd-socket-activate standing in for systemd as PID 1:
#   - the plugin and admin sockets exist before the agent runs;
#   - a dockerd started after them, while no agent runs, finds the plugin:
#     the first `docker volume create` starts the agent, which takes both
#     sockets from LISTEN_FDS, and a container reads its secret (Mount);
#   - the admin API answers on the passed admin socket, and `secretctl
#     status --config FILE` finds it through the file's admin-socket (a file
#     others can write, a misspelt key, a missing file: refused);
#   - a stopped agent leaves the sockets in place (systemd owns them);
#   - a passed socket at a path the configuration does not name stops the
#     agent with a message naming both.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid systemd-socket-activate

agent_fixture
canary=canary-activate-$(random_hex 24)
printf '%s' "$canary" >"$TEST_TMP/value"
printf '%s\n' "$canary" >"$TEST_TMP/canaries"
check "secretctl put db_password" put_secret db_password "$TEST_TMP/value"

# systemd-socket-activate [-l PATH]... -- secretd run FLAGS: it binds and
# listens, and execs the agent (same pid) at the first connection.
activate() {
    local listen=()
    while [ "$1" != -- ]; do
        listen+=(-l "$1")
        shift
    done
    shift
    _agent_flags "$@"
    echo "=== activate $(date -u +%FT%T.%NZ) ===" >>"$AGENT_LOG"
    setsid setpriv --pdeathsig TERM -- systemd-socket-activate "${listen[@]}" \
        "$SECRETD" run "${_agent_run_flags[@]}" </dev/null >>"$AGENT_LOG" 2>&1 &
    AGENT_PID=$!
    register_pid "$AGENT_PID" socket-activate
}

exe_of() {
    readlink "/proc/$1/exe" 2>/dev/null
}

agent_runs() {
    [ "$(exe_of "$AGENT_PID")" = "$(readlink -f "$SECRETD")" ]
}

sockets_listen() {
    [ -S "$AGENT_SOCK" ] && [ -S "$AGENT_ADMIN_SOCK" ]
}

mkdir -p /run/docker/plugins
activate "$AGENT_SOCK" "$AGENT_ADMIN_SOCK" --
check "the plugin and admin sockets exist before the agent runs" wait_for 10 sockets_listen
assert_eq "$(basename "$(exe_of "$AGENT_PID")")" systemd-socket-activate "... and no agent runs yet"

start_dockerd
busybox_image
assert_eq "$(basename "$(exe_of "$AGENT_PID")")" systemd-socket-activate \
    "dockerd started with the socket there and no agent running"

vol=act-$TEST_RUN_ID
run docker volume create -d "$AGENT_DRIVER" -o secrets=db_password "$vol"
assert_eq "$status" 0 "docker volume create -d <driver> reaches the plugin through the held socket"
[ "$status" = 0 ] || diag "$output"
check "the first request started the agent (systemd-socket-activate exec'd secretd)" agent_runs
assert_contains "$(cat "$AGENT_LOG")" "socket activation: systemd passed $AGENT_SOCK and $AGENT_ADMIN_SOCK" \
    "the agent took both sockets from LISTEN_FDS"

run run_busybox -v "$vol:/run/secrets" -- cat /run/secrets/db_password
assert_eq "$output" "$canary" "a container reads its secret (Mount served on the passed socket)"

run curl -sS --max-time 10 --unix-socket "$AGENT_ADMIN_SOCK" http://localhost/v1/status
assert_contains "$output" "\"$vol\"" "the admin API answers on the passed admin socket"

# ------------------------------- secretctl status finds it by the config file
# The agent's configuration file names the admin socket; status reads it
# there (as the agent does: root-owned, not writable by others).
conf=$TEST_TMP/agent/secretd.conf
printf '[secretd]\nadmin-socket = %s\n' "$AGENT_ADMIN_SOCK" >"$conf"
chmod 0644 "$conf"
run env -u SECRETD_ADMIN_SOCKET "$SECRETCTL" status --config "$conf"
assert_eq "$status" 0 "secretctl status --config FILE reaches the agent at the file's admin-socket"
assert_contains "$output" "  $vol  secrets: db_password" "... and lists the volume"
run env -u SECRETD_ADMIN_SOCKET "$SECRETCTL" status --config "$conf" --admin-socket "$TEST_TMP/nothing.sock"
assert_contains "$output" "$TEST_TMP/nothing.sock is unreachable" "--admin-socket overrides the file"
chmod 0666 "$conf"
run env -u SECRETD_ADMIN_SOCKET "$SECRETCTL" status --config "$conf"
assert_eq "$status" 1 "a configuration file others can write is refused (exit 1)"
assert_contains "$output" "chmod go-w $conf" "... with the chmod that fixes it"
chmod 0644 "$conf"
printf '[secretd]\nadmin_socket = %s\n' "$AGENT_ADMIN_SOCK" >"$conf"
run env -u SECRETD_ADMIN_SOCKET "$SECRETCTL" status --config "$conf"
assert_eq "$status" 2 "a configuration file with a misspelt key is refused (exit 2)"
assert_contains "$output" "$conf:2" "... naming the file and line"
run env -u SECRETD_ADMIN_SOCKET "$SECRETCTL" status --config "$TEST_TMP/missing.conf"
assert_eq "$status" 3 "a missing --config file: exit 3"
assert_contains "$output" "$TEST_TMP/missing.conf" "... naming it"

run docker volume rm "$vol"
assert_eq "$status" 0 "docker volume rm"

kill -TERM "$AGENT_PID"
check "SIGTERM stops the agent" wait_for 10 _pid_gone "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null && AGENT_EXIT_STATUS=0 || AGENT_EXIT_STATUS=$?
assert_eq "$AGENT_EXIT_STATUS" 0 "... cleanly"
check "the agent left the sockets systemd owns in place" sockets_listen
rm -f "$AGENT_SOCK" "$AGENT_ADMIN_SOCK"

# ------------------------------------------------- a socket it does not know
stray=$TEST_TMP/agent/stray.sock
activate "$AGENT_SOCK" "$stray" --
stray_bound() { [ -S "$stray" ]; }
check "systemd-socket-activate holds the plugin socket and a stray one" wait_for 10 stray_bound
curl -sS --max-time 10 --unix-socket "$AGENT_SOCK" -X POST http://localhost/Plugin.Activate >/dev/null 2>&1 || true
check "an agent passed a socket at an unknown path stops" wait_for 10 _pid_gone "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null && AGENT_EXIT_STATUS=0 || AGENT_EXIT_STATUS=$?
assert_eq "$AGENT_EXIT_STATUS" 1 "... with exit status 1"
assert_contains "$(tail -n 3 "$AGENT_LOG")" "listens on $stray, which is neither the plugin socket $AGENT_SOCK nor the admin socket $AGENT_ADMIN_SOCK" \
    "... naming the stray path and the expected ones"
rm -f "$AGENT_SOCK" "$stray"
AGENT_PID=""

assert_log_free_of "the secret value never reaches the agent's log" "$TEST_TMP/canaries"

done_testing
