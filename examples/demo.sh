#!/usr/bin/env bash
# README's first command: `sudo examples/demo.sh`.
#
# On a fresh Debian 12 machine: installs the packages (tests/install-deps.sh),
# builds secretd into build-demo/, then shows the whole path of one secret:
# a developer key, an agent key, the store's realm (made by the first
# recipient) pinned on the host, an encrypted put to an embedded file store,
# the secretd volume plugin, and a container that reads the secret from
# /run/secrets on a read-only tmpfs.  Everything it starts it stops again.
#
# It uses the dockerd answering at $DOCKER_HOST when one does; otherwise it
# starts a private dockerd on its own socket.  It never touches the host's
# default /var/run/docker.sock unless DOCKER_HOST points there.
#
# Everything of secretd's lives in its own temp directory: the store, the
# developer's identity and realm record, the agent key, realm pin, state,
# rollback floor, configuration, admin socket and audit log.  Nothing is
# written to /etc/secretd, /var/lib/secretd, /run/secretd or /var/log/secretd
# (tests/integration/test-demo.sh checks it); the one shared path is the
# plugin socket, /run/docker/plugins/secretd-demo-PID.sock, which dockerd
# looks for there and nowhere else.
#
# Prints "demo: OK" and exits 0 only when every check passed.
# SECRETD_DEMO_KEEP=1 keeps the temp directory (logs, store) for a look.
# SECRETD_DEMO_BUILD=DIR uses the secretd and secretctl of an existing meson
# build directory instead of building build-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

step() { printf '\n==> %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: the agent mounts tmpfs and talks to dockerd; run as root (sudo $0)" >&2
  exit 1
fi

step "Installing the Debian packages secretd needs (tests/install-deps.sh)"
tests/install-deps.sh

if [ -n "${SECRETD_DEMO_BUILD:-}" ]; then
  build=$SECRETD_DEMO_BUILD
  step "Using the build in $build"
else
  build=$top/build-demo
  step "Building secretd with meson into build-demo/"
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" >"$top/build-demo.setup.log" 2>&1 \
      || { cat "$top/build-demo.setup.log" >&2; die "meson setup failed"; }
  fi
  ninja -C "$build" agent/secretd src/secretctl/secretctl >"$top/build-demo.build.log" 2>&1 \
    || { tail -40 "$top/build-demo.build.log" >&2; die "build failed (see build-demo.build.log)"; }
fi
secretd=$build/agent/secretd
secretctl=$build/src/secretctl/secretctl
[ -x "$secretd" ] && [ -x "$secretctl" ] || die "no secretd and secretctl in $build"
say "secretd: $secretd"
say "secretctl: $secretctl"

work=$(mktemp -d /tmp/secretd-demo.XXXXXX)
chmod 700 "$work"
# A name of its own, so the demo never collides with an installed secretd
# plugin in the shared /run/docker/plugins directory.
driver=secretd-demo-$$
volume=secretd-demo-$$
image="secretd-demo-busybox"
agent_pid=
dockerd_pid=
volume_created=0
image_imported=0

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  echo
  echo "==> Cleaning up"
  if [ "$volume_created" = 1 ]; then
    docker volume rm -f "$volume" >/dev/null 2>&1
  fi
  if [ "$image_imported" = 1 ] && [ -z "$dockerd_pid" ]; then
    # Not our dockerd: take the demo image out again.
    docker image rm "$image" >/dev/null 2>&1
  fi
  if [ -n "$agent_pid" ]; then
    kill -TERM "$agent_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$agent_pid" 2>/dev/null
    wait "$agent_pid" 2>/dev/null
    say "stopped secretd (pid $agent_pid)"
  fi
  rm -f "/run/docker/plugins/$driver.sock"
  if [ -n "$dockerd_pid" ]; then
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 200); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
    say "stopped the private dockerd (pid $dockerd_pid)"
  fi
  # Anything the agent or dockerd left mounted below the work dir.
  if [ -d "$work" ]; then
    grep -F " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null
    done
    if [ "${SECRETD_DEMO_KEEP:-0}" = 1 ]; then
      say "kept $work"
    else
      rm -rf "$work"
    fi
  fi
  if [ "$rc" -eq 0 ]; then
    echo
    echo "demo: OK"
  else
    echo "demo: FAILED" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_until SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

step "Finding a Docker daemon"
docker_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if [ -n "${DOCKER_HOST:-}" ] && docker_answers; then
  say "using the dockerd at $DOCKER_HOST"
else
  mkdir -p "$work/docker"
  say "${DOCKER_HOST:+nothing answers at $DOCKER_HOST; }starting a private dockerd on $work/docker/docker.sock"
  # Its own empty daemon.json (not the host's /etc/docker/daemon.json), and
  # it dies with this script even if the script is killed outright.
  echo '{}' >"$work/docker/daemon.json"
  setpriv --pdeathsig TERM -- dockerd --config-file "$work/docker/daemon.json" --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
    -H "unix://$work/docker/docker.sock" --pidfile "$work/docker/docker.pid" \
    --iptables=false --ip-forward=false --ip-masq=false --bridge=none --storage-driver=vfs \
    </dev/null >"$work/docker/dockerd.log" 2>&1 &
  dockerd_pid=$!
  export DOCKER_HOST=unix://$work/docker/docker.sock
  wait_until 60 docker_answers || { tail -20 "$work/docker/dockerd.log" >&2; die "dockerd did not answer within 60 s"; }
  say "dockerd $(docker version --format '{{.Server.Version}}') is up"
fi
case "$DOCKER_HOST" in
  unix://*) docker_socket=${DOCKER_HOST#unix://} ;;
  *) die "DOCKER_HOST=$DOCKER_HOST: the agent needs a unix socket to follow Docker events" ;;
esac

step "Making a tiny image from Debian's busybox-static (no registry needed)"
if ! docker image inspect "$image" >/dev/null 2>&1; then
  mkdir -p "$work/rootfs/bin"
  cp /bin/busybox "$work/rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$work/rootfs/bin/$applet"
  done
  tar -C "$work/rootfs" -c . | docker import -c 'ENV PATH=/bin' - "$image" >/dev/null
  image_imported=1
fi
say "image $image"

step "Host operator: secretd init (the agent's key pair)"
mkdir -m 700 "$work/agent"
"$secretd" init --key "$work/agent/agent.key" >"$work/agent/agent.pub" 2>"$work/agent/init.log" \
  || { cat "$work/agent/init.log" >&2; die "secretd init failed"; }
say "agent public key: $(cat "$work/agent/agent.pub")"

step "Developer: secretctl keygen (a signing identity of one's own)"
export XDG_CONFIG_HOME=$work/config
export SECRETD_STORE=file://$work/store
mkdir -m 700 "$work/config"
"$secretctl" keygen >/dev/null
say "writer: $("$secretctl" whoami)"
say "store:  $SECRETD_STORE (embedded file store; holds only encrypted envelopes)"

step "Developer: secretctl recipient add demo-host (makes the store's realm; seals secrets to this agent)"
# On an empty file store the first recipient makes the realm: a signed,
# versioned policy with this developer as its admin (docs/trust.md).
"$secretctl" recipient add demo-host "$("$secretd" pubkey --key "$work/agent/agent.key")" 2>&1 | sed 's/^/    /'
"$secretctl" recipient ls | sed 's/^/    /'

step "Host operator: secretd join (pin the realm: the agent trusts its admins, nothing else)"
"$secretd" join --realm-file "$work/agent/realm" "$("$secretctl" realm pin)" | sed 's/^/    /'

step "Developer: secretctl put demo_password (value on stdin, never in argv)"
# The value lives only in this shell's memory and the pipe.
password=$(head -c 24 /dev/urandom | base64)
printf %s "$password" | "$secretctl" put demo_password 2>&1 | sed 's/^/    /'
expected=$(printf %s "$password" | sha256sum | cut -d ' ' -f 1)
say "value:  ${password:0:2}$(printf '%*s' $((${#password} - 2)) '' | tr ' ' '*') (${#password} bytes, masked)"
# The pattern reaches grep through a pipe, not argv.
if grep -rqFf <(printf '%s\n' "$password") "$work/store"; then
  die "the plaintext appears in the store"
fi
say "the store holds no plaintext: $(find "$work/store" -type f | wc -l) files, none contain the value"
unset password

step "Host operator: starting the secretd agent as volume plugin '$driver'"
# Its own configuration file, so that a host's /etc/secretd/secretd.conf
# plays no part; each flag below overrides the built-in default path.
printf '[secretd]\n' >"$work/agent/secretd.conf"
"$secretd" run --config "$work/agent/secretd.conf" --store "$SECRETD_STORE" --driver "$driver" \
  --key "$work/agent/agent.key" --realm-file "$work/agent/realm" --state-dir "$work/state" \
  --floor-file "$work/agent/delivered.json" --admin-socket "$work/agent/admin.sock" \
  --audit-log "$work/agent/audit.log" --docker-socket "$docker_socket" --log-level info 2>"$work/secretd.log" &
agent_pid=$!
agent_up() { [ -S "/run/docker/plugins/$driver.sock" ] || { kill -0 "$agent_pid" 2>/dev/null || return 2; return 1; }; }
wait_until 30 agent_up || { cat "$work/secretd.log" >&2; die "secretd did not open /run/docker/plugins/$driver.sock"; }
say "listening on /run/docker/plugins/$driver.sock (log: $work/secretd.log)"

step "docker volume create -d $driver -o secrets=demo_password -o uid=1000 -o mode=0400 $volume"
docker volume create -d "$driver" -o secrets=demo_password -o uid=1000 -o mode=0400 "$volume" >/dev/null
volume_created=1
docker volume ls --filter "name=$volume" | sed 's/^/    /'

step "docker run -v $volume:/run/secrets (no :ro) — the container reads its secret"
# One container shows the checksum, the mount and a write attempt.
out=$(docker run --rm --network none -v "$volume:/run/secrets" "$image" sh -c '
  set -- $(sha256sum /run/secrets/demo_password)
  echo "sha256 $1"
  echo "owner $(stat -L -c "%a %u %g" /run/secrets/demo_password)"
  echo "mount $(grep " /run/secrets " /proc/mounts)"
  if err=$(touch /run/secrets/x 2>&1); then echo "touch succeeded"; else echo "touch $err"; fi
') || die "the container failed: $out"

got=$(printf '%s\n' "$out" | sed -n 's/^sha256 //p')
mount_line=$(printf '%s\n' "$out" | sed -n 's/^mount //p')
owner=$(printf '%s\n' "$out" | sed -n 's/^owner //p')
touch_line=$(printf '%s\n' "$out" | sed -n 's/^touch //p')
failures=0
check() {
  local what=$1; shift
  if "$@"; then say "ok: $what"; else say "NOT OK: $what"; failures=$((failures + 1)); fi
}
say "sha256 inside the container: $got"
say "sha256 of what was put:      $expected"
check "the container read exactly the secret that was put" [ "$got" = "$expected" ]
say "mode uid gid: $owner"
check "the file is mode 0400, owned by uid 1000" [ "$owner" = "400 1000 0" ]
say "grep /run/secrets /proc/mounts:"
say "  $mount_line"
read -r _ m_dir m_type m_opts _ <<<"$mount_line" || true
check "/run/secrets is a tmpfs" [ "$m_dir $m_type" = "/run/secrets tmpfs" ]
has_opts() { local o; for o in "$@"; do [[ ",$m_opts," == *",$o,"* ]] || return 1; done; }
check "... mounted read-only, nosuid, nodev, noexec" has_opts ro nosuid nodev noexec
say "touch /run/secrets/x: $touch_line"
check "the container cannot write there" eval '[[ "$touch_line" == *"Read-only file system"* ]]'

step "Host operator: secretctl status and the audit log (the agent's private admin socket and log)"
"$secretctl" status --admin-socket "$work/agent/admin.sock" | sed 's/^/    /' \
  || die "secretctl status could not reach the agent at $work/agent/admin.sock"
delivered=$(grep -c '"event":"deliver".*"secret":"demo_password"' "$work/agent/audit.log" || true)
say "$work/agent/audit.log: $delivered deliver line(s) for demo_password"
check "the audit log records the delivery (never the value)" [ "$delivered" -ge 1 ]

step "docker volume rm $volume"
docker volume rm "$volume" >/dev/null
volume_created=0
check "the volume is gone" eval '! docker volume ls -q | grep -qx "$volume"'
no_instance_left() {
  [ -z "$(ls -A "$work/state/instances" 2>/dev/null)" ] && ! grep -qF " $work/state/" /proc/self/mountinfo
}
check "no tmpfs instance is left in the agent's state (waited up to 10 s)" wait_until 10 no_instance_left

if [ "$failures" -ne 0 ]; then
  die "$failures check(s) failed"
fi
say "every check passed"
