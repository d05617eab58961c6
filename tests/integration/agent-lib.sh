# shellcheck shell=bash
# tests/integration/agent-lib.sh: a secretd agent fixture on top of lib.sh.
#
# Source it after lib.sh:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   . "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"
#
# Functions
#   agent_fixture            a developer identity (secretctl keygen in a
#                            private XDG_CONFIG_HOME), a file store, the agent
#                            key (secretd init), the agent as recipient
#                            "host" (which makes the store's realm, with the
#                            developer as its admin), the agent pinned to it
#                            (secretd join --realm-file) and a fresh driver
#                            name.  Exports XDG_CONFIG_HOME and
#                            SECRETD_STORE; sets AGENT_*.
#   agent_pin_realm          pins the agent to the realm of $SECRETD_STORE
#                            (secretd join --realm-file $AGENT_REALM with the
#                            line `secretctl realm pin` prints); for a test
#                            that moves to another store
#   agent_use_etcd PREFIX [MEMBERS]
#                            after agent_fixture and start_etcd: the store is
#                            etcd://<the test's etcd>/PREFIX, or
#                            etcd://MEMBERS/PREFIX (MEMBERS: host:port,...,
#                            e.g. $ETCD_CLUSTER_ENDPOINTS) (exported as
#                            SECRETD_STORE) with a realm of its own (secretctl
#                            realm init: only an empty file store makes one by
#                            itself), the agent its recipient "host" and
#                            pinned to it
#   agent_add DIR RECIPIENT  another agent beside the first (two hosts on one
#                            store): agent_save the current one first; sets
#                            every AGENT_* path to $TEST_TMP/DIR/..., a new
#                            driver name and key (secretd init), adds it as
#                            recipient RECIPIENT and pins it to the realm
#   agent_save SLOT / agent_load SLOT
#                            keep / bring back the AGENT_* variables of one
#                            agent (pid, driver, socket, key, paths), to
#                            switch between agents
#   put_secret NAME FILE     secretctl put NAME < FILE (value never in argv)
#   bob ARGS...              secretctl as a second developer, bob, whose
#                            identity and pins are in $TEST_TMP/bob (bob_joins
#                            makes his key, its line in $TEST_TMP/bob.id, and
#                            pins the realm of $SECRETD_STORE)
#   agent_start [ARGS...]    starts `secretd run` (+ ARGS) in the background,
#                            stderr appended to $AGENT_LOG; waits until the
#                            plugin socket answers /Plugin.Activate; registers
#                            the pid for teardown.  Sets AGENT_PID.  Call from
#                            the main shell.
#   agent_refused [ARGS...]  runs `secretd run` with the same flags in the
#                            foreground, for a start that must fail: sets
#                            $status and $output (`run`); gives up after 30 s
#                            (status 124) if the agent starts after all.
#   agent_stop [--kill]      SIGTERM (or SIGKILL) and waits (10 s, then
#                            SIGKILL); sets AGENT_EXIT_STATUS.
#   agent_restart [--kill] [ARGS...]
#                            agent_stop then agent_start
#   plugin_call METHOD JSON  POSTs JSON to /VolumeDriver.METHOD (or
#                            /Plugin.Activate for METHOD=Plugin.Activate) on
#                            the agent's socket, prints the reply body
#   agent_instances          prints the instance ids in $AGENT_STATE/instances
#   agent_instance_count     prints how many there are
#   agent_mounts             prints the mount points below $AGENT_STATE
#                            (from /proc/self/mountinfo)
#   instance_mounted ID      true when instance ID has a mount (rw or ro)
#   instance_gone ID         true when instance ID is neither in the state dir
#                            nor in /proc/self/mountinfo
#   no_instances_left        true when there is no instance dir and nothing
#                            mounted below $AGENT_STATE/instances
#   instance_count_is N      true when there are exactly N instance dirs
#   container_instance CONTAINER
#                            prints the id of the instance a running
#                            container has at /run/secrets, matched by the
#                            tmpfs device number (mountinfo field 3) inside
#                            the container and on the host.  (`docker
#                            inspect`'s Mounts.Source cannot tell: for a
#                            plugin volume dockerd shows whatever path the
#                            volume's shared adapter last got from Mount or
#                            Get, not this container's.)
#   assert_log_free_of DESC FILE...
#                            one test point: no line of any FILE (canary
#                            strings, one per line) appears in $AGENT_LOG
#   random_hex N             N random hex digits
#   sha256_of FILE           hex digest only
#
# Variables: AGENT_DRIVER, AGENT_SOCK, AGENT_KEY, AGENT_PUB, AGENT_STATE,
#   AGENT_FLOOR (the rollback floor file, --floor-file),
#   AGENT_CACHE (the local cache of envelopes, --cache-dir; used with etcd),
#   AGENT_ADMIN_SOCK (--admin-socket), AGENT_AUDIT (--audit-log),
#   AGENT_LOG, AGENT_REALM (the pin file, --realm-file), AGENT_WRITER (a file
#   holding the developer's `secretctl whoami` line), AGENT_PID,
#   AGENT_EXIT_STATUS, AGENT_START_SECONDS,
#   AGENT_ARGS (array of extra `secretd run` flags used by every start),
#   AGENT_LOG_LEVEL (default $SECRETD_TEST_AGENT_LOG_LEVEL or debug: the
#   canary checks want the chattiest log),
#   AGENT_CONFIG (a secretd.conf passed as --config; log-level and audit-log
#   are then left to the file instead of flags).

: "${SECRETD:?SECRETD must name the built secretd (meson sets it)}"
: "${SECRETCTL:?SECRETCTL must name the built secretctl (meson sets it)}"

AGENT_PID=""
AGENT_EXIT_STATUS=""
AGENT_ARGS=()
AGENT_LOG_LEVEL=${SECRETD_TEST_AGENT_LOG_LEVEL:-debug}
# Secret values in every test carry "$SECRETD_CANARY_PREFIX-<word>-<24+ hex>"
# (canary-db-3f9a..., canary-restart-...): test-zz-disk-canary greps the
# disks for that shape after the whole suite.
export SECRETD_CANARY_PREFIX=canary

random_hex() {
    local n=$1
    od -An -N $(((n + 1) / 2)) -tx1 /dev/urandom | tr -d ' \n' | cut -c1-"$n"
}

sha256_of() {
    local sum
    sum=$(sha256sum <"$1")
    echo "${sum%% *}"
}

agent_fixture() {
    export XDG_CONFIG_HOME=$TEST_TMP/config
    export SECRETD_STORE=file://$TEST_TMP/store
    mkdir -m 0700 "$XDG_CONFIG_HOME" "$TEST_TMP/store" "$TEST_TMP/agent"
    AGENT_KEY=$TEST_TMP/agent/agent.key
    AGENT_STATE=$TEST_TMP/agent/state
    # Never the host's /var/lib/secretd/delivered.json: runs reuse names.
    AGENT_FLOOR=$TEST_TMP/agent/delivered.json
    # Nor the host's /var/lib/secretd/cache.
    AGENT_CACHE=$TEST_TMP/agent/cache
    AGENT_LOG=$TEST_TMP/agent/secretd.log
    # Never the host's /run/secretd/admin.sock or /var/log/secretd.
    AGENT_ADMIN_SOCK=$TEST_TMP/agent/admin.sock
    AGENT_AUDIT=$TEST_TMP/agent/audit.log
    AGENT_REALM=$TEST_TMP/agent/realm
    AGENT_WRITER=$TEST_TMP/agent/writer
    AGENT_DRIVER=$(unique_driver_name)
    AGENT_SOCK=/run/docker/plugins/$AGENT_DRIVER.sock
    "$SECRETCTL" keygen >"$TEST_TMP/keygen.out" 2>&1 \
        || bail_out "secretctl keygen failed: $(cat "$TEST_TMP/keygen.out")"
    "$SECRETCTL" whoami >"$AGENT_WRITER" 2>"$TEST_TMP/whoami.err" \
        || bail_out "secretctl whoami failed: $(cat "$TEST_TMP/whoami.err")"
    AGENT_PUB=$("$SECRETD" init --key "$AGENT_KEY" 2>"$TEST_TMP/init.err") \
        || bail_out "secretd init failed: $(cat "$TEST_TMP/init.err")"
    local pub
    pub=$("$SECRETD" pubkey --key "$AGENT_KEY" 2>"$TEST_TMP/pubkey.err") \
        || bail_out "secretd pubkey failed: $(cat "$TEST_TMP/pubkey.err")"
    [ "$pub" = "$AGENT_PUB" ] \
        || bail_out "secretd init printed '$AGENT_PUB' but pubkey prints '$pub'"
    # The first recipient of an empty file store makes its realm.
    "$SECRETCTL" recipient add host "$AGENT_PUB" >"$TEST_TMP/recipient.out" 2>&1 \
        || bail_out "secretctl recipient add failed: $(cat "$TEST_TMP/recipient.out")"
    agent_pin_realm
    diag "agent fixture: driver $AGENT_DRIVER, store $SECRETD_STORE, writer $(cat "$AGENT_WRITER")"
}

agent_pin_realm() {
    local pin
    pin=$("$SECRETCTL" realm pin 2>"$TEST_TMP/realm-pin.err") \
        || bail_out "secretctl realm pin failed: $(cat "$TEST_TMP/realm-pin.err")"
    "$SECRETD" join --realm-file "$AGENT_REALM" "$pin" >"$TEST_TMP/join.out" 2>&1 \
        || bail_out "secretd join failed: $(cat "$TEST_TMP/join.out")"
}

agent_use_etcd() {
    local members=${2:-${ETCD_ENDPOINT#http://}}
    export SECRETD_STORE=etcd://$members/$1
    "$SECRETCTL" realm init >"$TEST_TMP/realm-etcd.out" 2>&1 \
        || bail_out "realm init on etcd failed: $(cat "$TEST_TMP/realm-etcd.out")"
    "$SECRETCTL" recipient add host "$AGENT_PUB" >"$TEST_TMP/recipient-etcd.out" 2>&1 \
        || bail_out "recipient add on etcd failed: $(cat "$TEST_TMP/recipient-etcd.out")"
    agent_pin_realm
}

_agent_vars=(AGENT_PID AGENT_DRIVER AGENT_SOCK AGENT_KEY AGENT_PUB AGENT_STATE AGENT_FLOOR AGENT_CACHE
    AGENT_ADMIN_SOCK AGENT_AUDIT AGENT_LOG AGENT_REALM)

agent_save() {
    local v
    for v in "${_agent_vars[@]}"; do
        printf -v "_agent_${1}_$v" '%s' "${!v}"
    done
}

agent_load() {
    local v saved
    for v in "${_agent_vars[@]}"; do
        saved=_agent_${1}_$v
        printf -v "$v" '%s' "${!saved}"
    done
}

agent_add() {
    local dir=$TEST_TMP/$1
    mkdir -m 0700 "$dir"
    AGENT_PID=""
    AGENT_DRIVER=$(unique_driver_name)
    AGENT_SOCK=/run/docker/plugins/$AGENT_DRIVER.sock
    AGENT_KEY=$dir/agent.key
    AGENT_STATE=$dir/state
    AGENT_FLOOR=$dir/delivered.json
    AGENT_CACHE=$dir/cache
    AGENT_ADMIN_SOCK=$dir/admin.sock
    AGENT_AUDIT=$dir/audit.log
    AGENT_LOG=$dir/secretd.log
    AGENT_REALM=$dir/realm
    AGENT_PUB=$("$SECRETD" init --key "$AGENT_KEY" 2>"$dir/init.err") \
        || bail_out "secretd init failed: $(cat "$dir/init.err")"
    "$SECRETCTL" recipient add "$2" "$AGENT_PUB" >"$dir/recipient.out" 2>&1 \
        || bail_out "secretctl recipient add $2 failed: $(cat "$dir/recipient.out")"
    agent_pin_realm
}

bob() { XDG_CONFIG_HOME=$TEST_TMP/bob "$SECRETCTL" "$@"; }

bob_joins() {
    mkdir -m 0700 "$TEST_TMP/bob"
    bob keygen >"$TEST_TMP/bob.id" 2>&1 || bail_out "bob's keygen failed: $(cat "$TEST_TMP/bob.id")"
    bob realm join "$("$SECRETCTL" realm pin)" >/dev/null 2>"$TEST_TMP/bob-join.err" \
        || bail_out "bob's realm join failed: $(cat "$TEST_TMP/bob-join.err")"
}

put_secret() {
    "$SECRETCTL" put "$1" <"$2"
}

plugin_call() {
    local method=$1 body=${2:-}
    [[ "$method" == Plugin.* ]] || method=VolumeDriver.$method
    curl -sS --max-time 130 --unix-socket "$AGENT_SOCK" \
        -H 'Accept: application/vnd.docker.plugins.v1.2+json' \
        -X POST --data-binary "$body" "http://localhost/$method"
}

_agent_answers() {
    if ! pid_alive "$AGENT_PID"; then
        _agent_died=1
        return 0
    fi
    [ -S "$AGENT_SOCK" ] && plugin_call Plugin.Activate '' 2>/dev/null | grep -q VolumeDriver
}

# The fixture's `secretd run` flags, then AGENT_ARGS, then the arguments
# (a repeated flag overrides the earlier one), into _agent_run_flags.
_agent_flags() {
    _agent_run_flags=(
        --store "$SECRETD_STORE"
        --driver "$AGENT_DRIVER"
        --key "$AGENT_KEY"
        --realm-file "$AGENT_REALM"
        --state-dir "$AGENT_STATE"
        --floor-file "$AGENT_FLOOR"
        --cache-dir "$AGENT_CACHE"
        --admin-socket "$AGENT_ADMIN_SOCK"
        --docker-socket "$DOCKER_SOCK"
    )
    if [ -n "${AGENT_CONFIG:-}" ]; then
        # log-level and audit-log come from the file (SIGHUP reloads it).
        _agent_run_flags+=(--config "$AGENT_CONFIG")
    else
        _agent_run_flags+=(--log-level "$AGENT_LOG_LEVEL" --audit-log "$AGENT_AUDIT")
    fi
    _agent_run_flags+=("${AGENT_ARGS[@]}" "$@")
}

agent_refused() {
    _agent_flags "$@"
    run timeout 30 "$SECRETD" run "${_agent_run_flags[@]}"
}

agent_start() {
    local t0
    t0=$EPOCHREALTIME
    if [ -n "$AGENT_PID" ] && pid_alive "$AGENT_PID"; then
        bail_out "agent_start: already running ($AGENT_PID)"
    fi
    mkdir -p "$AGENT_STATE"
    echo "=== agent_start $(date -u +%FT%T.%NZ) ===" >>"$AGENT_LOG"
    # Same launch as lib.sh's daemons: own session (a ^C reaches the test
    # shell only, whose teardown stops things in order) and a death signal
    # tied to the test shell.
    _agent_flags "$@"
    setsid setpriv --pdeathsig TERM -- "$SECRETD" run "${_agent_run_flags[@]}" \
        </dev/null >>"$AGENT_LOG" 2>&1 &
    AGENT_PID=$!
    register_pid "$AGENT_PID" secretd
    _agent_died=0
    if ! wait_for 30 _agent_answers || [ "$_agent_died" = 1 ]; then
        diag "secretd did not answer on $AGENT_SOCK (pid $AGENT_PID, died=$_agent_died)"
        diag_file "$AGENT_LOG"
        return 1
    fi
    AGENT_START_SECONDS=$(elapsed "$t0")
    diag "secretd $AGENT_PID answers on $AGENT_SOCK after ${AGENT_START_SECONDS}s"
}

agent_stop() {
    local sig=TERM
    [ "${1:-}" = --kill ] && sig=KILL
    AGENT_EXIT_STATUS=""
    [ -n "$AGENT_PID" ] || return 0
    kill -s "$sig" "$AGENT_PID" 2>/dev/null || true
    # SIGKILL cannot be ignored: reap at once, which also keeps bash's
    # "Killed" job notice off the TAP stream's stderr.
    if [ "$sig" = KILL ]; then
        { wait "$AGENT_PID"; } 2>/dev/null && AGENT_EXIT_STATUS=0 || AGENT_EXIT_STATUS=$?
        AGENT_PID=""
        return 0
    fi
    if ! wait_for 10 _pid_gone "$AGENT_PID"; then
        diag "secretd $AGENT_PID ignored SIG$sig for 10 s; killing it"
        kill -KILL "$AGENT_PID" 2>/dev/null || true
        wait_for 5 _pid_gone "$AGENT_PID" || true
    fi
    # Our child: wait gives its exit status (128+N after a signal).
    if wait "$AGENT_PID" 2>/dev/null; then
        AGENT_EXIT_STATUS=0
    else
        AGENT_EXIT_STATUS=$?
    fi
    AGENT_PID=""
}

agent_restart() {
    local kill=()
    if [ "${1:-}" = --kill ]; then
        kill=(--kill)
        shift
    fi
    agent_stop "${kill[@]}"
    agent_start "$@"
}

agent_instances() {
    [ -d "$AGENT_STATE/instances" ] || return 0
    find "$AGENT_STATE/instances" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort
}

agent_instance_count() {
    local ids
    ids=$(agent_instances)
    if [ -z "$ids" ]; then
        echo 0
    else
        wc -l <<<"$ids"
    fi
}

agent_mounts() {
    local mp
    awk '{ print $5 }' /proc/self/mountinfo | while IFS= read -r mp; do
        mp=$(printf '%b' "$mp")
        if [[ "$mp" == "$AGENT_STATE/"* ]]; then
            echo "$mp"
        fi
    done
}

instance_count_is() {
    [ "$(agent_instance_count)" = "$1" ]
}

# (grep -q on a here-string, not a pipe: with pipefail an early grep exit
# would turn SIGPIPE in the writer into a failure.)
instance_mounted() {
    local mounts
    mounts=$(agent_mounts)
    [ -n "$1" ] && grep -qF "$AGENT_STATE/instances/$1/" <<<"$mounts"
}

instance_gone() {
    local id=$1
    [ -n "$id" ] && [ ! -e "$AGENT_STATE/instances/$id" ] && ! instance_mounted "$id"
}

no_instances_left() {
    local mounts
    mounts=$(agent_mounts)
    [ "$(agent_instance_count)" = 0 ] && ! grep -qF "$AGENT_STATE/instances/" <<<"$mounts"
}

container_instance() {
    local dev mp
    dev=$(docker exec "$1" awk '$5 == "/run/secrets" { print $3 }' /proc/self/mountinfo) || return 1
    [ -n "$dev" ] || return 1
    mp=$(awk -v d="$dev" -v p="$AGENT_STATE/instances/" \
        '$3 == d && index($5, p) == 1 && $5 ~ /\/ro$/ { print $5; exit }' /proc/self/mountinfo)
    [ -n "$mp" ] || return 1
    mp=${mp#"$AGENT_STATE/instances/"}
    echo "${mp%/ro}"
}

assert_log_free_of() {
    local desc=$1 f hits=""
    shift
    for f in "$@"; do
        if grep -aqF -f "$f" "$AGENT_LOG"; then
            hits+=" $f"
        fi
    done
    if [ -z "$hits" ]; then
        ok "$desc"
    else
        # Never print the value itself, only where it leaked.
        fail "$desc" "a canary from$hits appears in $AGENT_LOG on line(s):" \
            "$(for f in "$@"; do grep -anF -f "$f" "$AGENT_LOG" | cut -d: -f1; done | sort -un | tr '\n' ' ')"
    fi
}
