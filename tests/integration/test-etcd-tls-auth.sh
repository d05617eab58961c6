#!/bin/bash
# The etcd store over TLS with client certificates and etcd users (a real
# etcd-server 3.4 on loopback, certificates made here with openssl):
#   - put/get/ls/history and the watch work over etcds:// with a user;
#   - a wrong CA, a missing client certificate, a wrong password, an unknown
#     user, a user without permission on the prefix and missing credentials
#     each fail with their own one-line message, through secretctl and
#     through the store API (the watch driver);
#   - key and credentials files that others may read, or that belong to
#     another user, are refused before anything is sent;
#   - revoked tokens (auth disable/enable) and a restarted member (its
#     tokens gone) are replaced, for calls and for the watch stream.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
require_cmd etcd etcdctl curl openssl setpriv setsid
: "${ETCD_WATCH_DRIVER:?ETCD_WATCH_DRIVER must name the built etcd-watch-driver (meson sets it)}"

PREFIX=secretd-test
start_etcd_tls_auth "$PREFIX" || bail_out "etcd with TLS and auth did not start"
HOSTPORT=${ETCD_ENDPOINT#https://}
STORE=etcds://$HOSTPORT/$PREFIX
export XDG_CONFIG_HOME=$TEST_TMP/config
mkdir -m 0700 "$XDG_CONFIG_HOME"
"$SECRETCTL" keygen >/dev/null 2>&1 || bail_out "keygen failed"

values=$TEST_TMP/values
mkdir -m 0700 "$values"
printf 'tls-value-1' >"$values/v1"
printf 'tls-value-2' >"$values/v2"
printf 'tls-value-3' >"$values/v3"

# ctl FILES... -- ARGS: secretctl on the TLS store with the given etcd files.
ctl() {
    local opts=()
    while [ "$1" != -- ]; do
        opts+=("$1")
        shift
    done
    shift
    "$SECRETCTL" --store "$STORE" "${opts[@]}" "$@"
}
good_tls=(--etcd-ca "$ETCD_PKI/ca.pem" --etcd-cert "$ETCD_PKI/client.pem" --etcd-key "$ETCD_PKI/client.key")
good=("${good_tls[@]}" --etcd-auth-file "$ETCD_AUTH_APP")

# ------------------------------------------------------- the full flow -------
run ctl "${good[@]}" -- realm init
assert_eq "$status" 0 "realm init over TLS as user app"; [ "$status" = 0 ] || diag "$output"
AGENT_PUB=$("$SECRETD" init --key "$TEST_TMP/agent.key" 2>/dev/null) || bail_out "secretd init failed"
run ctl "${good[@]}" -- recipient add host "$AGENT_PUB"
assert_eq "$status" 0 "recipient add over TLS"; [ "$status" = 0 ] || diag "$output"
run ctl "${good[@]}" -- put db <"$values/v1"
assert_eq "$status" 0 "put over TLS as user app"; [ "$status" = 0 ] || diag "$output"
run ctl "${good[@]}" -- get db
assert_eq "$output" "tls-value-1" "get over TLS returns the value"
run ctl "${good[@]}" -- ls
assert_contains "$output" "db    1        active" "ls over TLS lists db"
run ctl "${good[@]}" -- history db
assert_contains "$output" "ok" "history over TLS verifies version 1"

# The same through the environment (file names only).
run env SECRETD_STORE="$STORE" SECRETD_ETCD_CA="$ETCD_PKI/ca.pem" SECRETD_ETCD_CERT="$ETCD_PKI/client.pem" \
    SECRETD_ETCD_KEY="$ETCD_PKI/client.key" SECRETD_ETCD_AUTH_FILE="$ETCD_AUTH_APP" "$SECRETCTL" get db
assert_eq "$output" "tls-value-1" "SECRETD_ETCD_* name the same files"

watch_env=(env SECRETD_ETCD_CA="$ETCD_PKI/ca.pem" SECRETD_ETCD_CERT="$ETCD_PKI/client.pem"
    SECRETD_ETCD_KEY="$ETCD_PKI/client.key" SECRETD_ETCD_AUTH_FILE="$ETCD_AUTH_APP")
spawn watch "${watch_env[@]}" "$ETCD_WATCH_DRIVER" --versions "$STORE"
watch_pid=$SPAWN_PID
wait_for 10 grep -qx ready "$TEST_TMP/watch.log" || bail_out "the watch driver did not start: $(cat "$TEST_TMP/watch.log")"
run ctl "${good[@]}" -- put db <"$values/v2"
if wait_for 10 grep -qx "changed db 2" "$TEST_TMP/watch.log"; then
    ok "the watch over TLS with a user reports version 2"
else
    fail "the watch over TLS with a user reports version 2" "$(cat "$TEST_TMP/watch.log")"
fi

stop_spawned() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# ---------------------------------------------------- each refusal -------
# refuses DESC NEEDLE FILES...: secretctl ls exits 1 with NEEDLE, on one line.
refuses() {
    local desc=$1 needle=$2
    shift 2
    run ctl "$@" -- ls
    if [ "$status" = 1 ] && [[ "$output" == *"$needle"* ]] && [ "$(wc -l <<<"$output")" = 1 ]; then
        ok "$desc: exit 1, one line"
    else
        fail "$desc: exit 1, one line" "status $status" "$output"
    fi
}
other_ca=(--etcd-ca "$ETCD_PKI/other/ca.pem" --etcd-cert "$ETCD_PKI/client.pem" --etcd-key "$ETCD_PKI/client.key"
    --etcd-auth-file "$ETCD_AUTH_APP")
no_cert=(--etcd-ca "$ETCD_PKI/ca.pem" --etcd-auth-file "$ETCD_AUTH_APP")

refuses "a wrong CA" "etcd at $HOSTPORT: authenticating as user 'app': TLS: the server's certificate was not accepted" \
    "${other_ca[@]}"
refuses "no client certificate" \
    "etcd at $HOSTPORT: authenticating as user 'app': TLS: the server requires a client certificate and none is configured" \
    "${no_cert[@]}"
refuses "a wrong password" \
    "etcd at $HOSTPORT: authentication as user 'app' failed: wrong password or no such user (etcd does not say which)" \
    "${good_tls[@]}" --etcd-auth-file "$ETCD_AUTH_BAD_PASSWORD"
refuses "an unknown user" \
    "etcd at $HOSTPORT: authentication as user 'nosuchuser' failed: wrong password or no such user" \
    "${good_tls[@]}" --etcd-auth-file "$ETCD_AUTH_UNKNOWN_USER"
refuses "a user without permission on the prefix" \
    "user 'noperm' has no permission on the prefix '$PREFIX/'" \
    "${good_tls[@]}" --etcd-auth-file "$ETCD_AUTH_NOPERM"
refuses "no credentials" \
    "etcd has authentication enabled and no credentials are configured (etcd-auth-file)" \
    "${good_tls[@]}"
run "$SECRETCTL" --store "etcd://$HOSTPORT/$PREFIX" --etcd-ca "$ETCD_PKI/ca.pem" ls
assert_contains "$output" "etcd-ca, etcd-cert and etcd-key need an etcds:// URL (TLS)" \
    "TLS files with a plain etcd:// URL are refused"

# The store API says the same: the watch driver warns with each message.
driver_says() {
    local desc=$1 needle=$2 name=$3
    shift 3
    spawn "$name" env "$@" "$ETCD_WATCH_DRIVER" "$STORE"
    if wait_for 10 grep -qF "$needle" "$TEST_TMP/$name.log"; then
        ok "store API: $desc"
    else
        fail "store API: $desc" "$(cat "$TEST_TMP/$name.log")"
    fi
    stop_spawned "$SPAWN_PID"
}
driver_says "a wrong CA" "TLS: the server's certificate was not accepted" w-ca \
    SECRETD_ETCD_CA="$ETCD_PKI/other/ca.pem" SECRETD_ETCD_CERT="$ETCD_PKI/client.pem" \
    SECRETD_ETCD_KEY="$ETCD_PKI/client.key" SECRETD_ETCD_AUTH_FILE="$ETCD_AUTH_APP"
driver_says "no client certificate" "the server requires a client certificate and none is configured" w-cert \
    SECRETD_ETCD_CA="$ETCD_PKI/ca.pem" SECRETD_ETCD_AUTH_FILE="$ETCD_AUTH_APP"
driver_says "a wrong password" "authentication as user 'app' failed: wrong password or no such user" w-pw \
    SECRETD_ETCD_CA="$ETCD_PKI/ca.pem" SECRETD_ETCD_CERT="$ETCD_PKI/client.pem" \
    SECRETD_ETCD_KEY="$ETCD_PKI/client.key" SECRETD_ETCD_AUTH_FILE="$ETCD_AUTH_BAD_PASSWORD"
driver_says "no permission" "user 'noperm' has no permission on the prefix '$PREFIX/'" w-perm \
    SECRETD_ETCD_CA="$ETCD_PKI/ca.pem" SECRETD_ETCD_CERT="$ETCD_PKI/client.pem" \
    SECRETD_ETCD_KEY="$ETCD_PKI/client.key" SECRETD_ETCD_AUTH_FILE="$ETCD_AUTH_NOPERM"

# ------------------------------------------------ private files' modes -------
cp "$ETCD_AUTH_APP" "$TEST_TMP/auth-0644"
chmod 0644 "$TEST_TMP/auth-0644"
refuses "a credentials file readable by others" \
    "etcd-auth-file $TEST_TMP/auth-0644: owned by uid 0 with mode 0644; it must be owned by uid 0 and mode 0600" \
    "${good_tls[@]}" --etcd-auth-file "$TEST_TMP/auth-0644"
cp "$ETCD_AUTH_APP" "$TEST_TMP/auth-uid1000"
chown 1000 "$TEST_TMP/auth-uid1000"
refuses "a credentials file of another user" "etcd-auth-file $TEST_TMP/auth-uid1000: owned by uid 1000" \
    "${good_tls[@]}" --etcd-auth-file "$TEST_TMP/auth-uid1000"
cp "$ETCD_PKI/client.key" "$TEST_TMP/key-0640"
chmod 0640 "$TEST_TMP/key-0640"
refuses "a client key readable by the group" "etcd-key $TEST_TMP/key-0640: owned by uid 0 with mode 0640" \
    --etcd-ca "$ETCD_PKI/ca.pem" --etcd-cert "$ETCD_PKI/client.pem" --etcd-key "$TEST_TMP/key-0640" \
    --etcd-auth-file "$ETCD_AUTH_APP"
ln -s "$ETCD_AUTH_APP" "$TEST_TMP/auth-link"
refuses "a credentials file that is a symlink" "etcd-auth-file $TEST_TMP/auth-link: is a symbolic link" \
    "${good_tls[@]}" --etcd-auth-file "$TEST_TMP/auth-link"

# --------------------------------------------------- tokens replaced -------
# auth disable + enable drops every token etcd issued: the watch driver's
# next call (the latest-version read after a report) must authenticate
# again by itself.
etcdctl_tls auth disable >/dev/null 2>&1
env -u ETCDCTL_API etcdctl --endpoints "$ETCD_ENDPOINT" --cacert "$ETCD_PKI/ca.pem" --cert "$ETCD_PKI/client.pem" \
    --key "$ETCD_PKI/client.key" auth enable >/dev/null 2>&1
run ctl "${good[@]}" -- put db <"$values/v3"
assert_eq "$status" 0 "put after the tokens were revoked"
if wait_for 10 grep -qx "changed db 3" "$TEST_TMP/watch.log"; then
    ok "the watcher's revoked token is replaced: it reads version 3"
else
    fail "the watcher's revoked token is replaced: it reads version 3" "$(tail -5 "$TEST_TMP/watch.log")"
fi

# A restarted member has forgotten its tokens: the watch stream reconnects
# with a stale one, is canceled as unauthenticated, and authenticates again.
restart_etcd || bail_out "etcd did not restart"
printf 'tls-value-4' >"$values/v4"
wait_for 10 ctl "${good[@]}" -- ls || true
run ctl "${good[@]}" -- put db <"$values/v4"
assert_eq "$status" 0 "put after the restart"
if wait_for 20 grep -qx "changed db 4" "$TEST_TMP/watch.log"; then
    ok "the watch stream resumes after the restart with a new token and reports version 4"
else
    fail "the watch stream resumes after the restart with a new token" "$(tail -8 "$TEST_TMP/watch.log")"
fi
assert_not_contains "$(cat "$TEST_TMP/watch.log")" "tls-value" "no value ever reaches the watcher's output"
stop_spawned "$watch_pid"

done_testing
