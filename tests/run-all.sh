#!/usr/bin/env bash
# The whole test suite, as README.md states it: `sudo tests/run-all.sh`.
#
# On a fresh Debian 12 machine it installs what is missing, then:
#   1. builds with gcc (-Werror, optimised) and runs the unit tests of the
#      plaintext and parsing core under valgrind memcheck (leaks and memory
#      errors, in every process: criterion re-execs a worker per test;
#      SECRETD_VALGRIND_TESTS, "all" for the whole unit suite), and
#      test-memory, which scans the agent's memory and so needs the plain
#      allocator;
#   2. builds with -Db_sanitize=address,undefined and runs every suite (unit,
#      cli, fuzz replay, install into a scratch --destdir, integration
#      against a real dockerd and etcd, side by side where they allow it);
#   3. builds the libFuzzer targets with clang and runs each for a bounded
#      time (SECRETD_FUZZ_SECONDS, default 10 s each).
# Every suite runs once, in the build that checks the most: the sanitised
# build catches what the plain one would, and the whole run fits the CI's
# time budget.  With SECRETD_SKIP_ASAN=1 the plain build runs every suite.
# It ends with one line "N passed, N failed" and exits non-zero on any failure.
#
# Environment: SECRETD_TEST_SUITES (default "unit cli fuzz install integration"),
# SECRETD_SKIP_ASAN=1, SECRETD_SKIP_VALGRIND=1, SECRETD_VALGRIND_TESTS="T..."|all, SECRETD_SKIP_FUZZ=1, SECRETD_FUZZ_SECONDS=N,
# SECRETD_TEST_KEEP=1 (keep integration test directories).
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD

if [ "$(id -u)" -ne 0 ]; then
  echo "run-all: integration tests mount tmpfs and drive dockerd; run as root (sudo $0)" >&2
  exit 1
fi
tests/install-deps.sh || exit 1

suites=${SECRETD_TEST_SUITES:-unit cli fuzz install integration}

passed=0 failed=0 status=0

count_results() {
  local log=$1/meson-logs/testlog.json p f
  [ -f "$log" ] || return 0
  p=$(grep -c '"result": "OK"' "$log" || true)
  f=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
  passed=$((passed + p))
  failed=$((failed + f))
}

# run_build DIR "SUITES" [MESON SETUP ARGS...]: configure, build, run SUITES
# (none: build only).
run_build() {
  local dir=$1 run_suites=$2 s; shift 2
  local args=()
  for s in $run_suites; do args+=(--suite "$s"); done
  echo "=== run-all: $dir ($*)${run_suites:+ suites: $run_suites}"
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >"$top/$dir.setup.log" 2>&1 || { cat "$top/$dir.setup.log"; status=1; failed=$((failed + 1)); return; }
  fi
  if ! ninja -C "$dir" >"$top/$dir.build.log" 2>&1; then
    tail -50 "$top/$dir.build.log"; status=1; failed=$((failed + 1)); return
  fi
  [ ${#args[@]} -gt 0 ] || return 0
  rm -f "$dir/meson-logs/testlog.json"
  # Three at a time on two cores: the integration tests mostly wait on dockerd.
  meson test -C "$dir" --print-errorlogs --num-processes 3 "${args[@]}" || status=1
  count_results "$dir"
}

plain_suites=
if [ "${SECRETD_SKIP_ASAN:-0}" = 1 ]; then
  plain_suites=$suites
elif [ "${SECRETD_SKIP_VALGRIND:-0}" = 1 ] && [[ " $suites " == *" unit "* ]]; then
  plain_suites=unit
fi
run_build build-ci "$plain_suites"
# test-memory scans the agent's memory for plaintext left behind; ASan's
# allocator (redzones, a quarantine of freed blocks) changes what is left
# where, so the test skips itself there and runs here, in the plain build.
if [[ " $plain_suites " != *" integration "* ]] && [[ " $suites " == *" integration "* ]] && [ -f build-ci/build.ninja ]; then
  rm -f build-ci/meson-logs/testlog.json
  meson test -C build-ci --no-rebuild --print-errorlogs test-memory || status=1
  count_results build-ci
fi

# Criterion runs each test in a re-exec'd worker, so valgrind must follow
# children; and a worker that reported its test passed and then exits 1
# (valgrind's --error-exitcode, after the leak check at exit) still counts as
# passed, so every process logs to its own file and any non-zero ERROR
# SUMMARY there fails the step.  A child forked without exec (a test that
# drops to nobody to knock on a socket) inherits the heap of threads it does
# not have, so its leak report is noise, and valgrind's exit code would
# replace the status the test checks: --child-silent-after-fork.  Workers
# are exec'd, so they are still checked.  tests/valgrind.supp: third-party
# noise only.
if [ "${SECRETD_SKIP_VALGRIND:-0}" != 1 ] && [[ " $suites " == *" unit "* ]] && [ -f build-ci/build.ninja ]; then
  # valgrind starts once per criterion worker, so the whole unit suite costs
  # about ten minutes of the CI's 25; by default it checks the units that
  # hold plaintext or parse outside input at the lowest level (what ASan
  # does not see: reads of uninitialised memory), and the ASan build runs
  # every unit test.  SECRETD_VALGRIND_TESTS=all checks the whole suite.
  vg_tests=${SECRETD_VALGRIND_TESTS:-secret names fileio keys envelope archive dotenv trust}
  vg_select=(--suite unit)
  [ "$vg_tests" = all ] || read -ra vg_select <<<"$vg_tests"
  echo "=== run-all: unit tests under valgrind memcheck: $vg_tests"
  vglogs=$(mktemp -d)
  # valgrind runs a test 20 to 50 times slower: the deadlines grow with it.
  if meson test -C build-ci --no-rebuild --print-errorlogs --num-processes 2 "${vg_select[@]}" --timeout-multiplier 4 \
       --wrap="valgrind --trace-children=yes --child-silent-after-fork=yes --suppressions=$top/tests/valgrind.supp --log-file=$vglogs/%p.log --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect --track-fds=no" \
       >"$top/build-ci.valgrind.log" 2>&1 && ! grep -q 'ERROR SUMMARY: [1-9]' "$vglogs"/*.log; then
    echo "valgrind: ok ($(ls "$vglogs" | wc -l) processes, no leaks or memory errors)"
    passed=$((passed + 1))
    rm -rf "$vglogs"
  else
    echo "valgrind: FAILED; meson log in build-ci.valgrind.log, per-process logs kept in $vglogs:"
    grep -l 'ERROR SUMMARY: [1-9]' "$vglogs"/*.log | head -5 | xargs -r tail -n 60
    tail -20 "$top/build-ci.valgrind.log"
    failed=$((failed + 1)); status=1
  fi
fi
if [ "${SECRETD_SKIP_ASAN:-0}" != 1 ]; then
  # sodium_malloc's guard pages and mlock are fine under ASan; leaks are
  # checked too.
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_build build-ci-asan "$suites" -Db_sanitize=address,undefined -Db_lundef=false
fi

if [ "${SECRETD_SKIP_FUZZ:-0}" != 1 ]; then
  echo "=== run-all: libFuzzer targets, ${SECRETD_FUZZ_SECONDS:-10} s each"
  dir=build-ci-fuzz
  if [ ! -f "$dir/build.ninja" ]; then
    CC=clang meson setup "$dir" -Dfuzz=true -Dtests=disabled -Db_sanitize=address,undefined -Db_lundef=false \
      >"$top/$dir.setup.log" 2>&1 || { cat "$top/$dir.setup.log"; status=1; }
  fi
  if ninja -C "$dir" >"$top/$dir.build.log" 2>&1; then
    for src in tests/fuzz/fuzz-*.c; do
      t=$(basename "$src" .c)
      work=$(mktemp -d)
      # New inputs go to the scratch dir (first); the saved corpus is read only.
      if "$dir/tests/fuzz/$t" -max_total_time="${SECRETD_FUZZ_SECONDS:-10}" -timeout=10 -print_final_stats=1 \
           -artifact_prefix="$work/" "$work" "tests/fuzz/corpus/$t" >"$work.log" 2>&1; then
        echo "fuzz $t: ok ($(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$work.log" | grep -Eo '[0-9]+$' || echo '?') runs)"
        passed=$((passed + 1))
      else
        echo "fuzz $t: FAILED; crash inputs kept in $work"; tail -40 "$work.log"
        failed=$((failed + 1)); status=1
        continue
      fi
      rm -rf "$work" "$work.log"
    done
  else
    tail -50 "$top/$dir.build.log"; status=1; failed=$((failed + 1))
  fi
fi

echo "run-all: $passed passed, $failed failed"
exit $status
