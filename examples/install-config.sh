#!/bin/sh
# meson install script: installs the example configuration as
# SYSCONFDIR/secretd/secretd.conf unless a file is already there, so an
# operator's edited configuration survives a reinstall or an upgrade.
# The directory is created 0700, as `secretd init` would (the agent key
# lives next to it).
set -eu
src=$1
dir=${DESTDIR:-}$2
if [ -e "$dir/secretd.conf" ] || [ -L "$dir/secretd.conf" ]; then
        echo "Keeping the existing $dir/secretd.conf (the shipped one is $src)" >&2
        exit 0
fi
if [ ! -d "$dir" ]; then
        mkdir -p "$(dirname "$dir")"
        mkdir -m 0700 "$dir"
fi
echo "Installing $src to $dir/secretd.conf"
install -m 0644 "$src" "$dir/secretd.conf"
