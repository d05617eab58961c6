#!/bin/bash
# examples/compose/docker-compose.yml, run as shipped by Debian's
# docker-compose 1.29 against a real dockerd and a secretd agent: the app
# reads APP_PASSWORD_FILE=/run/secrets/app_password through the secretd
# volume (byte-exact, by checksum), and `down -v` removes the volume and
# leaves no tmpfs instance behind.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker docker-compose curl setpriv setsid sha256sum

src_root=${SECRETD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
compose_file=$src_root/examples/compose/docker-compose.yml
[ -r "$compose_file" ] || bail_out "no $compose_file"

start_dockerd
busybox_image
agent_fixture

mkdir -m 0700 "$TEST_TMP/values"
canary=canary-compose-$(random_hex 24)
printf '%s' "$canary" >"$TEST_TMP/values/app_password"
printf '%s\n' "$canary" >"$TEST_TMP/canaries"
expected_sha=$(sha256_of "$TEST_TMP/values/app_password")
check "secretctl put app_password" put_secret app_password "$TEST_TMP/values/app_password"

agent_start

# Lowercase letters, digits and '-' only: compose 1.29 would silently drop
# anything else from the project name, and with it from the volume name.
project=sdc-$TEST_RUN_ID
project=${project,,}
project=${project//[^a-z0-9-]/}
volume=${project}_secrets
compose() {
    SECRETD_DRIVER=$AGENT_DRIVER APP_IMAGE=$BUSYBOX_IMAGE \
        docker-compose --ansi never -p "$project" -f "$compose_file" "$@"
}
# If the test stops early, take the project down while the agent still runs
# (this runs before the agent's own teardown).  Once the agent is gone any
# volume call stalls ~15 s per try in dockerd's plugin retries: skip it then.
on_exit '[ -z "$AGENT_PID" ] || compose down -v --timeout 1 >/dev/null 2>&1 || true'

t0=$EPOCHREALTIME
run compose up --exit-code-from app
diag "docker-compose up took $(elapsed "$t0")s"
assert_eq "$status" 0 "docker-compose up: the app service exits 0"
[ "$status" = 0 ] || diag "$output"
assert_contains "$output" "from /run/secrets/app_password, sha256 $expected_sha" \
    "the app read APP_PASSWORD_FILE through the secretd volume (sha256 matches the put value)"
assert_contains "$output" "read ${#canary} bytes" "the app read exactly the bytes that were put"
assert_not_contains "$output" "$canary" "the value itself is not in compose's output"

run docker volume inspect -f '{{.Driver}}' "$volume"
assert_eq "$output" "$AGENT_DRIVER" "compose created $volume with the secretd driver (driver: \${SECRETD_DRIVER})"

check "after the service exited no tmpfs instance is left" wait_for 20 no_instances_left

run compose down -v --timeout 1
assert_eq "$status" 0 "docker-compose down -v"
[ "$status" = 0 ] || diag "$output"
run docker volume ls -q
assert_not_contains "$output" "$volume" "down -v removed the volume (gone from docker volume ls)"
check "nothing is mounted below the agent's state dir" eval '[ -z "$(agent_mounts)" ]'

assert_log_free_of "the password never appears in the agent's log" "$TEST_TMP/canaries"
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "SIGTERM: the agent exits 0"

done_testing
