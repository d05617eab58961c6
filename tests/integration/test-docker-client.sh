#!/usr/bin/env bash
# The Docker client library (src/docker.c) against a real dockerd, through
# tests/integration/docker-client-driver.c: ping; the events stream (a
# container's whole life in order, volume mount/unmount tied to it, replay
# with since=); list and inspect; kill with the reload signal into a shell
# that traps it; the error mapping for 404/409; and a reconnect across a
# dockerd stop/start, with "stream ended" and "dockerd down" told apart.
. "$(dirname "$0")/lib.sh"

require_root
require_cmd dockerd docker
driver=${DOCKER_CLIENT_DRIVER:?DOCKER_CLIENT_DRIVER is not set (run through meson test)}

start_dockerd
busybox_image

events_out=$TEST_TMP/events.out
events_err=$TEST_TMP/events.err

# Every event line of the driver's output concerning container $1, as
# "type:action" words (volume events are tied through container=).
events_of() {
    awk -v id="$1" '$1 == "event" && (($2 == "container" && $4 == id) ||
                     ($2 == "volume" && index($0, " container=" id " ")))' "${2:-$events_out}" |
        awk '{ printf "%s%s:%s", sep, $2, $3; sep = " " } END { print "" }'
}

count_lines() { grep -c -- "$1" "$events_out" || true; }
gone() { ! pid_alive "$1"; }

# ---------------------------------------------------------------- ping ----

run "$driver" ping
assert_eq "$status:$output" "0:ok" "ping: dockerd answers on API 1.41"

# ------------------------------------------------------- events: a life ----

"$driver" events --follow >"$events_out" 2>"$events_err" </dev/null &
events_pid=$!
register_pid "$events_pid" docker-client-driver
wait_for 10 grep -q '^connected$' "$events_out" || bail_out "events stream never connected"
ok "events: stream established"

docker volume create --driver local sdc-vol >/dev/null
cid=$(docker create --network none -v sdc-vol:/run/secrets:ro "$BUSYBOX_IMAGE" sh -c 'exit 7')
docker start "$cid" >/dev/null
docker wait "$cid" >/dev/null
docker rm "$cid" >/dev/null
if wait_for 10 grep -q "^event container destroy $cid " "$events_out"; then
    ok "events: destroy seen"
else
    fail "events: destroy seen" "$(cat "$events_out")"
fi
assert_eq "$(events_of "$cid")" \
    "container:create volume:mount container:start container:die volume:unmount container:destroy" \
    "events: one container's life in order, its volume mount inside it"
assert_contains "$(grep "^event container die $cid " "$events_out")" " exit=7 " "events: die carries exitCode 7"
assert_contains "$(grep "^event volume mount sdc-vol " "$events_out")" \
    " container=$cid dest=/run/secrets rw=0 " "events: volume mount names container, destination, read-only"
assert_eq "$(count_lines '^bad_line')" 0 "events: every line dockerd sent parsed"

# Replay from the create event's own time: since= is inclusive.
since=$(grep "^event container create $cid " "$events_out" | sed 's/.* since=//')
run timeout 20 "$driver" events --since "$since" --max 6
printf '%s\n' "$output" >"$TEST_TMP/replay.out"
assert_eq "$status" 0 "replay: six events came back"
assert_eq "$(events_of "$cid" "$TEST_TMP/replay.out")" "$(events_of "$cid")" \
    "replay: since=$since repeats the same events, starting with that one"

# ---------------------------------------------------- list and inspect ----

lcid=$(docker run -d --network none -l secretd.reload-signal=SIGHUP -v sdc-vol:/run/secrets:ro \
    "$BUSYBOX_IMAGE" sh -c 'trap "echo hup >> /tmp/hup" HUP; trap "exit 0" TERM;
                           touch /tmp/ready; while :; do sleep 1; done')
wait_for 10 docker exec "$lcid" test -e /tmp/ready || bail_out "container never got ready"

run "$driver" list
assert_eq "$status" 0 "list: succeeds"
assert_contains "$output" "count=1" "list: all=1 lists the one container"
assert_contains "$output" "container $lcid running running=1 name=" "list: running container found"
assert_contains "$output" "reload=1 mounts=volume:sdc-vol:/run/secrets:local:ro" \
    "list: reload label and volume mount parsed"

run "$driver" list '{"volume":["sdc-vol"]}'
assert_contains "$output" "count=1" "list: volume filter matches"
run "$driver" list '{"volume":["no-such-volume"]}'
assert_eq "$output" "count=0" "list: volume filter excludes"
run "$driver" list '{"nosuchfilter":["x"]}'
assert_eq "$status" 2 "list: an unknown filter fails"
assert_contains "$output" "error EINVAL docker: GET /containers/json: 400 Invalid filter 'nosuchfilter'" \
    "list: dockerd's message is passed on"

run "$driver" inspect "$lcid"
pid=$(docker inspect --format '{{.State.Pid}}' "$lcid")
assert_contains "$output" "container $lcid running running=1 pid=$pid started=" "inspect: running, pid as dockerd says"
assert_contains "$output" "reload=1 mounts=volume:sdc-vol:/run/secrets:local:ro" "inspect: label and mount"
run "$driver" inspect nosuch
assert_eq "$output" "error ENOENT docker: GET /containers/nosuch/json: 404 No such container: nosuch" \
    "inspect: 404 becomes ENOENT with dockerd's message"

# ----------------------------------------------------------------- kill ----

run "$driver" kill "$lcid" SIGHUP
assert_eq "$status:$output" "0:ok" "kill: SIGHUP accepted (204)"
if wait_for 10 docker exec "$lcid" grep -q hup /tmp/hup; then
    ok "kill: the container's HUP trap ran"
else
    fail "kill: the container's HUP trap ran"
fi
if wait_for 10 grep -q "^event container kill $lcid .* signal=1 " "$events_out"; then
    ok "kill: kill event with signal=1 in the stream"
else
    fail "kill: kill event with signal=1 in the stream" "$(grep "$lcid" "$events_out")"
fi

xcid=$(docker create --network none "$BUSYBOX_IMAGE" true)
run "$driver" kill "$xcid" HUP
assert_eq "$status" 2 "kill: a container that is not running fails"
assert_contains "$output" "error ESRCH docker: POST /containers/$xcid/kill: 409 " "kill: 409 becomes ESRCH"
assert_contains "$output" "is not running" "kill: with dockerd's reason"
run "$driver" kill nosuch HUP
assert_contains "$output" "error ENOENT docker: POST /containers/nosuch/kill: 404 " "kill: 404 becomes ENOENT"
run "$driver" kill "$lcid" SIGFOO
assert_eq "$output" "error EINVAL signal 'SIGFOO': unknown signal name" "kill: bad signal refused before asking"

# ------------------------------------------------------------ reconnect ----

docker rm -f "$lcid" "$xcid" >/dev/null
connected_before=$(count_lines '^connected$')
reconnected() { [ "$(count_lines '^connected$')" -gt "$connected_before" ]; }
stop_dockerd
if wait_for 20 grep -q '^end ECONNRESET ' "$events_out"; then
    ok "reconnect: dockerd stopping ends the stream with ECONNRESET"
else
    fail "reconnect: dockerd stopping ends the stream with ECONNRESET" "$(tail -5 "$events_out")"
fi
if wait_for 10 grep -q '^end ECONNREFUSED .*is dockerd running' "$events_out"; then
    ok "reconnect: while dockerd is down the driver sees ECONNREFUSED"
else
    fail "reconnect: while dockerd is down the driver sees ECONNREFUSED" "$(tail -5 "$events_out")"
fi
run "$driver" ping
assert_contains "$output" "error ECONNREFUSED docker at $DOCKER_SOCK is unreachable: GET /_ping: " \
    "reconnect: ping says dockerd is down"

start_dockerd
if wait_for 20 reconnected; then
    ok "reconnect: stream re-established after dockerd came back"
else
    fail "reconnect: stream re-established after dockerd came back" "$(tail -5 "$events_out")"
fi
ncid=$(docker create --network none "$BUSYBOX_IMAGE" true)
if wait_for 10 grep -q "^event container create $ncid " "$events_out"; then
    ok "reconnect: events flow again"
else
    fail "reconnect: events flow again" "$(tail -5 "$events_out")"
fi
order=$(grep -E '^(connected|end ECONNRESET|end ECONNREFUSED|event container create '"$ncid"')' "$events_out" |
    awk '{ print $1 == "event" ? "event" : $1 == "end" ? $2 : $1 }' | uniq | tr '\n' ' ')
assert_eq "$order" "connected ECONNRESET ECONNREFUSED connected event " \
    "reconnect: connected, ended, down, connected, events"

# ----------------------------------------------------------------- stop ----

kill -TERM "$events_pid"
if wait_for 5 gone "$events_pid"; then
    ok "stop: SIGTERM (the stop fd) ends the stream at once"
else
    fail "stop: SIGTERM (the stop fd) ends the stream at once"
fi
rc=0
wait "$events_pid" || rc=$?
assert_eq "$rc:$(tail -1 "$events_out")" "0:stopped" "stop: events_run returned 0 for the stop fd"
if [ -s "$events_err" ]; then
    diag_file "$events_err"
fi

done_testing
