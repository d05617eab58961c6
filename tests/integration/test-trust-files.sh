#!/bin/bash
# Roots of trust (issue 8, docs/agent.md "Roots of trust"): the agent refuses
# to start when its configuration file or its realm pin file, or a
# directory above either, is owned by someone other than root or writable by
# group or others; the message names the file (or directory) and the command
# that fixes it, and that command, run as printed, lets the agent start.
#   - healthy: the fixture's files below /tmp (1777: the sticky rule) start;
#   - the realm pin 0666, owned by uid 1000, in a group-writable directory,
#     in a directory owned by uid 1000: exit 1, no plugin socket;
#   - the config file 0666, owned by uid 1000, in a group-writable
#     directory: exit 3 (bad configuration);
#   - symbolic links: a root-owned link is followed and its target checked;
#     a link owned by uid 1000 is refused;
#   - a missing realm pin stops the agent, naming it and 'secretd join'.
# No dockerd: every claim here is about start-up.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd curl setpriv setsid timeout

agent_fixture
diag "$(stat -c '%A %U %n' / "$(dirname "$TEST_TMP")" "$TEST_TMP" "$TEST_TMP/agent" "$AGENT_REALM")"

# The command after "root of trust: " in the refusal ($output).
printed_fix() {
    local line
    line=$(grep -F 'root of trust: ' <<<"$output" | tail -n 1)
    echo "${line##*root of trust: }"
}

# DESC EXIT NEEDLE...: the last agent_refused exited EXIT, its output holds
# every NEEDLE, and no plugin socket was left behind.
assert_refused() {
    local desc=$1 want=$2 needle
    shift 2
    assert_eq "$status" "$want" "$desc: the agent does not start (exit $want)"
    for needle in "$@"; do
        assert_contains "$output" "$needle" "$desc: the message says '$needle'"
    done
    check "$desc: no plugin socket is left" test ! -e "$AGENT_SOCK"
}

# True if FIX is only chown/chmod of paths below TEST_TMP: it is run with
# eval.
fix_is_tame() {
    local part
    while IFS= read -r part; do
        [[ "$part" =~ ^(chown( -h)?\ root:root|chmod\ go-w)\ "$TEST_TMP"/[^\ \;\&\|\$\`]+$ ]] || return 1
    done < <(sed 's/ && /\n/g' <<<"$1")
}

# DESC [ARGS...]: run the printed fix as it is, then the agent starts (with
# ARGS).
fix_and_start() {
    local desc=$1 fix
    shift
    fix=$(printed_fix)
    if ! fix_is_tame "$fix"; then
        fail "$desc: the message ends with a chown/chmod of the file or directory" "fix: '$fix'"
        return 0
    fi
    check "$desc: the printed fix ($fix) runs" eval "$fix"
    if agent_start "$@"; then
        ok "$desc: after the fix the agent starts"
    else
        fail "$desc: after the fix the agent starts"
    fi
    agent_stop
}

# ------------------------------------------------------------- healthy ----
agent_start
check "healthy: the agent starts with its realm pin below /tmp (1777, sticky)" pid_alive "$AGENT_PID"
assert_contains "$(cat "$AGENT_LOG")" "verified (1 writer(s), 1 recipient(s))" "healthy: ... and verifies the realm's policy from it"
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "healthy: SIGTERM, exit 0"

# ----------------------------------------------------------- realm pin ----
chmod 0666 "$AGENT_REALM"
agent_refused
assert_refused "realm pin 0666" 1 "realm pin $AGENT_REALM is mode 0666" \
    "chmod go-w $AGENT_REALM"
fix_and_start "realm pin 0666"

chown 1000:1000 "$AGENT_REALM"
agent_refused
assert_refused "realm pin owned by uid 1000" 1 \
    "realm pin $AGENT_REALM is owned by uid 1000, not root" "chown root:root $AGENT_REALM"
fix_and_start "realm pin owned by uid 1000"

etc=$TEST_TMP/etc
mkdir -m 0755 "$etc"
cp "$AGENT_REALM" "$etc/realm"
chmod 0775 "$etc"
agent_refused --realm-file "$etc/realm"
assert_refused "realm pin in a group-writable directory" 1 \
    "realm pin $etc/realm: directory $etc is mode 0775" "chmod go-w $etc"
fix_and_start "realm pin in a group-writable directory" --realm-file "$etc/realm"

chown 1000:1000 "$etc"
agent_refused --realm-file "$etc/realm"
assert_refused "realm pin in a directory owned by uid 1000" 1 "directory $etc is owned by uid 1000" \
    "chown root:root $etc"
fix_and_start "realm pin in a directory owned by uid 1000" --realm-file "$etc/realm"

agent_refused --realm-file "$etc/absent"
assert_refused "a missing realm pin" 1 "no realm pinned: $etc/absent" "run 'secretd join PIN'"

# --------------------------------------------------------- config file ----
conf=$etc/secretd.conf
printf '[secretd]\nlog-level = debug\n' >"$conf"
chmod 0644 "$conf"
agent_start --config "$conf"
check "healthy config file: the agent starts" pid_alive "$AGENT_PID"
agent_stop

chmod 0666 "$conf"
agent_refused --config "$conf"
assert_refused "config 0666" 3 "config $conf is mode 0666" "chmod go-w $conf"
fix_and_start "config 0666" --config "$conf"

chown 1000:1000 "$conf"
agent_refused --config "$conf"
assert_refused "config owned by uid 1000" 3 "config $conf is owned by uid 1000, not root" "chown root:root $conf"
fix_and_start "config owned by uid 1000" --config "$conf"

chmod 0770 "$etc"
agent_refused --config "$conf"
assert_refused "config in a group-writable directory" 3 "config $conf: directory $etc is mode 0770" "chmod go-w $etc"
fix_and_start "config in a group-writable directory" --config "$conf"

# ------------------------------------------------------ symbolic links ----
ln -s "$conf" "$TEST_TMP/agent/link.conf"
agent_start --config "$TEST_TMP/agent/link.conf"
check "a root-owned link to a healthy config: the agent starts" pid_alive "$AGENT_PID"
agent_stop
chmod 0666 "$conf"
agent_refused --config "$TEST_TMP/agent/link.conf"
assert_refused "a link to a config that is 0666" 3 "the file it leads to, $conf, is mode 0666"
chmod 0644 "$conf"
chown -h 1000:1000 "$TEST_TMP/agent/link.conf"
agent_refused --config "$TEST_TMP/agent/link.conf"
assert_refused "a link owned by uid 1000" 3 "symbolic link $TEST_TMP/agent/link.conf is owned by uid 1000" \
    "chown -h root:root $TEST_TMP/agent/link.conf"
fix_and_start "a link owned by uid 1000" --config "$TEST_TMP/agent/link.conf"

done_testing
