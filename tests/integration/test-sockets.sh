#!/bin/bash
# The agent's plugin socket against hostile or clumsy clients (no dockerd):
#   - the socket is 0600 and owned by root; uid 65534 cannot connect, and
#     with the mode loosened to 0666 it is still refused (SO_PEERCRED, 403);
#   - a 1 MiB body is refused with 413 (with Content-Length and chunked);
#   - a client that sends half a request and stalls is disconnected after
#     --connection-timeout while other clients are served meanwhile;
#   - 200 connections held open at once each get a valid reply;
#   - garbage (not JSON, deep nesting, invalid UTF-8, GET, unknown path) gets
#     a 4xx with {"Err":...} and the agent keeps serving;
#   - the seccomp filter is on (/proc/PID/status) and refused nothing.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd curl setpriv setsid python3 stat

agent_fixture
timeout_s=2
agent_start --connection-timeout "$timeout_s"

# POST BODY_FILE to PATH; prints "STATUS BODY".  Extra args go to curl.
post() {
    local path=$1
    shift
    curl -sS --max-time 20 --unix-socket "$AGENT_SOCK" -o "$TEST_TMP/reply" -w '%{http_code}' \
        "$@" "http://localhost$path" >"$TEST_TMP/code" || true
    echo "$(cat "$TEST_TMP/code") $(cat "$TEST_TMP/reply" 2>/dev/null)"
}

# --------------------------------------------------------------- mode ------
assert_eq "$(stat -c '%a %u %F' "$AGENT_SOCK")" "600 0 socket" "the plugin socket is mode 0600, owned by uid 0"

as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
}
# /run/docker is 0700 already; a hard link (same inode, same mode) in the
# world-searchable $TEST_TMP makes the socket's own mode and SO_PEERCRED the
# only things in the way.
chmod 0755 "$TEST_TMP"
peer_sock=$TEST_TMP/peer.sock
ln "$AGENT_SOCK" "$peer_sock"
run as_nobody curl -sS --max-time 10 --unix-socket "$peer_sock" -X POST http://localhost/Plugin.Activate
if [ "$status" != 0 ] && [[ "$output" == *"ermission denied"* || "$output" == *"onnect"* ]]; then
    ok "uid 65534 cannot connect to the 0600 socket (curl: ${output//$'\n'/ })"
else
    fail "uid 65534 cannot connect to the 0600 socket" "curl exit $status: $output"
fi

chmod 0666 "$AGENT_SOCK"
run as_nobody curl -sS --max-time 10 --unix-socket "$peer_sock" -o - -w ' %{http_code}' \
    -X POST http://localhost/Plugin.Activate
chmod 0600 "$AGENT_SOCK"
assert_contains "$output" '"Err"' "with the socket loosened to 0666, uid 65534 gets an Err reply"
assert_eq "${output##* }" 403 "... with status 403 (SO_PEERCRED)"
assert_not_contains "$output" VolumeDriver "... and no plugin answer"

# -------------------------------------------------------------- bodies -----
head -c $((1 << 20)) /dev/zero | tr '\0' 'a' >"$TEST_TMP/big"
r=$(post /VolumeDriver.Get -X POST --data-binary "@$TEST_TMP/big")
assert_eq "${r%% *}" 413 "a 1 MiB body with Content-Length gets 413"
assert_contains "$r" '"Err"' "... with an Err"
r=$(post /VolumeDriver.Get -X POST -H 'Transfer-Encoding: chunked' --data-binary "@$TEST_TMP/big")
assert_eq "${r%% *}" 413 "a 1 MiB chunked body gets 413"

# ----------------------------------------------------------- slowloris -----
# Two stalled clients (half the headers; headers and half the body) must be
# cut off after the timeout, while requests from others are answered.
cat >"$TEST_TMP/slow.py" <<'EOF'
import socket, sys, time
path, timeout = sys.argv[1], float(sys.argv[2])
parts = [b"POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\nContent-Le",
         b"POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a"]
socks = []
for p in parts:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(p)
    s.settimeout(timeout * 10 + 10)
    socks.append(s)
t0 = time.monotonic()
with open(sys.argv[3], "w") as ready:
    ready.write("stalled\n")
for i, s in enumerate(socks):
    try:
        data = s.recv(4096)
        # A close (b"") or a 408 reply both end the connection.
        print("client%d closed after %.1f s: %r" % (i, time.monotonic() - t0, data[:40]))
    except socket.timeout:
        print("client%d still open after %.1f s" % (i, time.monotonic() - t0))
    except ConnectionResetError:
        print("client%d reset after %.1f s" % (i, time.monotonic() - t0))
EOF
python3 "$TEST_TMP/slow.py" "$AGENT_SOCK" "$timeout_s" "$TEST_TMP/slow.ready" >"$TEST_TMP/slow.out" 2>&1 &
slow_pid=$!
wait_for 10 test -s "$TEST_TMP/slow.ready" || true
served=0
for _ in 1 2 3 4 5; do
    r=$(post /Plugin.Activate -X POST)
    [[ "$r" == "200 "*VolumeDriver* ]] && served=$((served + 1))
done
assert_eq "$served" 5 "while two clients stall mid-request, 5 other requests are answered"
check "both stalled clients are disconnected (timeout ${timeout_s} s)" wait_for 30 _pid_gone "$slow_pid"
wait "$slow_pid" 2>/dev/null || true
diag "$(cat "$TEST_TMP/slow.out")"
assert_eq "$(grep -c 'closed after\|reset after' "$TEST_TMP/slow.out")" 2 "each stalled client saw its connection closed"

# ---------------------------------------------------------- concurrency ----
# All 200 connect and send half a request first, then all finish: the agent
# holds 200 connections at the same moment.
cat >"$TEST_TMP/many.py" <<'EOF'
import os, socket, sys, threading, time
path, n, held, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
req = b"POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
socks, good, lock = [], [0], threading.Lock()
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    try:
        s.connect(path)
        s.sendall(req[:20])
    except OSError as e:
        print("error", e)
    socks.append(s)
print("connected", len(socks), flush=True)
with open(held, "w") as f:
    f.write("held\n")
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.05)   # the test counts the agent's threads meanwhile
def finish(s):
    try:
        s.sendall(req[20:])
        data = b""
        while b"VolumeDriver" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        if data.startswith(b"HTTP/1.1 200") and b"VolumeDriver" in data:
            with lock:
                good[0] += 1
    except OSError as e:
        print("error", e)
threads = [threading.Thread(target=finish, args=(s,)) for s in socks]
for t in threads: t.start()
for t in threads: t.join()
print("good", good[0])
EOF
python3 "$TEST_TMP/many.py" "$AGENT_SOCK" 200 "$TEST_TMP/many.held" "$TEST_TMP/many.go" \
    </dev/null >"$TEST_TMP/many.out" 2>&1 &
many_pid=$!
wait_for 60 test -s "$TEST_TMP/many.held" || true
agent_threads_at_least() {
    [ "$(awk '/^Threads:/ { print $2 }' "/proc/$AGENT_PID/status")" -ge "$1" ]
}
# One thread per connection: 200 connections show as 200+ threads.
check "200 connections are held open at once (agent threads >= 200)" wait_for 20 agent_threads_at_least 200
diag "agent threads with 200 connections open: $(awk '/^Threads:/ { print $2 }' "/proc/$AGENT_PID/status")"
touch "$TEST_TMP/many.go"
wait_for 120 _pid_gone "$many_pid" || true
wait "$many_pid" 2>/dev/null || true
assert_eq "$(sed -n 's/^good //p' "$TEST_TMP/many.out")" 200 "200 concurrent connections each get a 200 with the Activate reply"
grep -q '^error' "$TEST_TMP/many.out" && diag "$(grep '^error' "$TEST_TMP/many.out" | sort | uniq -c)"

# -------------------------------------------------------------- garbage ----
bad() {
    local desc=$1 want=$2 path=$3 r
    shift 3
    r=$(post "$path" "$@")
    if [ "${r%% *}" = "$want" ] && [[ "$r" == *'{"Err":"'* ]]; then
        ok "$desc: $want with an Err"
    else
        fail "$desc: $want with an Err" "got: ${r:0:200}"
    fi
}
bad "a body that is not JSON" 400 /VolumeDriver.Get -X POST --data-binary 'hello there'
python3 -c 'print("[" * 100000 + "]" * 100000, end="")' >"$TEST_TMP/deep"
bad "200 KB of nested arrays (over the byte cap)" 413 /VolumeDriver.Get -X POST --data-binary "@$TEST_TMP/deep"
python3 -c 'print("{\"Name\":" + "[" * 30000 + "]" * 30000 + "}", end="")' >"$TEST_TMP/deep2"
bad "30000 nested arrays in 60 KB" 400 /VolumeDriver.Get -X POST --data-binary "@$TEST_TMP/deep2"
printf '{"Name":"bad\377\376name"}' >"$TEST_TMP/utf8"
bad "a Name with invalid UTF-8" 400 /VolumeDriver.Get -X POST --data-binary "@$TEST_TMP/utf8"
bad "a GET" 405 /Plugin.Activate -X GET
bad "a PUT with a body" 405 /VolumeDriver.Create -X PUT --data-binary '{"Name":"x"}'
bad "an unknown endpoint" 404 /VolumeDriver.Explode -X POST --data-binary '{}'
bad "a Create with a Name that is an object" 400 /VolumeDriver.Create -X POST --data-binary '{"Name":{}}'
run bash -c "printf 'THIS IS NOT HTTP\r\n\r\n' | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read()); print(s.recv(200)[:12])' '$AGENT_SOCK'"
assert_contains "$output" "HTTP/1.1 400" "a request line that is not HTTP gets 400 from libmicrohttpd"

# ------------------------------------------------------------- the end -----
r=$(post /Plugin.Activate -X POST)
assert_eq "$r" '200 {"Implements":["VolumeDriver"]}' "after all of that /Plugin.Activate still answers"
check "the agent is still running" pid_alive "$AGENT_PID"

# seccomp: mode 2 (filter) on every thread; nothing it did was refused.
status_file=/proc/$AGENT_PID/status
if grep -q '^Seccomp:' "$status_file"; then
    assert_eq "$(awk '/^Seccomp:/ { print $2 }' "$status_file")" 2 "the agent runs under a seccomp filter (Seccomp: 2)"
    assert_eq "$(awk '/^Seccomp_filters:/ { print $2 }' "$status_file")" 1 "... exactly one filter (Seccomp_filters: 1)"
    modes=$(for t in /proc/"$AGENT_PID"/task/*/status; do awk '/^Seccomp:/ { print $2 }' "$t"; done | sort -u | tr '\n' ' ')
    assert_eq "$modes" "2 " "every thread of the agent has the filter (TSYNC)"
    assert_contains "$(cat "$AGENT_LOG")" "seccomp: " "the log says how many system calls are allowed"
else
    skip "seccomp status" "kernel without Seccomp in /proc/PID/status"
fi
run grep -n 'Operation not permitted' "$AGENT_LOG"
assert_eq "$output" "" "no EPERM ('Operation not permitted') in the agent's log"

agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "SIGTERM: the agent exits 0"
done_testing
