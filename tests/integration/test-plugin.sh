#!/bin/bash
# The secretd volume plugin against a real dockerd, as a user drives it:
#   - `docker volume create -d <driver> -o secrets=... -o uid= -o mode= -o size=`
#     then `docker run -v NAME:/run/secrets` (no :ro) reads every secret
#     byte-exact (binary bytes, a value without trailing newline), with the
#     asked mode and owner, on a read-only tmpfs (nosuid,nodev,noexec, the
#     asked size) that the container cannot write to;
#   - two containers on one volume get two separate tmpfs instances, and
#     stopping one leaves the other readable;
#   - a stopped container's instance disappears (mountinfo and state dir),
#     `docker volume rm` removes the volume;
#   - bad create requests fail with the plugin's message on docker's stderr;
#   - secret values never reach the agent's log; SIGTERM stops it cleanly.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid sha256sum

start_dockerd
busybox_image
agent_fixture

# ------------------------------------------------------------ secrets -------
# db_password: text without a trailing newline.  api_key: every byte value
# 0..255 (NUL, newline, high bytes) around a printable canary.  Both carry a
# marker that must never show up in the agent's log.
secrets_dir=$TEST_TMP/values
mkdir -m 0700 "$secrets_dir"
db_canary=canary-db-$(random_hex 24)
api_canary=canary-api-$(random_hex 24)
printf '%s' "$db_canary-pw" >"$secrets_dir/db_password"
{
    for i in $(seq 0 255); do printf "\\$(printf '%03o' "$i")"; done
    printf '%s' "$api_canary"
    printf '\000\n\377'
} >"$secrets_dir/api_key"
# The canary file: one pattern per line for grep -F -f.
printf '%s\n' "$db_canary" "$api_canary" "$(base64 -w0 <"$secrets_dir/db_password")" >"$TEST_TMP/canaries"
head -c 8192 /dev/urandom >"$secrets_dir/big_secret"
db_sha=$(sha256_of "$secrets_dir/db_password")
api_sha=$(sha256_of "$secrets_dir/api_key")
diag "api_key is $(wc -c <"$secrets_dir/api_key") bytes, db_password $(wc -c <"$secrets_dir/db_password") bytes"

check "secretctl put db_password, api_key, big_secret" \
    eval 'put_secret db_password "$secrets_dir/db_password" && put_secret api_key "$secrets_dir/api_key" && put_secret big_secret "$secrets_dir/big_secret"'

agent_start

# ------------------------------------------------- create, run, read -------
vol=sv-$TEST_RUN_ID
run docker volume create -d "$AGENT_DRIVER" -o secrets=db_password,api_key:api.key \
    -o uid=1000 -o mode=0440 -o size=512k "$vol"
assert_eq "$status" 0 "docker volume create -d <driver> -o secrets=db_password,api_key:api.key -o uid=1000 -o mode=0440 -o size=512k"
[ "$status" = 0 ] || diag "$output"

run docker volume ls -q --filter "driver=$AGENT_DRIVER"
assert_contains "$output" "$vol" "docker volume ls lists the volume under the secretd driver"

# One container does all the looking; each finding is one line "key value".
# Mounted without :ro on purpose: read-only must come from the agent.
probe='
cd /run/secrets || exit 1
echo "ls $(ls | tr "\n" " ")"
for f in db_password api.key; do
  set -- $(sha256sum "$f"); echo "sha:$f $1"
  echo "bytes:$f $(wc -c < "$f")"
  echo "stat:$f $(stat -L -c "%a %u %g" "$f")"
done
echo "mount $(grep " /run/secrets " /proc/mounts)"
if touch /run/secrets/x 2>/tmp/err; then echo "touch ok"; else echo "touch $(cat /tmp/err)"; fi
if rm /run/secrets/db_password 2>/tmp/err; then echo "rm ok"; else echo "rm $(cat /tmp/err)"; fi
set -- $(sha256sum db_password); echo "sha-after-rm $1"
'
run run_busybox -v "$vol:/run/secrets" -- sh -c "$probe"
assert_eq "$status" 0 "docker run -v $vol:/run/secrets (no :ro) starts and reads"
out=$output
field() { sed -n "s/^$1 //p" <<<"$out" | head -n 1; }
assert_eq "$(field ls)" "api.key db_password " "only the asked secrets are visible, api_key renamed to api.key"
assert_eq "$(field sha:db_password)" "$db_sha" "db_password reads byte-exact (sha256 inside = outside)"
assert_eq "$(field bytes:db_password)" "$(wc -c <"$secrets_dir/db_password")" "db_password keeps its length: no trailing newline added"
assert_eq "$(field sha:api.key)" "$api_sha" "api.key (all 256 byte values, NUL, newline) reads byte-exact"
assert_eq "$(field stat:db_password | cut -d' ' -f1,2)" "440 1000" "db_password has mode 0440 and uid 1000 (stat -L inside)"
assert_eq "$(field stat:api.key | cut -d' ' -f1,2)" "440 1000" "api.key has mode 0440 and uid 1000 (stat -L inside)"
assert_contains "$(field touch)" "Read-only file system" "touch /run/secrets/x fails: Read-only file system"
assert_contains "$(field rm)" "Read-only file system" "rm /run/secrets/db_password fails: Read-only file system"
assert_eq "$(field sha-after-rm)" "$db_sha" "db_password is intact after the rm attempt"

mount_line=$(field mount)
read -r _ m_dir m_type m_opts _ <<<"$mount_line" || true
diag "inside: $mount_line"
assert_eq "$m_dir $m_type" "/run/secrets tmpfs" "/proc/mounts inside: /run/secrets is a tmpfs"
mnt_opts=",$m_opts,"
for o in ro nosuid nodev noexec size=512k; do
    assert_contains "$mnt_opts" ",$o," "/run/secrets is mounted $o"
done

check "after the --rm container exits its instance is gone (state dir and mountinfo)" \
    wait_for 20 no_instances_left

# ------------------------------------------- two containers, one volume -----
c1=$(docker run -d --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
c2=$(docker run -d --network none -v "$vol:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
check "two running containers on one volume: two instance dirs in the agent's state" \
    wait_for 20 instance_count_is 2

# Which instance each container got: its tmpfs device number (mountinfo
# field 3) inside, matched to the agent's ro binds on the host.
dev_of() { docker exec "$1" awk '$5 == "/run/secrets" { print $3 }' /proc/self/mountinfo; }
dev1=$(dev_of "$c1")
dev2=$(dev_of "$c2")
if [ -n "$dev1" ] && [ -n "$dev2" ] && [ "$dev1" != "$dev2" ]; then
    ok "the two containers see different tmpfs superblocks ($dev1 vs $dev2)"
else
    fail "the two containers see different tmpfs superblocks" "c1: '$dev1'" "c2: '$dev2'"
fi
id1=$(container_instance "$c1") || id1=""
id2=$(container_instance "$c2") || id2=""
diag "c1 instance: $id1" "c2 instance: $id2"
if [ -n "$id1" ] && [ -n "$id2" ] && [ "$id1" != "$id2" ]; then
    ok "each container's tmpfs is a different instance dir of the agent's state"
else
    fail "each container's tmpfs is a different instance dir of the agent's state" "c1: '$id1'" "c2: '$id2'" \
        "$(agent_mounts)"
fi

run docker stop -t 1 "$c1"
assert_eq "$status" 0 "docker stop the first container"
check "its instance is gone from the state dir and mountinfo" wait_for 20 instance_gone "$id1"
check "the second container's instance is still there and mounted" \
    eval '[ -n "$id2" ] && [ -d "$AGENT_STATE/instances/$id2" ] && instance_mounted "$id2"'
run docker exec "$c2" sha256sum /run/secrets/db_password
assert_eq "${output%% *}" "$db_sha" "the second container still reads db_password"
run docker stop -t 1 "$c2"
check "after the second container stops no instance is left (state dir and mountinfo)" \
    wait_for 20 no_instances_left
docker rm "$c1" "$c2" >/dev/null

# ------------------------------------------------------- volume rm ----------
run docker volume rm "$vol"
assert_eq "$status" 0 "docker volume rm"
run docker volume ls -q
assert_not_contains "$output" "$vol" "the volume is gone from docker volume ls"

# ------------------------------------------------------ bad requests --------
# Each must fail at create time with the plugin's own message on stderr.
bad_create() {
    local desc=$1 word=$2 name
    shift 2
    name=bad-$(random_hex 8)
    run docker volume create -d "$AGENT_DRIVER" "$@" "$name"
    if [ "$status" != 0 ]; then
        ok "$desc: create fails"
    else
        fail "$desc: create fails" "it succeeded: $output"
    fi
    if grep -qi -- "$word" <<<"$output" && grep -q 'VolumeDriver.Create' <<<"$output"; then
        ok "$desc: docker says why ('$word' in the plugin's message)"
    else
        fail "$desc: docker says why ('$word' in the plugin's message)" "stderr: $output"
    fi
    run docker volume ls -q
    assert_not_contains "$output" "$name" "$desc: no volume is left behind"
}
bad_create "an unknown secret" no_such_secret -o secrets=db_password,no_such_secret
bad_create "a bad mode (-o mode=999)" mode -o secrets=db_password -o mode=999
bad_create "an unknown option (-o colour=blue)" colour -o secrets=db_password -o colour=blue
bad_create "an 8 KiB secret over -o size=4k" size -o secrets=big_secret -o size=4k

# ----------------------------------------------------------- the end --------
check "the agent is still running after all of that" pid_alive "$AGENT_PID"
assert_log_free_of "no secret value appears in the agent's log" "$TEST_TMP/canaries"
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "SIGTERM: the agent exits 0"
check "... and unlinks its socket $AGENT_SOCK" test ! -e "$AGENT_SOCK"

done_testing
