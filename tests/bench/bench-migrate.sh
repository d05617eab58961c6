#!/bin/bash
# How long moving a compose project's secrets into secretd takes: a project
# with 10 secret variables (4 in a map-form environment, 3 in a list-form
# one interpolated from .env, 3 in an env_file), on the embedded file
# store, as `secretctl compose migrate` (plan, 10 puts, new files), its
# --dry-run (the planning alone), `secretctl import-env` of the same 10
# values, and 10 `secretctl put`s for comparison.  Each run works on a
# fresh copy of the project; the store keeps growing, as it would.
#
# Environment: SECRETD_BENCH_RUNS (20).  No root, no dockerd.  Prints a
# table (milliseconds); asserts nothing about time.
set -euo pipefail
: "${SECRETCTL:?meson sets SECRETCTL}" "${SECRETD:?meson sets SECRETD}"
runs=${SECRETD_BENCH_RUNS:-20}

work=$(mktemp -d "${TMPDIR:-/tmp}/secretd-bench-migrate.XXXXXX")
trap 'rm -rf "$work"' EXIT
export XDG_CONFIG_HOME=$work/config SECRETD_STORE=file://$work/store
mkdir -m 0700 "$XDG_CONFIG_HOME"
"$SECRETCTL" keygen >/dev/null
# A recipient on the empty store makes its realm with you as admin and writer.
"$SECRETD" init --key "$work/agent.key" >/dev/null 2>&1
"$SECRETCTL" recipient add host "$("$SECRETD" pubkey --key "$work/agent.key")" >/dev/null 2>&1

value() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
template=$work/template
mkdir "$template"
{
    printf 'version: "2.4"\nservices:\n  db:\n    image: postgres\n    environment:\n'
    for n in 1 2 3 4; do printf '      DB%d_PASSWORD: "%s"\n' "$n" "$(value)"; done
    printf '      DB_USER: app\n  web:\n    image: busybox\n    env_file: web.env\n    environment:\n'
    for n in 1 2 3; do printf '      - API%d_TOKEN=${API%d_TOKEN}\n' "$n" "$n"; done
    printf '      - HOST=db\n'
} >"$template/docker-compose.yml"
for n in 1 2 3; do printf 'API%d_TOKEN=%s\n' "$n" "$(value)"; done >"$template/.env"
{
    printf 'LOG=debug\n'
    for n in 1 2 3; do printf 'SESSION%d_SECRET=%s\n' "$n" "$(value)"; done
} >"$template/web.env"
# The same ten values as one .env for import-env.
{
    sed -n 's/^ *\(DB[0-9]_PASSWORD\): "\(.*\)"$/\1=\2/p' "$template/docker-compose.yml"
    cat "$template/.env"
    grep SECRET "$template/web.env"
} >"$work/all.env"
[ "$(wc -l <"$work/all.env")" = 10 ] || { echo "bench-migrate: expected 10 variables" >&2; exit 1; }

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
declare -A samples
measure() {
    local label=$1 i t0 dir
    shift
    for ((i = 0; i < runs; i++)); do
        dir=$work/run-$label-$i
        cp -r "$template" "$dir"
        t0=$(date +%s%N)
        "$@" "$dir" >/dev/null
        samples[$label]+="$(ms "$t0") "
    done
}
migrate() { "$SECRETCTL" compose migrate -f "$1/docker-compose.yml"; }
dry_run() { "$SECRETCTL" compose migrate -f "$1/docker-compose.yml" --dry-run; }
import_env() { "$SECRETCTL" import-env "$work/all.env" --lowercase; }
puts() {
    local name v
    while IFS='=' read -r name v; do
        printf %s "$v" | "$SECRETCTL" put "${name,,}"
    done <"$work/all.env"
}

measure dry-run dry_run
measure migrate migrate
measure import-env import_env
measure put-x10 puts

stats() {
    python3 -c '
import statistics, sys
v = sorted(int(x) for x in sys.argv[1:])
p90 = v[max(0, -(-len(v) * 9 // 10) - 1)]
print(f"{statistics.median(v):>8.0f} {p90:>6} {v[0]:>6} {v[-1]:>6}")' "$@"
}
echo
echo "Moving 10 secret variables of a compose project into secretd ($runs runs each, ms, file store)"
printf '%-44s %8s %6s %6s %6s\n' "command" "median" "p90" "min" "max"
printf '%-44s %s\n' "compose migrate --dry-run (plan only)" "$(stats ${samples[dry-run]})"
printf '%-44s %s\n' "compose migrate (plan, 10 puts, new files)" "$(stats ${samples[migrate]})"
printf '%-44s %s\n' "import-env of the same 10 values" "$(stats ${samples[import-env]})"
printf '%-44s %s\n' "10 x secretctl put" "$(stats ${samples[put-x10]})"
