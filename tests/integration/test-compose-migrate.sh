#!/bin/bash
# secretctl compose migrate, end to end, on three compose projects:
#   map    environment: in map form, two services;
#   list   environment: in list form with ${VAR} from .env, plus an env_file;
#   user   a service running as user: "1000:1000" (owner of the files).
# For each: migrate (through the same put as `secretctl put`), the new file
# passes `docker-compose -f NEW config`, and Debian's docker-compose 1.29
# starts it against the private dockerd and the secretd agent: every service
# reads its secrets through *_FILE (checked by sha256) and has no secret in
# its environment.  No value is in the new files, migrate's output, the
# containers' configuration, or anywhere under the test dir outside the
# store and the inputs.  A compose file with a YAML anchor and a malformed
# one are refused with line and column, leaving no file and storing nothing.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker docker-compose curl setpriv setsid sha256sum grep
src_root=${SECRETD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

start_dockerd
busybox_image
agent_fixture
agent_start

# Values carry the suite's canary shape, so test-zz-disk-canary also looks
# for them after the suite.
mkdir -m 0700 "$TEST_TMP/values"
canary() {
    local v=$SECRETD_CANARY_PREFIX-$1-$(random_hex 24)
    printf '%s\n' "$v" >>"$TEST_TMP/values/all"
    printf '%s' "$v"
}
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# The app: print each NAME_FILE's checksum, whether NAME itself is set, and
# who may read the file.  "$$" keeps compose from interpolating.
app_command() {
    local var out=""
    for var in "$@"; do
        out+="echo \"$var: \$\$(sha256sum < \"\$\$${var}_FILE\" | cut -d' ' -f1) env=\$\${$var:-unset} \$\$(stat -L -c '%u %a' \"\$\$${var}_FILE\")\"; "
    done
    printf '[ "sh", "-c", "%s" ]' "${out//\"/\\\"}"
}

projects=()
declare -A expect_lines

# --- map: environment in map form, two services ---------------------------
p=$TEST_TMP/map
mkdir "$p"
db_pw=$(canary mapdb)
api_key=$(canary mapapi)
cat >"$p/docker-compose.yml" <<EOF
version: "2.4"
# map form
services:
  db:
    image: \${APP_IMAGE:-busybox}
    network_mode: none
    environment:
      DB_USER: app
      DB_PASSWORD: "$db_pw"
    command: $(app_command DB_PASSWORD)
  api:
    image: \${APP_IMAGE:-busybox}
    network_mode: none
    environment:
      API_KEY: '$api_key'
      DB_PASSWORD: "$db_pw"
    command: $(app_command API_KEY DB_PASSWORD)
EOF
projects+=(map)
expect_lines[map]="DB_PASSWORD: $(sha "$db_pw") env=unset 0 400
API_KEY: $(sha "$api_key") env=unset 0 400"

# --- list: list form, .env interpolation, env_file -------------------------
p=$TEST_TMP/list
mkdir "$p"
list_pw=$(canary listdb)
list_tok=$(canary listtok)
printf 'DB_PASSWORD=%s\nAPP_NAME=demo\n' "$list_pw" >"$p/.env"
printf '# from env_file\nLOG_LEVEL=debug\nexport SESSION_TOKEN="%s"\n' "$list_tok" >"$p/app.env"
cat >"$p/docker-compose.yml" <<EOF
version: "2.4"
services:
  app:
    image: \${APP_IMAGE:-busybox}
    network_mode: none
    env_file: app.env
    environment:
      - NAME=\${APP_NAME}
      - DB_PASSWORD=\${DB_PASSWORD}
    command: $(app_command DB_PASSWORD SESSION_TOKEN)
EOF
projects+=(list)
expect_lines[list]="DB_PASSWORD: $(sha "$list_pw") env=unset 0 400
SESSION_TOKEN: $(sha "$list_tok") env=unset 0 400"

# --- user: a service that is not root --------------------------------------
p=$TEST_TMP/user
mkdir "$p"
user_secret=$(canary usersecret)
cat >"$p/docker-compose.yml" <<EOF
version: "2.4"
services:
  worker:
    image: \${APP_IMAGE:-busybox}
    network_mode: none
    user: "1000:1000"
    environment:
      WORKER_SECRET: "$user_secret"
    command: $(app_command WORKER_SECRET)
EOF
projects+=(user)
expect_lines[user]="WORKER_SECRET: $(sha "$user_secret") env=unset 1000 400"

# Every input file as it was, to show migrate never changes one.
for name in "${projects[@]}"; do
    (cd "$TEST_TMP/$name" && find . -type f -exec sha256sum {} +) >"$TEST_TMP/$name.inputs"
done

compose() {
    local name=$1
    shift
    APP_IMAGE=$BUSYBOX_IMAGE docker-compose --ansi never -p "sdm${name}${TEST_RUN_ID,,}" \
        -f "$TEST_TMP/$name/docker-compose.secretd.yml" "$@"
}
for name in "${projects[@]}"; do
    on_exit "[ -z \"\$AGENT_PID\" ] || compose $name down -v --timeout 1 >/dev/null 2>&1 || true"
done

for name in "${projects[@]}"; do
    t0=$EPOCHREALTIME
    run "$SECRETCTL" compose migrate -f "$TEST_TMP/$name/docker-compose.yml" --driver "$AGENT_DRIVER"
    diag "compose migrate ($name) took $(elapsed "$t0")s"
    assert_eq "$status" 0 "$name: compose migrate"
    [ "$status" = 0 ] || diag "$output"
    printf '%s\n' "$output" >"$TEST_TMP/$name.migrate-output"
    assert_contains "$output" "docker-compose -f $TEST_TMP/$name/docker-compose.secretd.yml up -d" \
        "$name: migrate prints the docker-compose command to run"
    hits=$(grep -aFc -f "$TEST_TMP/values/all" "$TEST_TMP/$name.migrate-output" || true)
    assert_eq "$hits" 0 "$name: no value in migrate's output (diff included)"
    check "$name: the input files are unchanged" bash -c "cd '$TEST_TMP/$name' && sha256sum -c --quiet '$TEST_TMP/$name.inputs'"

    run compose "$name" config
    assert_eq "$status" 0 "$name: docker-compose -f NEW config accepts the new file"
    [ "$status" = 0 ] || diag "$output"

    # Detached, then wait for the services to finish: compose's attached
    # mode adds seconds of log polling per project.
    t0=$EPOCHREALTIME
    run compose "$name" up -d
    assert_eq "$status" 0 "$name: docker-compose up -d starts the migrated project"
    [ "$status" = 0 ] || diag "$output"
    ids=$(docker ps -aq --filter "label=com.docker.compose.project=sdm${name}${TEST_RUN_ID,,}")
    codes=$(docker wait $ids | sort -u | tr '\n' ' ')
    diag "docker-compose up ($name) and the services' run took $(elapsed "$t0")s"
    assert_eq "$codes" "0 " "$name: every service exits 0"
    output=$(for id in $ids; do docker logs "$id" 2>&1; done)
    while IFS= read -r line; do
        assert_contains "$output" "$line" "$name: a service read ${line%%:*} through ${line%%:*}_FILE (sha256, env, owner, mode)"
    done <<<"${expect_lines[$name]}"
    hits=$(printf '%s' "$output" | grep -aFc -f "$TEST_TMP/values/all" || true)
    assert_eq "$hits" 0 "$name: no value in the services' output"
    # What docker keeps of each container's configuration names files only.
    inspect=$(docker inspect $ids)
    hits=$(printf '%s' "$inspect" | grep -aFc -f "$TEST_TMP/values/all" || true)
    assert_eq "$hits" 0 "$name: no value in docker inspect of the containers"
    assert_contains "$inspect" "_FILE=/run/secrets/" "$name: the containers get *_FILE=/run/secrets/..."

    if [ "$name" = map ]; then
        # examples/compose/secretd-env, for an app that reads only $DB_PASSWORD,
        # on the volume migrate made.
        run docker run --rm --network none -v "sdm${name}${TEST_RUN_ID,,}_secretd_db:/run/secrets" \
            -v "$src_root/examples/compose/secretd-env:/secretd-env:ro" \
            -e DB_PASSWORD_FILE=/run/secrets/db_password "$BUSYBOX_IMAGE" \
            /secretd-env sh -c 'echo "$(printf %s "$DB_PASSWORD" | sha256sum | cut -d" " -f1) file=${DB_PASSWORD_FILE:-unset}"'
        assert_eq "$output" "$(sha "$db_pw") file=unset" \
            "map: secretd-env exports DB_PASSWORD from DB_PASSWORD_FILE (and unsets it) for an app that reads only the variable"
    fi

    run compose "$name" down -v --timeout 1
    assert_eq "$status" 0 "$name: docker-compose down -v"
done
check "every instance is wiped once the services are down" wait_for 20 no_instances_left

# Where the values must not be: any file under the test dir, except the
# store (envelopes), the inputs (which hold them by design) and the value list.
inputs=()
for name in "${projects[@]}"; do
    inputs+=("$TEST_TMP/$name/docker-compose.yml")
done
inputs+=("$TEST_TMP/list/.env" "$TEST_TMP/list/app.env")
leaks=$(grep -r -a -l -s -D skip -F -f "$TEST_TMP/values/all" "$TEST_TMP" 2>/dev/null |
    grep -v -e "^$TEST_TMP/store/" -e "^$TEST_TMP/values/" | grep -vxF -f <(printf '%s\n' "${inputs[@]}") || true)
assert_eq "$leaks" "" "no value on disk outside the store and the input files (new files, agent state and logs, docker data)"
check "control: the grep finds the values in an input" grep -qF -f "$TEST_TMP/values/all" "$TEST_TMP/map/docker-compose.yml"

# --- refusals: nothing written, nothing stored -----------------------------
stored_before=$("$SECRETCTL" ls --json | grep -c '"name"')
bad=$TEST_TMP/bad
mkdir "$bad"
refused() {
    local desc=$1 expect=$2 before after
    before=$(ls -A "$bad")
    run "$SECRETCTL" compose migrate -f "$bad/docker-compose.yml" --driver "$AGENT_DRIVER"
    assert_eq "$status" 2 "$desc: refused (exit 2)"
    assert_contains "$output" "$expect" "$desc: the message names line and column"
    after=$(ls -A "$bad")
    assert_eq "$after" "$before" "$desc: no file left behind"
}
printf 'x-env: &env\n  DB_PASSWORD: %s\nservices:\n  a:\n    environment: *env\n' "$(canary anchor)" \
    >"$bad/docker-compose.yml"
refused "a YAML anchor" "docker-compose.yml:1:8: YAML anchors (&name) and aliases (*name) are not supported"
printf 'services:\n  a:\n    environment:\n      DB_PASSWORD: %s\n    image: [x\n' "$(canary malformed)" \
    >"$bad/docker-compose.yml"
refused "a malformed file" "docker-compose.yml:6:1: not valid YAML"
assert_eq "$("$SECRETCTL" ls --json | grep -c '"name"')" "$stored_before" "the refusals stored nothing"

assert_log_free_of "no value in the agent's log" "$TEST_TMP/values/all"
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "SIGTERM: the agent exits 0"

done_testing
