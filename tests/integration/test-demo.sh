#!/bin/bash
# README's first command, `sudo examples/demo.sh`, keeps to private paths:
# run against the harness's dockerd (DOCKER_HOST) with this build's
# binaries (SECRETD_DEMO_BUILD), it passes, and afterwards nothing under
# /etc/secretd, /var/lib/secretd, /run/secretd or /var/log/secretd is newer
# than a marker file made before it (a directory that did not exist still
# does not), no plugin socket of the demo is left in /run/docker/plugins,
# and its temp directory is gone.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd dockerd docker

start_dockerd
# The demo's image, imported from the harness's cached rootfs: the demo then
# skips building one (slow on a loaded machine; not what is tested here).
busybox_image secretd-demo-busybox
host_dirs_mark
demo_tmp_before=$(find /tmp -maxdepth 1 -name 'secretd-demo.*' | sort)

run env SECRETD_DEMO_BUILD="$SECRETD_BUILD_ROOT" "$SECRETD_SOURCE_ROOT/examples/demo.sh"
printf '%s\n' "$output" >"$TEST_TMP/demo.out"
if [ "$status" = 0 ] && [[ "$output" == *$'\ndemo: OK'* ]]; then
    ok "examples/demo.sh passes and prints 'demo: OK'"
else
    fail "examples/demo.sh passes and prints 'demo: OK'" "exit status $status"
    diag_file "$TEST_TMP/demo.out" 60
fi
assert_contains "$output" "ok: the audit log records the delivery" \
    "the demo's agent writes its audit log in the demo's directory"
assert_contains "$output" "agent:" "secretctl status answers on the demo's own admin socket"

assert_host_dirs_untouched "the demo"
assert_eq "$(find /run/docker/plugins -maxdepth 1 -name 'secretd-demo-*' 2>/dev/null)" "" \
    "no plugin socket of the demo is left in /run/docker/plugins"
assert_eq "$(find /tmp -maxdepth 1 -name 'secretd-demo.*' | sort)" "$demo_tmp_before" \
    "the demo removed its temp directory"

done_testing
