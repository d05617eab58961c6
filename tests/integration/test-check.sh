#!/bin/bash
# `secretd check` (issue 10, item 5; docs/agent.md "Checking a host"): on a
# healthy set-up (agent key, realm pin, file store, a real dockerd, a plugin
# dir) every one of its eight lines is "ok" and it exits 0; then each piece
# is broken on its own:
#   config mode 0666, key missing, key mode 0644, realm pin malformed, a pin
#   of another realm, store on a closed loopback port, docker socket wrong,
#   plugin dir missing
# and each gives exit 1, a FAIL line naming that piece with its fix, and
# the other lines still there and still ok (dockerd gone also leaves
# userns remapping unknown).  Under dockerd --userns-remap=default the
# userns line shows dockremap's ranges.  The agent key's secret line never
# shows.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd docker dockerd

t0=$EPOCHREALTIME
agent_fixture
start_dockerd

plugins=$TEST_TMP/plugins
mkdir -m 0700 "$plugins"
conf=$TEST_TMP/agent/secretd.conf
printf '[secretd]\nlog-level = info\n' >"$conf"
chmod 0644 "$conf"

CHECKS=(config "agent key" "realm pin" store docker "plugin dir" "userns remapping" seccomp)

# The flags of the healthy set-up, then ARGS (a repeated flag overrides).
secretd_check() {
    run "$SECRETD" check --config "$conf" --store "$SECRETD_STORE" --key "$AGENT_KEY" \
        --realm-file "$AGENT_REALM" --docker-socket "$DOCKER_SOCK" --plugin-dir "$plugins" "$@"
}

# The line of check WHAT in $output ("ok   WHAT..." or "FAIL WHAT...").
line_of() {
    grep -E "^(ok   |FAIL )$1[ :]" <<<"$output" || true
}

# DESC EXIT FAILING... [-- ARGS...]: secretd check ARGS exits EXIT; it prints
# exactly one line per check, in order; those named in FAILING are "FAIL",
# the others "ok".
assert_check() {
    local desc=$1 want=$2 failing=() args=() what line got="" expect=""
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        failing+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    args=("$@")
    secretd_check "${args[@]}"
    assert_eq "$status" "$want" "$desc: exit $want"
    [ "$want" = 0 ] || diag "$output"
    for what in "${CHECKS[@]}"; do
        line=$(line_of "$what")
        if [ -z "$line" ]; then
            got+="$what:missing "
        elif [ "$(wc -l <<<"$line")" != 1 ]; then
            got+="$what:repeated "
        else
            got+="$what:${line%% *} "
        fi
        if [[ " ${failing[*]} " == *" $what "* ]]; then
            expect+="$what:FAIL "
        else
            expect+="$what:ok "
        fi
    done
    if [ "$got" == "$expect" ] && [ "$(wc -l <<<"$output")" = ${#CHECKS[@]} ]; then
        ok "$desc: one line per check, FAIL only for: ${failing[*]:-none}"
    else
        fail "$desc: one line per check, FAIL only for: ${failing[*]:-none}" "expected: $expect" \
            "     got: $got" "$output"
    fi
    local order
    order=$(sed -E 's/^(ok   |FAIL )//' <<<"$output" | cut -c1-6 | tr '\n' '|')
    assert_eq "$order" "config|agent |realm |store |docker|plugin|userns|seccom|" "$desc: the checks in order"
}

# The agent key's secret line (never its comments) must not be in $output;
# a failure does not print it either.
key_line=$(grep -v '^#' "$AGENT_KEY" | head -n 1)
assert_no_secret() {
    if grep -qF -- "$key_line" <<<"$output"; then
        fail "$1: the agent key's secret line is not printed" "(it is, in secretd check's output)"
    else
        ok "$1: the agent key's secret line is not printed"
    fi
}

# -------------------------------------------------------------- healthy ---
assert_check "healthy" 0
diag "$output"
assert_contains "$(line_of "agent key")" "$AGENT_PUB" "healthy: the key line shows the public line"
assert_contains "$(line_of "realm pin")" "verified" "healthy: the store's policy verifies from the realm pin"
assert_contains "$(line_of "userns remapping")" "off" "healthy: dockerd does not remap"
assert_no_secret "healthy"

# --------------------------------------------------------------- broken ---
chmod 0666 "$conf"
assert_check "config 0666" 1 config
assert_contains "$(line_of config)" "FAIL config: config $conf is mode 0666" "config 0666: the line names the file"
assert_contains "$(line_of config)" "chmod go-w $conf" "config 0666: ... and the fix"
chmod 0644 "$conf"

assert_check "key missing" 1 "agent key" -- --key "$TEST_TMP/agent/absent.key"
assert_contains "$(line_of "agent key")" "no agent key at $TEST_TMP/agent/absent.key; run 'secretd init" \
    "key missing: the line names the path and secretd init"

chmod 0644 "$AGENT_KEY"
assert_check "key 0644" 1 "agent key"
assert_contains "$(line_of "agent key")" "mode 0644" "key 0644: the line names the mode"
assert_contains "$(line_of "agent key")" "chmod 600 $AGENT_KEY" "key 0644: ... and the fix"
assert_no_secret "key 0644"
chmod 0600 "$AGENT_KEY"

bad_pin=$TEST_TMP/agent/bad-realm
printf 'sdr1:not-a-pin\n' >"$bad_pin"
assert_check "realm pin malformed" 1 "realm pin" -- --realm-file "$bad_pin"
assert_contains "$(line_of "realm pin")" "FAIL realm pin: $bad_pin" "realm pin malformed: the line names the file"
assert_contains "$(line_of "realm pin")" "secretd join" "realm pin malformed: ... and secretd join"

# A pin of another store's realm parses, but the store's chain does not
# verify from it.
other=file://$TEST_TMP/other-store
mkdir -m 0700 "$TEST_TMP/other-store"
"$SECRETCTL" --store "$other" realm init >"$TEST_TMP/other-realm.out" 2>&1 \
    || bail_out "realm init of a second store failed: $(cat "$TEST_TMP/other-realm.out")"
other_pin=$("$SECRETCTL" --store "$other" realm pin)
assert_check "a pin of another realm" 1 "realm pin" -- --realm "$other_pin"
assert_contains "$(line_of "realm pin")" "secretd join" "a pin of another realm: the fix is secretd join"

port=$(free_port)
assert_check "store on a closed loopback port" 1 store -- --store "etcd://127.0.0.1:$port/secretd"
assert_contains "$(line_of store)" "FAIL store etcd://127.0.0.1:$port/secretd: unreachable" \
    "store on a closed port: the line names the URL"

assert_check "docker socket wrong" 1 docker "userns remapping" -- --docker-socket "$TEST_TMP/no-docker.sock"
assert_contains "$(line_of docker)" "FAIL docker $TEST_TMP/no-docker.sock:" "docker socket wrong: the line names it"
assert_contains "$(line_of docker)" "start dockerd, or set docker-socket" "docker socket wrong: ... and the fix"

rmdir "$plugins"
assert_check "plugin dir missing" 1 "plugin dir"
assert_contains "$(line_of "plugin dir")" "FAIL plugin dir $plugins: does not exist" \
    "plugin dir missing: the line names it"
mkdir -m 0700 "$plugins"

assert_check "everything mended" 0

# ------------------------------------------------------- userns remapped ---
# dockerd adds dockremap and its ranges to /etc/subuid and /etc/subgid.
restart_dockerd --userns-remap=default
first_range() { awk -F: '$1 == "dockremap" { print $2 "+" $3; exit }' "$1"; }
assert_check "dockerd with --userns-remap" 0
assert_contains "$(line_of "userns remapping")" \
    "on, dockremap uids $(first_range /etc/subuid), gids $(first_range /etc/subgid)" \
    "dockerd with --userns-remap: the line shows dockremap's ranges"
diag "test-check: $(elapsed "$t0") s"
done_testing
