#!/bin/bash
# The agent's log under a real journald (docs/agent.md "Logs"): with its
# standard error connected to journald's stream socket, as systemd connects a
# service's (the stream header, then JOURNAL_STREAM naming the socket), every
# line reaches the journal at its own priority, error 3, warning 4, info 6,
# with no "<N>" or timestamp left in the message; `journalctl -p warning`
# shows the warnings and errors only.  Outside the journal the same lines
# carry a UTC timestamp and the level (the other tests' logs; here the
# control run with JOURNAL_STREAM naming another file).
#
# journald runs as a namespace instance (systemd-journald NAME, read with
# journalctl --namespace=NAME) inside a private mount namespace with tmpfs
# over /run/systemd and the journal directories, so nothing of it reaches
# the host's journal or disk.  No systemd as PID 1 is needed; `-u secretd`
# needs one, so the test filters by SYSLOG_IDENTIFIER instead.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd python3 unshare journalctl setpriv timeout curl
journald=""
for j in /lib/systemd/systemd-journald /usr/lib/systemd/systemd-journald; do
    if [ -x "$j" ]; then
        journald=$j
        break
    fi
done
[ -n "$journald" ] || skip_all "no systemd-journald on this host"

agent_fixture
dir=$TEST_TMP/journal
mkdir -m 0700 "$dir"
ns=secretd-t$(random_hex 8)
printf '[secretd]\nlog-level = info\n' >"$dir/bad.conf"
cp "$dir/bad.conf" "$dir/elsewhere.conf"
chmod 0666 "$dir/bad.conf" "$dir/elsewhere.conf"
_agent_flags --log-level info --audit-log ""
declare -p _agent_run_flags >"$dir/flags.sh"

# What systemd does for StandardError=journal: connect to the stdout
# socket, send the stream header (identifier, unit, default priority,
# level_prefix=1, no forwarding), make it fd 2, set JOURNAL_STREAM.
cat >"$dir/connect.py" <<'EOF'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.shutdown(socket.SHUT_RD)
s.sendall(b"secretd\n\n6\n1\n0\n0\n0\n")
os.dup2(s.fileno(), 2)
s.close()
st = os.fstat(2)
os.environ["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
if sys.argv[2] == "--elsewhere":
    # Control: stderr redirected after systemd set JOURNAL_STREAM.
    fd = os.open(sys.argv[3], os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    os.dup2(fd, 2)
    del sys.argv[2:4]
os.execv(sys.argv[2], sys.argv[2:])
EOF

cat >"$dir/inner.sh" <<'EOF'
set -euo pipefail
. "$dir/flags.sh"
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir -p /run/log
mount -t tmpfs -o mode=0755 tmpfs /run/log
if [ -d /var/log/journal ]; then
    mount -t tmpfs -o mode=0755 tmpfs /var/log/journal
fi
setpriv --pdeathsig KILL -- "$journald" "$ns" 2>"$dir/journald.err" &
jpid=$!
stream=/run/systemd/journal.$ns/stdout
for _ in $(seq 200); do [ -S "$stream" ] && break; sleep 0.05; done
[ -S "$stream" ] || { echo "journald did not open $stream"; exit 1; }

# A refused start: one error line.
status=0
setpriv --pdeathsig KILL -- python3 "$dir/connect.py" "$stream" "$SECRETD" run --config "$dir/bad.conf" || status=$?
echo "$status" >"$dir/refused.status"

# A healthy start (info lines, and the warning that the audit log is off),
# then SIGTERM once it serves.
setpriv --pdeathsig KILL -- python3 "$dir/connect.py" "$stream" "$SECRETD" run "${_agent_run_flags[@]}" &
apid=$!
for _ in $(seq 600); do [ -S "$AGENT_SOCK" ] && break; sleep 0.05; done
kill -TERM "$apid"
status=0
wait "$apid" || status=$?
echo "$status" >"$dir/healthy.status"

# Control: JOURNAL_STREAM names the socket, but stderr is a file.
setpriv --pdeathsig KILL -- python3 "$dir/connect.py" "$stream" --elsewhere "$dir/elsewhere.log" \
    "$SECRETD" run --config "$dir/elsewhere.conf" || true

kill -TERM "$jpid"
wait "$jpid" || true
journalctl --namespace="$ns" -o json --no-pager SYSLOG_IDENTIFIER=secretd >"$dir/journal.json"
journalctl --namespace="$ns" -p warning -o cat --no-pager SYSLOG_IDENTIFIER=secretd >"$dir/warning.txt"
EOF
: >"$dir/elsewhere.log"

run env dir="$dir" ns="$ns" journald="$journald" SECRETD="$SECRETD" AGENT_SOCK="$AGENT_SOCK" \
    timeout 120 unshare -m --propagation private bash "$dir/inner.sh"
assert_eq "$status" 0 "journald in a private mount namespace ran, and the agent with it"
[ "$status" = 0 ] || diag "$output" "$(cat "$dir/journald.err" 2>/dev/null)"
assert_eq "$(cat "$dir/refused.status")" 3 "the refused start exits 3"
assert_eq "$(cat "$dir/healthy.status")" 0 "the healthy start stops on SIGTERM with 0"

# "PRIORITY<TAB>MESSAGE" per entry.
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    print("%s\t%s" % (j.get("PRIORITY"), j.get("MESSAGE")))
' "$dir/journal.json" >"$dir/entries.txt"
diag_file "$dir/entries.txt" 20

entry_priority() {
    grep -F -- "$1" "$dir/entries.txt" | head -n 1 | cut -f1
}
assert_eq "$(entry_priority "config $dir/bad.conf is mode 0666")" 3 "the refusal is in the journal at priority 3 (error)"
assert_eq "$(entry_priority "the audit log is off")" 4 "the audit-log warning is at priority 4 (warning)"
assert_eq "$(entry_priority "secretd 0.1.0 starting")" 6 "the start line is at priority 6 (info)"
assert_eq "$(entry_priority "stopped")" 6 "the stop line is at priority 6 (info)"
run grep -cE $'\t(<[0-9]>|[0-9]{4}-[0-9]{2}-[0-9]{2}T|secretd\\[)' "$dir/entries.txt"
assert_eq "$output" 0 "no message keeps a <N> prefix, a timestamp or secretd[level]"
assert_eq "$(grep -cvE '^[346]'$'\t' "$dir/entries.txt")" 0 "every entry has priority 3, 4 or 6"

warnings=$(cat "$dir/warning.txt")
assert_contains "$warnings" "is mode 0666" "journalctl -p warning shows the error"
assert_contains "$warnings" "the audit log is off" "... and the warning"
assert_not_contains "$warnings" "starting" "... and no info line"

elsewhere=$(cat "$dir/elsewhere.log")
assert_contains "$elsewhere" "secretd[error]: config $dir/elsewhere.conf is mode 0666" \
    "control: with stderr redirected from the journal's socket, the line is in the plain format"
check "control: ... with a UTC timestamp" grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z secretd\[error\]: ' "$dir/elsewhere.log"
assert_not_contains "$(cut -f2 "$dir/entries.txt")" "elsewhere.conf" "control: ... and nothing of it reached the journal"

done_testing
