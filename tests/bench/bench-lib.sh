# shellcheck shell=bash
# tests/bench/bench-lib.sh: what the benchmarks share, on top of
# tests/integration/lib.sh and agent-lib.sh (source those first).
#
#   usec_now                 microseconds of the wall clock
#   bench_stats FILE PCT     "median pPCT" in ms, one decimal, of FILE's lines
#                            (microseconds); nearest rank; "- -" if empty
#   ratio A B                A / B with two decimals, "-" if B is 0
#   reply_ok FILE            a plugin reply without an Err
#   timed_run PREFIX VALUE DOCKER_RUN_ARGS...
#                            docker run --rm ... cat /run/secrets/x; appends
#                            to PREFIX.first the microseconds until the first
#                            line (which must be VALUE) arrived, to
#                            PREFIX.total until docker run returned
#   rotation_measure SECRET DIRLIST OUT RUNS VALUES
#                            RUNS times: secretctl put SECRET (value written
#                            to VALUES/SECRET first), then poll DIR/SECRET for
#                            every DIR of DIRLIST until it holds the new
#                            value; OUT gets one line per run, microseconds
#                            from put returning to the last instance
#   put_random_secrets PREFIX N
#                            puts PREFIX1..PREFIXN, 4 KiB of random text each
#                            (values in $TEST_TMP/values, which must exist);
#                            prints their names comma-separated
#   interleaved_starts OUT_A ARGS_A OUT_B ARGS_B RUNS WARMUPS VALUE
#                            timed_run of a container with -v ARGS_A, then
#                            one with -v ARGS_B, RUNS times (after WARMUPS
#                            unmeasured pairs); prints how many runs failed
#   plugin_many OP VOLUME N [OUT]
#                            N plugin calls OP (Mount or Unmount) of VOLUME
#                            with ids %064x of 1..N over one process (a curl
#                            per call would be most of the time); OUT gets
#                            the Mountpoints

usec_now() { local t=${EPOCHREALTIME/./}; echo "$((10#$t))"; }

bench_stats() {
    python3 - "$1" "$2" <<'PY'
import math, sys
v = sorted(int(l) for l in open(sys.argv[1]) if l.strip())
if not v:
    print("- -"); sys.exit()
med = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
p = v[max(0, math.ceil(int(sys.argv[2]) / 100 * len(v)) - 1)]
print("%.1f %.1f" % (med / 1000, p / 1000))
PY
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

reply_ok() { grep -q '^{' "$1" && ! grep -Eq '"Err" *: *"[^"]' "$1"; }

timed_run() {
    local prefix=$1 want=$2 t0 t2 first
    shift 2
    t0=$(usec_now)
    # The reader stamps the moment the first line arrives, then drains.
    first=$(docker run --rm --network none "$@" "$BUSYBOX_IMAGE" cat /run/secrets/x \
        | { IFS= read -r line && [ "$line" = "$want" ] && usec_now; cat >/dev/null; })
    t2=$(usec_now)
    [ -n "$first" ] || { diag "timed_run: no correct read ($*)"; return 1; }
    echo $((first - t0)) >>"$prefix.first"
    echo $((t2 - t0)) >>"$prefix.total"
}

put_random_secrets() {
    local i names=()
    for i in $(seq "$2"); do
        head -c 3072 /dev/urandom | base64 -w0 | head -c 4096 >"$TEST_TMP/values/$1$i"
        put_secret "$1$i" "$TEST_TMP/values/$1$i" >/dev/null
        names+=("$1$i")
    done
    (IFS=,; echo "${names[*]}")
}

interleaved_starts() {
    local out_a=$1 a=$2 out_b=$3 b=$4 runs=$5 warmups=$6 want=$7 i failures=0
    for i in $(seq "$warmups"); do
        timed_run "$TEST_TMP/warm-$i" "$want" -v "$a" >&2 || true
        timed_run "$TEST_TMP/warm-$i" "$want" -v "$b" >&2 || true
    done
    for i in $(seq "$runs"); do
        timed_run "$out_a" "$want" -v "$a" >&2 || failures=$((failures + 1))
        timed_run "$out_b" "$want" -v "$b" >&2 || failures=$((failures + 1))
    done
    echo "$failures"
}

rotation_measure() {
    python3 - "$1" "$2" "$3" "$4" "$SECRETCTL" "$5" <<'PY'
import os, subprocess, sys, time
secret, dirlist, out, runs, secretctl, values = sys.argv[1:7]
dirs = [l.strip() for l in open(dirlist) if l.strip()]
paths = [os.path.join(d, secret) for d in dirs]
res = []
for i in range(int(runs)):
    want = ("%s-%d-%d\n" % (secret, i, time.time_ns())).encode()
    vf = os.path.join(values, secret)
    with open(vf, "wb") as f:
        f.write(want)
    with open(vf, "rb") as f:
        subprocess.run([secretctl, "put", secret], stdin=f, stdout=subprocess.DEVNULL, check=True)
    t0 = time.monotonic_ns()
    k = 0
    deadline = t0 + 30 * 10**9
    # Files are checked in order and one that has the value is never read
    # again (values only move forward), so the poll costs about one pass.
    while k < len(paths) and time.monotonic_ns() < deadline:
        try:
            with open(paths[k], "rb") as f:
                got = f.read()
        except OSError:
            got = b""
        if got == want:
            k += 1
        else:
            # A reader spinning on one core would take it from the agent
            # (this host has two); 0.2 ms bounds the resolution.
            time.sleep(0.0002)
    if k < len(paths):
        print("# run %d: only %d of %d instances got the value within 30 s" % (i, k, len(paths)), file=sys.stderr)
        sys.exit(1)
    res.append((time.monotonic_ns() - t0) // 1000)
with open(out, "w") as f:
    f.write("".join("%d\n" % r for r in res))
PY
}

plugin_many() {
    python3 - "$AGENT_SOCK" "$1" "$2" "$3" "${4:-/dev/null}" <<'PY'
import json, socket, sys
sock, op, volume, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
paths = []
for i in range(n):
    body = json.dumps({"Name": volume, "ID": "%064x" % (i + 1)}).encode()
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b"POST /VolumeDriver.%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Content-Length: %d\r\n\r\n" % (op.encode(), len(body)) + body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    mp = json.loads(data.split(b"\r\n\r\n", 1)[1]).get("Mountpoint")
    if mp:
        paths.append(mp)
with open(out, "w") as f:
    f.write("".join(p + "\n" for p in paths))
PY
}
