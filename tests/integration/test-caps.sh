#!/bin/bash
# Resource caps (design: "a container ... cannot fill host memory (tmpfs size
# and inode caps)"), with an agent started on tiny caps:
#   --max-inodes 24: a volume of 3 secrets (needs 4*3+16 = 28) is refused at
#     `docker volume create`, and the message names max-inodes;
#   -o size=64k: a secret that does not fit is refused at Create;
#   --max-volumes 2: a third volume is refused, naming max-volumes; the same
#     Create again (dockerd's retry) still succeeds at the cap;
#   --max-instances-per-volume 2: a third `docker run` on one volume fails
#     with docker showing max-instances-per-volume; after a container stops
#     a new one starts again;
#   --max-total-tmpfs 192k: 3 instances of 64k fit, a fourth (plugin-socket
#     Mount) is refused naming max-total-tmpfs, and the log says so;
#   a container cannot write to its secrets mount at all (read-only), and
#   even the agent's own writable view of a 64k instance takes at most 64k
#   and nr_inodes files: the tmpfs caps hold, not only the agent's checks.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=agent-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/agent-lib.sh"

require_root
require_cmd dockerd docker curl setpriv setsid

start_dockerd
busybox_image
agent_fixture

mkdir -m 0700 "$TEST_TMP/values"
for s in s1 s2 s3; do
    printf '%s' "$SECRETD_CANARY_PREFIX-caps$s-$(random_hex 24)" >"$TEST_TMP/values/$s"
done
head -c $((40 << 10)) /dev/urandom >"$TEST_TMP/values/big"
for s in s1 s2 s3; do cat "$TEST_TMP/values/$s"; echo; done >"$TEST_TMP/canaries"
check "secretctl put s1, s2, s3 and a 40 KiB secret 'big'" \
    eval 'for s in s1 s2 s3 big; do put_secret "$s" "$TEST_TMP/values/$s" || exit 1; done'

agent_start --max-volumes 2 --max-instances-per-volume 2 --max-inodes 24 --max-total-tmpfs 192k \
    --max-size 64k --default-size 64k

# refused_create DESC NEEDLE OPTS...: docker volume create fails, docker's
# stderr carries the plugin's message with NEEDLE, and no volume is left.
refused_create() {
    local desc=$1 needle=$2 name
    shift 2
    name=caps-bad-$(random_hex 8)
    run docker volume create -d "$AGENT_DRIVER" "$@" "$name"
    if [ "$status" != 0 ] && grep -q 'VolumeDriver.Create' <<<"$output" && grep -qF -- "$needle" <<<"$output"; then
        ok "$desc"
    else
        fail "$desc" "status $status, expected '$needle' in docker's stderr:" "$output"
    fi
    run docker volume ls -q
    assert_not_contains "$output" "$name" "$desc: no volume is left behind"
}

# ----------------------------------------------------------- max-inodes ----
refused_create "max-inodes 24: a volume of 3 secrets (28 inodes) is refused at create, naming max-inodes" \
    "its 3 file(s) need a tmpfs of 28 inodes, more than the 24 allowed by max-inodes" -o secrets=s1,s2,s3
# --------------------------------------------------- size of one volume ----
refused_create "-o size=64k: a 40 KiB secret (twice 40K needed for an update) is refused at create" \
    "its secrets need a tmpfs of 81920 bytes" -o secrets=big -o size=64k
refused_create "-o size=128k over max-size 64k is refused at create" \
    "larger than this agent's max-size" -o secrets=s1 -o size=128k

# ---------------------------------------------------------- max-volumes ----
v1=caps-a-$TEST_RUN_ID
v2=caps-b-$TEST_RUN_ID
check "two volumes under max-volumes 2 are created (2 secrets: 24 inodes, at max-inodes)" \
    eval 'docker volume create -d "$AGENT_DRIVER" -o secrets=s1,s2 "$v1" && docker volume create -d "$AGENT_DRIVER" -o secrets=s1 "$v2"'
refused_create "max-volumes 2: a third volume is refused, naming max-volumes" \
    "2 volumes exist, the limit set by max-volumes" -o secrets=s1
run plugin_call Create "{\"Name\":\"$v1\",\"Opts\":{\"secrets\":\"s1,s2\"}}"
assert_eq "$output" "{}" "at the cap, dockerd's retry of an existing Create (plugin socket) still succeeds"

# --------------------------------------------- max-instances-per-volume ----
c1=$(docker run -d --network none -v "$v1:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
c2=$(docker run -d --network none -v "$v1:/run/secrets" "$BUSYBOX_IMAGE" sleep 600)
check "two containers run on one volume (max-instances-per-volume 2)" wait_for 20 instance_count_is 2
run docker run -d --name "caps-c3-$TEST_RUN_ID" --network none -v "$v1:/run/secrets" "$BUSYBOX_IMAGE" sleep 600
if [ "$status" != 0 ] && grep -qF "2 instances (one per container) are mounted, the limit set by max-instances-per-volume" <<<"$output"; then
    ok "a third docker run on the volume fails and docker's stderr names max-instances-per-volume"
else
    fail "a third docker run on the volume fails and docker's stderr names max-instances-per-volume" \
        "status $status:" "$output"
fi
docker rm -f "caps-c3-$TEST_RUN_ID" >/dev/null 2>&1 || true
check "... and no third instance was made" instance_count_is 2

# ---------------------------------------- the container cannot fill RAM ----
probe='
if dd if=/dev/zero of=/run/secrets/fill bs=4k count=64 2>/tmp/err; then echo "dd ok"; else echo "dd $(tail -n 1 /tmp/err)"; fi
if mkdir /run/secrets/d 2>/tmp/err; then echo "mkdir ok"; else echo "mkdir $(cat /tmp/err)"; fi
'
run docker exec "$c1" sh -c "$probe"
assert_contains "$output" "dd dd: can't open '/run/secrets/fill': Read-only file system" \
    "inside the container, writing to /run/secrets fails: Read-only file system"
assert_contains "$output" "mkdir mkdir: can't create directory '/run/secrets/d': Read-only file system" \
    "inside the container, mkdir in /run/secrets fails: Read-only file system"

id1=$(container_instance "$c1") || id1=""
rw=$AGENT_STATE/instances/$id1/rw
opts=$(awk -v p="$rw" '$5 == p { print $NF }' /proc/self/mountinfo)
diag "instance $id1 rw superblock options: $opts"
assert_contains ",$opts," ",size=64k," "the instance's tmpfs has size=64k"
assert_contains ",$opts," ",nr_inodes=24," "the instance's tmpfs has nr_inodes=24 (4n+16 for 2 secrets)"
if [ -n "$id1" ] && [ -d "$rw" ]; then
    run dd if=/dev/zero of="$rw/fill" bs=4k count=64
    written=$(stat -c %s "$rw/fill" 2>/dev/null || echo 0)
    if [ "$status" != 0 ] && grep -q 'No space left on device' <<<"$output" && [ "$written" -le $((64 << 10)) ]; then
        ok "even the agent's writable view takes at most size=64k: a 256 KiB write stops at $written bytes (ENOSPC)"
    else
        fail "even the agent's writable view takes at most size=64k" "status $status, $written bytes:" "$output"
    fi
    rm -f "$rw/fill"
    made=0
    for i in $(seq 1 100); do
        : >"$rw/inode-$i" 2>/dev/null || break
        made=$i
    done
    if [ "$made" -lt 24 ]; then
        ok "... and at most nr_inodes files: the $((made + 1))th of 100 empty files fails"
    else
        fail "... and at most nr_inodes files" "$made files were created"
    fi
    rm -f "$rw"/inode-*
else
    fail "the first container's instance was found" "id '$id1'"
fi
run docker exec "$c1" cat /run/secrets/s1
assert_eq "$output" "$(cat "$TEST_TMP/values/s1")" "the container still reads its secret after the fill attempts"

# ------------------------------------------------------ max-total-tmpfs ----
# 2 live instances of 64k = 128k.  A third (of v2) makes 192k: at the cap,
# allowed.  A fourth would be 256k.
id_a=$(random_hex 64)
id_b=$(random_hex 64)
run plugin_call Mount "{\"Name\":\"$v2\",\"ID\":\"$id_a\"}"
assert_contains "$output" "\"Mountpoint\"" "plugin-socket Mount of a third instance (192k of 192k) succeeds"
run plugin_call Mount "{\"Name\":\"$v2\",\"ID\":\"$id_b\"}"
assert_contains "$output" \
    "a new tmpfs of 65536 bytes would bring the live instances to 262144 bytes, over the 196608 set by max-total-tmpfs" \
    "plugin-socket Mount of a fourth instance is refused, naming max-total-tmpfs"
check "... no tmpfs was made for it" instance_gone "$id_b"
run grep -F "max-total-tmpfs" "$AGENT_LOG"
assert_contains "$output" "mount ${id_b:0:12}: volume '$v2'" "the agent's log names the refused mount and the cap"
run grep -F "max-total-tmpfs" "$AGENT_AUDIT"
assert_contains "$output" '"refuse"' "the refusal is in the audit log, with the cap as its reason"

# Freeing capacity lets mounts through again: the accounting goes down.
run plugin_call Unmount "{\"Name\":\"$v2\",\"ID\":\"$id_a\"}"
assert_eq "$output" "{}" "Unmount the third instance"
run docker stop -t 1 "$c2"
check "a container stopped: its instance is wiped" wait_for 20 instance_count_is 1
run plugin_call Mount "{\"Name\":\"$v2\",\"ID\":\"$id_b\"}"
assert_contains "$output" "\"Mountpoint\"" "with room again, the refused Mount now succeeds"
run plugin_call Unmount "{\"Name\":\"$v2\",\"ID\":\"$id_b\"}"
run run_busybox -v "$v1:/run/secrets" -- cat /run/secrets/s2
assert_eq "$output" "$(cat "$TEST_TMP/values/s2")" "and a new container on the first volume starts and reads its secret"

docker rm -f "$c1" "$c2" >/dev/null
check "no instance is left" wait_for 20 no_instances_left
check "docker volume rm both volumes" docker volume rm "$v1" "$v2"
check "the agent is still running" pid_alive "$AGENT_PID"
assert_log_free_of "no secret value appears in the agent's log" "$TEST_TMP/canaries"
agent_stop
assert_eq "$AGENT_EXIT_STATUS" 0 "SIGTERM: the agent exits 0"

# ------------------------------------------------ bad caps stop the start ----
run "$SECRETD" run --max-volumes 0 --state-dir "$TEST_TMP/never"
assert_eq "$status" 3 "--max-volumes 0 stops the agent with exit 3 (bad configuration)"
assert_contains "$output" "max-volumes '0' must be at least 1" "... and says why"
run "$SECRETD" run --max-size 64M --max-total-tmpfs 32M --state-dir "$TEST_TMP/never"
assert_eq "$status" 3 "max-size above max-total-tmpfs stops the agent with exit 3"
assert_contains "$output" "is larger than max-total-tmpfs" "... and says why"

done_testing
