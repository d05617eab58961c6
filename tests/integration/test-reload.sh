#!/bin/bash
# SIGHUP reloads the configuration file, as docs/agent.md ("Reloading the
# configuration") says, against a real dockerd:
#   - a raised max-size and max-volumes take effect for the next Create,
#     with no restart: the same Create refused before is accepted after;
#   - log-level = debug takes effect (debug lines appear);
#   - the audit log is reopened: after a rename (logrotate), the next
#     delivery goes to a new file at the configured path;
#   - a changed restart-only key (connection-timeout) is logged as waiting
#     for a restart, and the agent keeps serving;
#   - a file that does not parse changes nothing: one error line names the
#     file, the line and the key, the agent keeps serving with the values
#     it had, and a later good file is applied.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid

start_dockerd
busybox_image
agent_fixture

canary=canary-reload-$(random_hex 24)
printf '%s' "$canary" >"$TEST_TMP/value"
check "secretctl put x" put_secret x "$TEST_TMP/value"

AGENT_CONFIG=$TEST_TMP/agent/secretd.conf
write_config() {
    # Staged, then renamed: the agent may read the file at any moment.
    {
        echo "[secretd]"
        echo "audit-log = $AGENT_AUDIT"
        printf '%s\n' "$@"
    } >"$AGENT_CONFIG.new"
    chmod 0600 "$AGENT_CONFIG.new"
    mv "$AGENT_CONFIG.new" "$AGENT_CONFIG"
}
write_config "log-level = info" "default-size = 1M" "max-size = 1M" "max-volumes = 2"
agent_start

# The number of lines of the agent's log that contain $1.
log_count() {
    grep -cF -- "$1" "$AGENT_LOG" || true
}

# SIGHUP, then wait for the log line that answers it (the n-th such line).
reloads=0
hup() {
    local before
    before=$(($(log_count "SIGHUP: configuration reloaded") + $(log_count "SIGHUP: configuration not reloaded")))
    kill -HUP "$AGENT_PID"
    wait_for 10 _log_count_above "$before"
}
_log_count_above() {
    [ $(($(log_count "SIGHUP: configuration reloaded") + $(log_count "SIGHUP: configuration not reloaded"))) -gt "$1" ]
}

create() {
    plugin_call Create "{\"Name\":\"$1\",\"Opts\":{\"secrets\":\"x\",\"size\":\"$2\"}}"
}

# ------------------------------------------------ limits and log level ------
reply=$(create big 2m)
assert_contains "$reply" "max-size" "before the reload, a 2m volume is refused naming max-size"
debug_before=$(log_count "secretd[debug]")
write_config "log-level = debug" "default-size = 1M" "max-size = 4M" "max-volumes = 3"
check "SIGHUP is answered" hup
assert_contains "$(grep "SIGHUP: configuration reloaded" "$AGENT_LOG" | tail -1)" \
    "changed: max-size, max-volumes, log-level" "the log names the keys the reload changed"
reply=$(create big 2m)
assert_eq "$reply" '{}' "after the reload, the same 2m volume is created"
pid_alive "$AGENT_PID" && ok "the agent kept running (same pid)" || fail "the agent kept running (same pid)"
create v2 1m >/dev/null
reply=$(create v3 1m)
assert_eq "$reply" '{}' "max-volumes = 3 allows a third volume"
reply=$(create v4 1m)
assert_contains "$reply" "max-volumes" "... and refuses a fourth, naming max-volumes"
plugin_call Remove '{"Name":"v2"}' >/dev/null
plugin_call Remove '{"Name":"v3"}' >/dev/null
run docker volume ls
[ "$(log_count "secretd[debug]")" -gt "$debug_before" ] \
    && ok "log-level = debug: debug lines appear after the reload" \
    || fail "log-level = debug: debug lines appear after the reload"

# ------------------------------------------------------- audit log ------
run docker volume create -d "$AGENT_DRIVER" -o secrets=x app
assert_eq "$status" 0 "docker volume create app"
mv "$AGENT_AUDIT" "$AGENT_AUDIT.1"
check "SIGHUP after the audit log was renamed" hup
run run_busybox -v app:/run/secrets:ro -- cat /run/secrets/x
assert_eq "$output" "$canary" "a container reads x"
check "the delivery is audited in a new file at audit-log" grep -q '"event":"deliver"' "$AGENT_AUDIT"
grep -q '"event":"deliver"' "$AGENT_AUDIT.1" \
    && fail "the renamed audit log got no new delivery" || ok "the renamed audit log got no new delivery"

# ------------------------------------------------ a restart-only key ------
# The harness gives the store, the sockets and the paths as flags, which
# override the file after a reload as at start; connection-timeout is left
# to the file.
write_config "log-level = debug" "default-size = 1M" "max-size = 4M" "max-volumes = 3" \
    "connection-timeout = 30"
check "SIGHUP with a changed connection-timeout" hup
assert_contains "$(grep "SIGHUP: connection-timeout changed" "$AGENT_LOG" | tail -1)" "takes effect only at a restart" \
    "the log says that connection-timeout waits for a restart"
run run_busybox -v app:/run/secrets:ro -- cat /run/secrets/x
assert_eq "$output" "$canary" "containers still read x"

# ------------------------------------------------------ a broken file ------
write_config "log-level = info" "max-size = 8M" "bogus = 1" "connection-timeout = 30"
check "SIGHUP with a broken file" hup
line=$(grep "SIGHUP: configuration not reloaded" "$AGENT_LOG" | tail -1)
assert_contains "$line" "$AGENT_CONFIG:5: unknown key 'bogus'" "the error names the file, the line and the key"
assert_contains "$line" "runs on with the previous configuration" "... and says that nothing changed"
reply=$(create bigger 6m)
assert_contains "$reply" "max-size" "max-size is still 4M: a 6m volume is refused"
write_config "log-level = info" "default-size = 1M" "max-size = 8M" "max-volumes = 8" "connection-timeout = 30"
check "SIGHUP with the file mended" hup
reply=$(create bigger 6m)
assert_eq "$reply" '{}' "the mended file is applied: a 6m volume is created"
run run_busybox -v app:/run/secrets:ro -- cat /run/secrets/x
assert_eq "$output" "$canary" "containers still read x"

diag_file <(grep -a "SIGHUP" "$AGENT_LOG")
assert_log_free_of "the log never holds the value" "$TEST_TMP/value"
done_testing
