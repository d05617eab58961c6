#!/bin/bash
# What a person types, from a fresh clone to a container reading a secret:
# README.md's usage block (run as written by
# tests/integration/test-readme.sh), counted from the README itself, next
# to Docker Swarm's own secrets.
#
# Counting: a typed line is a line of the block once its comment is gone; a
# command is a part of a typed line between `&&` or `;` (a pipeline is one
# command).  The README's lines fall into three phases: install (the lines
# running tests/install-deps.sh or meson), set-up once per host and
# developer, and secret to container (`secretctl put`, `docker volume
# create`, `docker run`).
#
# The Swarm rows are the shortest path with Docker alone, as
# tests/bench/bench-rotation.sh types it (there with --advertise-addr,
# --detach, --no-resolve-image and the image id, because the harness's
# dockerd has no registry):
#   docker swarm init
#   ... | docker secret create db_password -
#   docker service create --name app --secret db_password IMAGE cat /run/secrets/db_password
#   docker service logs app        (the task's output is not on the terminal)
# and its rotation, which replaces every task of the service:
#   ... | docker secret create db_password_2 -
#   docker service update --secret-rm db_password --secret-add source=db_password_2,target=db_password app
# secretd's rotation is one `secretctl put`, seen by running containers in
# place (tests/integration/test-rotation.sh).
#
# No root, no dockerd.  Prints a table; asserts nothing.
# shellcheck source=../integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

block=$(readme_usage_block "$SECRETD_SOURCE_ROOT/README.md")

declare -A lines=() commands=()
phases=(install set-up secret)
for p in "${phases[@]}"; do lines[$p]=0 commands[$p]=0; done
while IFS= read -r line; do
    # The block's comments start at a " #" outside quotes; none of its
    # commands has a '#' of its own.
    line=${line%%[[:space:]]#*}
    [[ "$line" =~ ^[[:space:]]*(#.*)?$ ]] && continue
    case $line in
    *install-deps.sh* | *meson\ *) p=install ;;
    *"secretctl put"* | *"docker volume create"* | *"docker run"*) p=secret ;;
    *) p=set-up ;;
    esac
    parts=$(sed 's/&&/\n/g; s/;/\n/g' <<<"$line" | grep -c '[^[:space:]]')
    lines[$p]=$((lines[$p] + 1))
    commands[$p]=$((commands[$p] + parts))
done <<<"$block"
total_lines=$((lines[install] + lines[set-up] + lines[secret]))
total_commands=$((commands[install] + commands[set-up] + commands[secret]))

row() { printf '| %-46s | %11s | %8s |\n' "$@"; }
echo
echo "Typed commands from a fresh clone to a container reading a secret (README.md's usage block vs Docker Swarm)"
row "path" "typed lines" "commands"
row "----------------------------------------------" "-----------" "--------"
row "secretd: install (packages, build, install)" "${lines[install]}" "${commands[install]}"
row "secretd: set-up, once per host and developer" "${lines[set-up]}" "${commands[set-up]}"
row "secretd: secret to container" "${lines[secret]}" "${commands[secret]}"
row "secretd: total from a fresh clone" "$total_lines" "$total_commands"
row "Swarm: set-up (docker swarm init)" 1 1
row "Swarm: secret to container (+ service logs)" "2 (+1)" "2 (+1)"
row "Swarm: total with Docker installed" "3 (+1)" "3 (+1)"
row "rotation, secretd: secretctl put" 1 1
row "rotation, Swarm: secret create, service update" 2 2
echo "secretd rotates in place (running containers read the new value, no restart);"
echo "a Swarm secret is immutable: its rotation is a service update that replaces every task."
ok "counted README.md's usage block ($total_lines typed lines)"
done_testing
