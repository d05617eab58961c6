#!/bin/bash
# The store contract (tests/store-contract.c, the cases the unit suite runs
# on a file store) against real etcd: one plain member (etcd://), then one
# member with TLS, client certificates and a user (etcds://).  Same
# program, same cases: the backends are interchangeable.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
require_cmd etcd etcdctl curl openssl setpriv setsid
: "${STORE_CONTRACT:?STORE_CONTRACT must name the built store-contract (meson sets it)}"

# contract DESC URL [ENV...]: one test point, the program's TAP as diagnostics.
contract() {
    local desc=$1 url=$2 out
    shift 2
    if out=$(env "$@" "$STORE_CONTRACT" "$url" 2>&1); then
        ok "$desc ($(grep -c '^ok' <<<"$out") cases)"
    else
        fail "$desc" "$(grep -v '^ok' <<<"$out")"
    fi
}

contract "file store" "file://$TEST_TMP/file-store"

start_etcd || bail_out "etcd did not start"
contract "etcd, one member" "etcd://${ETCD_ENDPOINT#http://}/contract-plain"
stop_etcd
rm -rf "$ETCD_DATA_DIR"

start_etcd_tls_auth contract-tls || bail_out "etcd with TLS and auth did not start"
contract "etcds, client certificate and user" "etcds://${ETCD_ENDPOINT#https://}/contract-tls" \
    SECRETD_ETCD_CA="$ETCD_PKI/ca.pem" SECRETD_ETCD_CERT="$ETCD_PKI/client.pem" \
    SECRETD_ETCD_KEY="$ETCD_PKI/client.key" SECRETD_ETCD_AUTH_FILE="$ETCD_AUTH_APP"

done_testing
