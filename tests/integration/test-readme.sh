#!/bin/bash
# README.md's usage block, run as written: the ```sh block after the line
# "<!-- usage: ..." up to "<!-- usage: end -->" is extracted and run by bash
# (errexit, pipefail) as an unprivileged user with a home of its own, from
# the source tree, against the harness's private dockerd.  Then: every line
# succeeded, the container printed the value `secretctl get` gives, the
# store is the user's, nothing of root's was left in the user's home, and
# secretd's host directories were not touched.
#
# What the test changes, and nothing else:
#   1. The line
#        meson setup build && ninja -C build && sudo meson install -C build
#      becomes
#        sudo meson install -C $SECRETD_BUILD_ROOT --no-rebuild --destdir DEST
#      (the build is the one under test; it installs into a scratch DEST,
#      whose bindir and sbindir come first on the user's and root's PATH).
#      If the README's line differs, the test fails: it does not guess.
#   2. The user: uid/gid 6xxxx, unknown to /etc/passwd, in no other group,
#      HOME a fresh directory, the environment empty but for HOME, PATH,
#      LC_ALL, DOCKER_HOST and DOCKER_CONFIG.  "In the docker group": the
#      private dockerd's socket belongs to the user's gid.
#   3. `sudo`: a stand-in first on the user's PATH that hands the command to
#      the test, which runs it as root in the user's current directory with
#      sudo's clean environment (HOME=/root, a secure_path-like PATH) and
#      gives back its output and exit status.  `sudo -b` runs the command
#      in the background, its output in $TEST_TMP/sudo-b.log; the test
#      stops it at the end.  Only tests/install-deps.sh, meson and secretd
#      may run as root, and no other sudo option: anything else fails.
#   4. `secretd`, as root: the installed secretd with this host's paths
#      moved into the test's private directory: `init`/`pubkey` get --key,
#      `join` gets --realm-file, `run` gets --config FILE naming the key,
#      realm file, state dir, rollback floor, admin socket, audit log, the
#      private dockerd's socket and a driver name of its own.  Another verb
#      fails.
#   5. `docker`, as the user: the driver name "secretd" after -d/--driver
#      becomes the test's driver name.
#   6. The image "busybox" is the harness's busybox imported under that
#      name (no registry).
. "$(dirname "$0")/lib.sh"
require_root
require_cmd dockerd docker setpriv meson
: "${SECRETD_INSTALL_BINDIR:?meson sets SECRETD_INSTALL_BINDIR}" "${SECRETD_INSTALL_SBINDIR:?}"

readme=$SECRETD_SOURCE_ROOT/README.md
install_line='meson setup build && ninja -C build && sudo meson install -C build'

# ---------------------------------------------------------------- block ---
block=$(readme_usage_block "$readme")
# The install line, alone on its line but for a comment.
n_install=0
while IFS= read -r line; do
    if [[ "$line" == "$install_line"* ]]; then
        rest=${line#"$install_line"}
        [[ "$rest" =~ ^[[:space:]]*(#.*)?$ ]] || bail_out "README.md: the install line goes on after the part the test maps: $line"
        n_install=$((n_install + 1))
    fi
done <<<"$block"
if [ "$n_install" != 1 ]; then
    bail_out "README.md's usage block has $n_install line(s) starting '$install_line'; the test maps exactly one"
fi
ok "README.md's usage block is a sh block with the install line the test maps ($(wc -l <<<"$block") lines)"

# ------------------------------------------------------------- the user ---
uid=""
for ((i = 0; i < 100; i++)); do
    u=$((60000 + RANDOM % 5000))
    if ! getent passwd "$u" >/dev/null && ! getent group "$u" >/dev/null; then uid=$u; break; fi
done
[ -n "$uid" ] || bail_out "no free uid in 60000-64999"
user_home=$TEST_TMP/home
mkdir -m 0700 "$user_home"
chown "$uid:$uid" "$user_home"

dest=$TEST_TMP/dest
bindir=$dest$SECRETD_INSTALL_BINDIR
sbindir=$dest$SECRETD_INSTALL_SBINDIR
private=$TEST_TMP/host
mkdir -m 0700 "$private"
driver=$(unique_driver_name)

# ------------------------------------------------------------- stand-ins ---
user_shims=$TEST_TMP/user-bin
root_shims=$TEST_TMP/root-bin
bridge=$TEST_TMP/sudo-bridge
mkdir -m 0755 "$user_shims" "$root_shims"
mkdir -m 0700 "$bridge" "$bridge/spool"
mkfifo -m 0600 "$bridge/requests"
chown "$uid:$uid" "$bridge" "$bridge/spool" "$bridge/requests"

real_docker=$(command -v docker)
cat >"$user_shims/docker" <<EOF
#!/bin/bash
# test-readme.sh: the driver name "secretd" is this run's $driver.
args=() prev=""
for a in "\$@"; do
    if { [ "\$prev" = -d ] || [ "\$prev" = --driver ]; } && [ "\$a" = secretd ]; then a=$driver; fi
    [ "\$a" = --driver=secretd ] && a=--driver=$driver
    args+=("\$a") prev=\$a
done
exec $real_docker "\${args[@]}"
EOF

cat >"$user_shims/sudo" <<EOF
#!/bin/bash
# test-readme.sh: hands the command to the test's root side and relays its
# output and exit status (see the test's header).
set -euo pipefail
dir=\$(mktemp -d $bridge/spool/req.XXXXXX)
printf '%s\0' "\$@" >"\$dir/argv"
printf '%s' "\$PWD" >"\$dir/cwd"
if [ -t 0 ]; then : >"\$dir/stdin"; else cat >"\$dir/stdin"; fi
mkfifo "\$dir/done"
exec {done}<>"\$dir/done"
printf '%s\0' "\$dir" >$bridge/requests
if ! IFS= read -r -t 600 rc <&\$done; then
    echo "sudo (test-readme.sh): no answer from the test in 600 s" >&2
    exit 1
fi
cat "\$dir/stdout"
cat "\$dir/stderr" >&2
rm -rf "\$dir"
exit "\$rc"
EOF

cat >"$private/secretd.conf" <<EOF
[secretd]
driver = $driver
key = $private/agent.key
realm-file = $private/realm
state-dir = $private/state
floor-file = $private/delivered.json
admin-socket = $private/admin.sock
audit-log = $private/audit.log
docker-socket = $DOCKER_SOCK
EOF
chmod 0644 "$private/secretd.conf"
cat >"$root_shims/secretd" <<EOF
#!/bin/bash
# test-readme.sh: the installed secretd, this host's paths moved to $private.
verb=\${1:-run}
case \$verb in
-*) verb=run ;;
*) shift ;;
esac
case \$verb in
init | pubkey) exec $sbindir/secretd "\$verb" --key $private/agent.key "\$@" ;;
join) exec $sbindir/secretd join --realm-file $private/realm "\$@" ;;
run) exec $sbindir/secretd run --config $private/secretd.conf "\$@" ;;
*) echo "secretd (test-readme.sh): the verb '\$verb' is not mapped by the test" >&2; exit 99 ;;
esac
EOF
chmod 0755 "$user_shims/docker" "$user_shims/sudo" "$root_shims/secretd"

root_path=$root_shims:$sbindir:$bindir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
user_path=$user_shims:$bindir:/usr/local/bin:/usr/bin:/bin

# The root side: one request at a time, as a terminal would.
sudo_serve_one() {
    local dir=$1 argv=() background=0 rc=0 cwd
    case $dir in
    "$bridge"/spool/req.*) ;;
    *) return 0 ;;
    esac
    mapfile -d '' -t argv <"$dir/argv"
    cwd=$(cat "$dir/cwd")
    if [ "${argv[0]:-}" = -b ]; then
        background=1
        argv=("${argv[@]:1}")
    fi
    case ${argv[0]:-} in
    tests/install-deps.sh | meson | secretd) ;;
    -*)
        echo "sudo (test-readme.sh): option ${argv[0]} is not mapped by the test" >"$dir/stderr"
        rc=98
        ;;
    *)
        echo "sudo (test-readme.sh): '${argv[0]:-}' may not run as root in this test (see its header)" >"$dir/stderr"
        rc=98
        ;;
    esac
    if [ "$rc" = 0 ] && [ "$background" = 1 ]; then
        (cd "$cwd" && exec env -i HOME=/root PATH="$root_path" LC_ALL=C "${argv[@]}") \
            </dev/null >>"$TEST_TMP/sudo-b.log" 2>&1 &
        register_pid $! "sudo-b-${argv[0]##*/}"
        : >"$dir/stdout"
        : >"$dir/stderr"
    elif [ "$rc" = 0 ]; then
        (cd "$cwd" && exec env -i HOME=/root PATH="$root_path" LC_ALL=C "${argv[@]}") \
            <"$dir/stdin" >"$dir/stdout" 2>"$dir/stderr" || rc=$?
    fi
    [ -e "$dir/stdout" ] || : >"$dir/stdout"
    echo "$rc" 1<>"$dir/done"
}
sudo_server() {
    local req dir
    exec {req}<>"$bridge/requests"
    while IFS= read -r -d '' dir <&"$req"; do
        sudo_serve_one "$dir"
    done
}
spawn sudo-bridge sudo_server

# ---------------------------------------------------------------- docker ---
start_dockerd
busybox_image busybox
chgrp "$uid" "$DOCKER_SOCK"
chmod 0660 "$DOCKER_SOCK"
host_dirs_mark

# ------------------------------------------------------------------ run ---
script=$TEST_TMP/readme-usage.sh
{
    echo 'set -euo pipefail'
    echo 'set -x'
    while IFS= read -r line; do
        if [[ "$line" == "$install_line"* ]]; then
            printf 'sudo meson install -C %q --no-rebuild --destdir %q\n' "$SECRETD_BUILD_ROOT" "$dest"
        else
            printf '%s\n' "$line"
        fi
    done <<<"$block"
} >"$script"
chmod 0644 "$script"

t0=$EPOCHREALTIME
if (cd "$SECRETD_SOURCE_ROOT" && setpriv --reuid="$uid" --regid="$uid" --clear-groups -- \
    env -i HOME="$user_home" PATH="$user_path" LC_ALL=C PWD="$SECRETD_SOURCE_ROOT" \
    DOCKER_HOST="$DOCKER_HOST" DOCKER_CONFIG="$user_home/.docker" \
    bash "$script" </dev/null >"$TEST_TMP/readme.out" 2>"$TEST_TMP/readme.err"); then
    ok "README.md's usage block runs as written, as uid $uid, in $(elapsed "$t0")s"
else
    fail "README.md's usage block runs as written, as uid $uid" "exit status $?"
    diag_file "$TEST_TMP/readme.err" 60
    diag_file "$TEST_TMP/sudo-b.log" 30
fi

# ------------------------------------------------------------- results ---
as_user() {
    setpriv --reuid="$uid" --regid="$uid" --clear-groups -- \
        env -i HOME="$user_home" PATH="$user_path" LC_ALL=C "$@"
}
store=$user_home/.local/share/secretd/store
value=$(as_user secretctl --store "file://$store" get db_password) || value=""
printed=$(tail -n 1 "$TEST_TMP/readme.out")
if [ -n "$value" ] && [ "$printed" = "$value" ]; then
    ok "the container printed the secret that was put (${#value} bytes)"
else
    fail "the container printed the secret that was put" "printed: $printed" "secretctl get: $value"
fi
assert_eq "$(stat -c %u "$store" 2>&1)" "$uid" "the store is in the user's home and the user's"
assert_eq "$(find "$user_home" ! -user "$uid" -print 2>&1 | head -5)" "" \
    "nothing in the user's home belongs to anyone else"
assert_eq "$(ls "$private")" "$(printf '%s\n' admin.sock agent.key audit.log delivered.json realm realm-state.json \
    secretd.conf state | sort)" "the agent's host files are in the test's private directory"
assert_host_dirs_untouched "README.md's usage block"

done_testing
