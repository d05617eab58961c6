#!/bin/bash
# The agent's admin socket, metrics and audit log against a real dockerd:
#   - `secretctl status --json` shows the volume and, while a container
#     runs, its instance with the container's id and the delivered version;
#     the readable summary names them too;
#   - GET /metrics parses with prometheus_client; its gauges show the volume,
#     the instance and its tmpfs size cap while the container runs, and no
#     instance after;
#   - GET /metrics counts the delivery and, after the container stops, the
#     wipe;
#   - the audit log has a deliver line (volume, secret, version, writer) and
#     a wipe line for that container, and never the value;
#   - a non-root peer is refused twice over: by the socket's 0600 mode, and
#     by the SO_PEERCRED check when the mode is loosened to 0666;
#   - only GET is served; the socket is removed when the agent stops;
#   - with --metrics-listen 127.0.0.1:PORT any local user reads /metrics
#     (and only that) over TCP; 0.0.0.0 or a host name stops the start.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl jq setpriv setsid

start_dockerd
busybox_image
agent_fixture

canary=canary-admin-$(random_hex 24)
printf '%s' "$canary" >"$TEST_TMP/value"
printf '%s\n' "$canary" >"$TEST_TMP/canaries"
check "secretctl put db_password" put_secret db_password "$TEST_TMP/value"
agent_start

admin_get() {
    curl -sS --max-time 10 --unix-socket "$AGENT_ADMIN_SOCK" "http://localhost$1"
}

status_json() {
    "$SECRETCTL" status --json --admin-socket "$AGENT_ADMIN_SOCK"
}

# True once the status lists an instance linked to container $1.
instance_of_container() {
    status_json | jq -e --arg c "$1" '.instances[] | select(.container_id == $c)' >/dev/null
}

no_instance_of_container() {
    local s
    s=$(status_json) || return 1
    jq -e --arg c "$1" '[.instances[] | select(.container_id == $c)] | length == 0' <<<"$s" >/dev/null
}

metric() {
    admin_get /metrics | awk -v n="$1" '$1 == n { print $2 }'
}

# ------------------------------------------------------------ a container --
check "the admin socket exists with mode 0600" \
    eval '[ -S "$AGENT_ADMIN_SOCK" ] && [ "$(stat -c %a "$AGENT_ADMIN_SOCK")" = 600 ]'

vol=adm-$TEST_RUN_ID
run docker volume create -d "$AGENT_DRIVER" -o secrets=db_password "$vol"
assert_eq "$status" 0 "docker volume create -o secrets=db_password"

cid=$(docker run -d --network none --name "adm-$TEST_RUN_ID" -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
check "the status links an instance to the running container" wait_for 20 instance_of_container "$cid"

st=$(status_json)
writer=$(awk '{ for (i = 1; i < NF; i++) if ($i == "id") print $(i + 1) }' "$AGENT_WRITER" | head -n 1)
diag "writer key id $writer"
assert_eq "$(jq -r '.agent.driver' <<<"$st")" "$AGENT_DRIVER" "status: agent driver"
assert_eq "$(jq -r '.agent.pid' <<<"$st")" "$AGENT_PID" "status: agent pid"
assert_eq "$(jq -r '.store.state' <<<"$st")" ok "status: store ok after a delivery"
assert_eq "$(jq -r --arg v "$vol" '.volumes[] | select(.name == $v) | .secrets | join(",")' <<<"$st")" \
    db_password "status: the volume and its secret"
instance=$(jq -r --arg c "$cid" '.instances[] | select(.container_id == $c) | .id' <<<"$st")
assert_eq "$(jq -r --arg c "$cid" '.instances[] | select(.container_id == $c) | "\(.volume) \(.container_name) \(.refcount) \(.delivered.db_password)"' <<<"$st")" \
    "$vol adm-$TEST_RUN_ID 1 1" "status: the instance's volume, container name, refcount and delivered version"
assert_not_contains "$st" "$canary" "the status never holds the value"

run "$SECRETCTL" status --admin-socket "$AGENT_ADMIN_SOCK"
assert_eq "$status" 0 "secretctl status (summary) succeeds"
assert_contains "$output" "volume $vol  container ${cid:0:12} (adm-$TEST_RUN_ID)" \
    "the summary has one line for the instance with its container"
assert_contains "$output" "db_password v1" "the summary shows the delivered version"

# The gauges, through the parser Prometheus' own Python client uses.
prom_parse() {
    admin_get /metrics | /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/prom-parse.py"
}
run prom_parse
assert_eq "$status" 0 "prometheus_client parses /metrics"
assert_contains "$output" "secretd_volumes 1 gauge" "metrics: secretd_volumes 1 (a gauge)"
assert_contains "$output" "secretd_instances 1 gauge" "metrics: secretd_instances 1 while the container runs"
assert_contains "$output" "secretd_tmpfs_size_bytes 1048576 gauge" \
    "metrics: secretd_tmpfs_size_bytes is the instance's size cap (default-size, 1 MiB)"
used=$(sed -n 's/^secretd_tmpfs_used_bytes \([0-9]*\) gauge$/\1/p' <<<"$output")
check "metrics: secretd_tmpfs_used_bytes counts the instance's file ($used bytes, at least one page)" \
    test "${used:-0}" -ge 4096 -a "${used:-0}" -lt 1048576
assert_contains "$output" "secretd_deliveries_total 1 counter" "... and the counters parse too"

# ------------------------------------------------------------ wipe ---------
run docker stop -t 1 "$cid"
assert_eq "$status" 0 "docker stop"
check "the instance leaves the status once the container stopped" wait_for 20 no_instance_of_container "$cid"
docker rm "$cid" >/dev/null

run prom_parse
assert_contains "$output" "secretd_instances 0 gauge" "metrics: secretd_instances 0 after the wipe"
assert_contains "$output" "secretd_tmpfs_size_bytes 0 gauge" "metrics: secretd_tmpfs_size_bytes 0 after the wipe"
assert_contains "$output" "secretd_tmpfs_used_bytes 0 gauge" "metrics: secretd_tmpfs_used_bytes 0 after the wipe"

deliveries=$(metric secretd_deliveries_total)
wipes=$(metric secretd_wipes_total)
check "metrics: secretd_deliveries_total >= 1 (got '$deliveries')" test "${deliveries:-0}" -ge 1
check "metrics: secretd_wipes_total >= 1 (got '$wipes')" test "${wipes:-0}" -ge 1
run curl -sS -o /dev/null -w '%{content_type}' --unix-socket "$AGENT_ADMIN_SOCK" http://localhost/metrics
assert_contains "$output" "text/plain; version=0.0.4" "metrics: Prometheus content type"

# ------------------------------------------------------------ audit --------
deliver=$(jq -c --arg i "$instance" 'select(.event == "deliver" and .instance == $i)' "$AGENT_AUDIT")
assert_eq "$(jq -r '"\(.volume) \(.secret) \(.version) \(.writer)"' <<<"$deliver")" \
    "$vol db_password 1 $writer" "audit: a deliver line with volume, secret, version and writer"
wipe=$(jq -c --arg c "$cid" 'select(.event == "wipe" and .container == $c)' "$AGENT_AUDIT")
assert_eq "$(jq -r '"\(.volume) \(.instance) \(.container_name)"' <<<"$wipe")" \
    "$vol $instance adm-$TEST_RUN_ID" "audit: a wipe line for the container, with its instance"
check "audit: every line is one JSON object with time and event" \
    jq -e -s 'all(.[]; (.time | test("^[0-9-]{10}T[0-9:]{8}\\.[0-9]{3}Z$")) and (.event | type == "string"))' \
    "$AGENT_AUDIT"
check "audit: the log is 0600" test "$(stat -c %a "$AGENT_AUDIT")" = 600
if grep -aqF -f "$TEST_TMP/canaries" "$AGENT_AUDIT"; then
    fail "audit: the value never appears in the audit log" "found on line(s) $(grep -anF -f "$TEST_TMP/canaries" "$AGENT_AUDIT" | cut -d: -f1 | tr '\n' ' ')"
else
    ok "audit: the value never appears in the audit log"
fi

# ------------------------------------------------------------ refusals -----
run curl -sS -o /dev/null -w '%{http_code}' -X POST --unix-socket "$AGENT_ADMIN_SOCK" http://localhost/v1/status
assert_eq "$output" 405 "POST /v1/status is 405"
run curl -sS -o /dev/null -w '%{http_code}' --unix-socket "$AGENT_ADMIN_SOCK" http://localhost/v1/other
assert_eq "$output" 404 "an unknown path is 404"

# nobody must reach the socket's directory to be refused by the mode or the
# uid check rather than by the test's private directories.
tmp_mode=$(stat -c %a "$TEST_TMP")
agent_dir_mode=$(stat -c %a "$TEST_TMP/agent")
on_exit "chmod $tmp_mode '$TEST_TMP'; chmod $agent_dir_mode '$TEST_TMP/agent'"
chmod o+x "$TEST_TMP" "$TEST_TMP/agent"
as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

run as_nobody curl -sS -o /dev/null -w '%{http_code}' --unix-socket "$AGENT_ADMIN_SOCK" http://localhost/v1/status
assert_eq "$status" 7 "uid 65534 cannot connect to the 0600 socket (curl: couldn't connect)"
run as_nobody "$SECRETCTL" status --admin-socket "$AGENT_ADMIN_SOCK"
assert_eq "$status" 1 "secretctl status as nobody exits 1"
assert_contains "$output" "the secretd agent at $AGENT_ADMIN_SOCK: GET /v1/status: permission denied connecting to it (Permission denied); are you root?" \
    "secretctl status as nobody explains"

chmod 0666 "$AGENT_ADMIN_SOCK"
run as_nobody curl -sS -o /dev/null -w '%{http_code}' --unix-socket "$AGENT_ADMIN_SOCK" http://localhost/v1/status
assert_eq "$output" 403 "with the socket at 0666, SO_PEERCRED still refuses uid 65534 (403)"
run as_nobody curl -sS -o /dev/null -w '%{http_code}' --unix-socket "$AGENT_ADMIN_SOCK" http://localhost/metrics
assert_eq "$output" 403 "and /metrics too"
run as_nobody "$SECRETCTL" status --admin-socket "$AGENT_ADMIN_SOCK"
assert_contains "$output" "refused the request: permission denied" "secretctl status names the refusal"
chmod 0600 "$AGENT_ADMIN_SOCK"
chmod "$tmp_mode" "$TEST_TMP"
chmod "$agent_dir_mode" "$TEST_TMP/agent"

run "$SECRETCTL" status --admin-socket "$TEST_TMP/no-such.sock"
assert_contains "$output" "the secretd agent at $TEST_TMP/no-such.sock is unreachable: GET /v1/status: No such file or directory; is it running? are you root?" \
    "a missing socket is named"

# ---------------------------------------------------- metrics-listen -------
# /metrics alone over loopback TCP, to any local user (a Prometheus that is
# not root); a non-loopback address stops the start.
agent_stop
port=$(free_port)
agent_start --metrics-listen "127.0.0.1:$port"
run as_nobody curl -sS --max-time 10 "http://127.0.0.1:$port/metrics"
assert_eq "$status" 0 "uid 65534 reads GET /metrics on --metrics-listen 127.0.0.1:PORT"
run /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/prom-parse.py" <<<"$output"
assert_eq "$status" 0 "... and prometheus_client parses it"
assert_contains "$output" "secretd_volumes 1 gauge" "... with the gauges (secretd_volumes 1)"
run curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/status"
assert_eq "$output" 404 "the TCP listener does not serve /v1/status (404)"
run curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/metrics"
assert_eq "$output" 405 "... nor POST (405)"
agent_stop
check "the TCP listener is closed when the agent stops" eval '! curl -s --max-time 5 "http://127.0.0.1:$port/metrics" >/dev/null'
agent_refused --metrics-listen "0.0.0.0:$port"
assert_eq "$status" 3 "--metrics-listen 0.0.0.0:PORT: the agent refuses to start (exit 3)"
assert_contains "$output" "0.0.0.0 is not a loopback address" "... saying why"
agent_refused --metrics-listen "localhost:$port"
assert_eq "$status" 3 "--metrics-listen localhost:PORT (a name): refused (exit 3)"
assert_contains "$output" "names are not resolved" "... saying to use a numeric address"
agent_start

# ------------------------------------------------------------ stop ---------
docker volume rm "$vol" >/dev/null
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "the agent stops cleanly on SIGTERM"
check "the admin socket is removed on exit" test ! -e "$AGENT_ADMIN_SOCK"
assert_log_free_of "the value never reaches the agent's log" "$TEST_TMP/canaries"

done_testing
