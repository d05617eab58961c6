#!/bin/bash
# A Docker Swarm service gets its secrets from the secretd agent through a
# volume mount, and a put rotates them in the running task without a
# service update (docs/agent.md "Swarm"):
#   docker service create --mount type=volume,source=V,target=/run/secrets,
#       volume-driver=secretd,volume-opt=secrets=token ...
# On the harness's private dockerd: `docker swarm init` on loopback, the
# service created from the image id with --no-resolve-image (no registry).

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid sha256sum

start_dockerd
busybox_image
agent_fixture
agent_start

# Swarm places a task only on a node that reports the volume plugin, and
# dockerd reports a plugin of the /run/docker/plugins kind only once it has
# loaded it: `docker volume ls` does (as does any volume of the driver).  A
# node that joins afterwards reports it in its next status update (within
# 20 s); before `swarm init` it is in the first one.
run docker volume ls
assert_eq "$status" 0 "docker volume ls (dockerd loads the secretd plugin)"
run docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:0
assert_eq "$status" 0 "docker swarm init on the private dockerd"
[ "$status" = 0 ] || bail_out "no swarm: $output"
# Before the agent goes (teardown is last-in first-out): leaving removes the
# service's tasks, whose volumes the agent must unmount.
on_exit 'docker swarm leave --force >/dev/null 2>&1 || true'

mkdir -m 0700 "$TEST_TMP/values"
value1=$SECRETD_CANARY_PREFIX-swarm1-$(random_hex 24)
value2=$SECRETD_CANARY_PREFIX-swarm2-$(random_hex 24)
printf '%s\n%s\n' "$value1" "$value2" >"$TEST_TMP/values/all"
printf '%s' "$value1" >"$TEST_TMP/values/token"
check "secretctl put token" put_secret token "$TEST_TMP/values/token"

service=sdswarm-$TEST_RUN_ID
service=${service,,}
opts="volume-opt=secrets=token,volume-opt=uid=1000,volume-opt=mode=0400"
advertised() {
    docker node inspect self --format '{{range .Description.Engine.Plugins}}{{.Type}}/{{.Name}} {{end}}' |
        grep -qw "Volume/$AGENT_DRIVER"
}
check "the swarm node reports the secretd volume plugin" wait_for 30 advertised

t0=$EPOCHREALTIME
run docker service create --detach --quiet --name "$service" --no-resolve-image \
    --restart-condition none \
    --mount "type=volume,source=$service-secrets,target=/run/secrets,volume-driver=$AGENT_DRIVER,$opts" \
    --user 1000 \
    "$BUSYBOX_IMAGE_ID" sleep 600
assert_eq "$status" 0 "docker service create with a secretd volume mount"
[ "$status" = 0 ] || diag "$output"

task_container() {
    docker ps -q --filter "label=com.docker.swarm.service.name=$service" --filter status=running | head -n 1
}
container=""
running() { container=$(task_container) && [ -n "$container" ]; }
if wait_for 60 running; then
    ok "the service's task runs (after $(elapsed "$t0")s)"
else
    fail "the service's task runs" "$(docker service ps --no-trunc "$service" 2>&1)"
    done_testing
    exit 1
fi
reads() { [ "$(docker exec "$container" cat /run/secrets/token)" = "$1" ]; }
check "the task reads the secret from /run/secrets/token" wait_for 20 reads "$value1"
assert_eq "$(docker exec "$container" stat -L -c '%u %a' /run/secrets/token)" "1000 400" \
    "the file is owned by the service's user (volume-opt=uid) with mode 0400"
run docker exec "$container" sh -c 'touch /run/secrets/x'
assert_contains "$output" "Read-only file system" "the task cannot write to /run/secrets"
instance=$(container_instance "$container") || instance=""
check "the task's /run/secrets is a secretd tmpfs instance" test -n "$instance"
spec_before=$(docker service inspect -f '{{.Version.Index}}' "$service")

# Rotation: a put, and the running task sees the new value; the service is
# not updated and the task not replaced.
printf '%s' "$value2" >"$TEST_TMP/values/token"
t0=$EPOCHREALTIME
check "secretctl put token (a new version)" put_secret token "$TEST_TMP/values/token"
check "the running task reads the new version, without a service update" wait_for 30 reads "$value2"
diag "rotation seen in the task $(elapsed "$t0")s after the put"
assert_eq "$(task_container)" "$container" "the same container (no restart, no new task)"
assert_eq "$(docker service inspect -f '{{.Version.Index}}' "$service")" "$spec_before" \
    "the service spec is unchanged (no docker service update)"

inspect=$(docker service inspect "$service"; docker inspect "$container")
hits=$(printf '%s' "$inspect" | grep -aFc -f "$TEST_TMP/values/all" || true)
assert_eq "$hits" 0 "no value in docker service inspect or docker inspect"

run docker service rm "$service"
assert_eq "$status" 0 "docker service rm"
gone() { [ -z "$(docker ps -aq --filter "label=com.docker.swarm.service.name=$service")" ]; }
check "the task's container goes" wait_for 60 gone
check "the task's tmpfs instance is wiped" wait_for 30 instance_gone "$instance"

assert_log_free_of "no value in the agent's log" "$TEST_TMP/values/all"
done_testing
