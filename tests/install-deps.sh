#!/usr/bin/env bash
# Installs every Debian 12 package secretd needs to build, test and run its
# demo.  Idempotent: does nothing when all are present.
set -euo pipefail

packages=(
  # build
  meson ninja-build pkg-config gcc clang libclang-rt-14-dev
  libsodium-dev libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev
  libinih-dev libsystemd-dev libseccomp-dev libyaml-dev
  # man pages from docs/*.md
  lowdown
  # tests
  libcriterion-dev valgrind curl python3 procps util-linux
  # tests/integration/prom-parse.py: /metrics through a real Prometheus parser
  python3-prometheus-client
  # tests/install: rendering the man pages, systemd-analyze verify, zsh -n;
  # tests/integration/test-socket-activation: systemd-socket-activate
  man-db groff-base systemd zsh
  # the real parts the integration tests drive
  docker.io busybox-static etcd-server etcd-client docker-compose
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (sudo $0)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# docker.io's maintainer scripts try to start a system dockerd where systemd
# runs; policy-rc.d keeps the host's default docker socket untouched.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created_policy=1
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
