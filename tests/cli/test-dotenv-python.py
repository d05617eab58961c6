#!/usr/bin/env python3
# sd_dotenv_parse() against the parser docker-compose 1.29 really uses:
# compose reads `.env` and `env_file:` with python-dotenv's
# dotenv_values(path, encoding="utf-8-sig") (compose/config/environment.py),
# and Debian's docker-compose depends on python3-dotenv.  Over the saved
# inputs of tests/fuzz/corpus/fuzz-dotenv:
#   accept-*  we accept, python-dotenv parses without a warning, and both
#             give the same names and values in the same order;
#   reject-*  we refuse with "FILE:LINE: ..."; whether python-dotenv warned
#             or read something (the strict refusals) is reported.
# Values are compared without interpolation: compose's ${VAR} expansion is
# what sd_dotenv_has_reference() makes the verbs refuse.
# Usage: test-dotenv-python.py DOTENV-DUMP CORPUS-DIR (TAP on stdout)
import json
import logging
import os
import subprocess
import sys

dump, corpus = sys.argv[1], sys.argv[2]
try:
    from dotenv.main import DotEnv
except ImportError:
    print("1..0 # SKIP python3-dotenv is not installed")
    sys.exit(0)


class Warnings(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


warnings = Warnings()
logging.getLogger("dotenv.main").addHandler(warnings)
logging.getLogger("dotenv.main").propagate = False

names = sorted(n for n in os.listdir(corpus) if n.startswith(("accept-", "reject-")))
paths = [os.path.join(corpus, n) for n in names]
ours = {}
out = subprocess.run([dump] + paths, check=True, capture_output=True).stdout
for line in out.decode().splitlines():
    o = json.loads(line)
    ours[os.path.basename(o["file"])] = o

count = failed = 0


def tap(good, desc, *diag):
    global count, failed
    count += 1
    failed += 0 if good else 1
    print(("ok" if good else "not ok"), count, "-", desc)
    for d in diag if not good else ():
        print("#", d, file=sys.stderr)


for name, path in zip(names, paths):
    warnings.lines.clear()
    try:
        theirs = list(DotEnv(path, encoding="utf-8-sig", interpolate=False).dict().items())
        python_error = None
    except (UnicodeDecodeError, ValueError) as e:
        theirs, python_error = None, type(e).__name__
    o = ours[name]
    if name.startswith("accept-"):
        if "error" in o:
            tap(False, f"{name}: accepted", o["error"])
            continue
        mine = [(e["name"], None if e["value"] is None else bytes.fromhex(e["value"]).decode())
                for e in o["entries"]]
        tap(not warnings.lines and python_error is None and mine == theirs,
            f"{name}: {len(mine)} variable(s), the same names and values as python-dotenv",
            f"python-dotenv: {theirs} {warnings.lines} {python_error}", f"ours: {mine}")
    else:
        msg = o.get("error", "")
        good = msg.startswith(path + ":") and "\n" not in msg
        if python_error:
            verdict = f"python-dotenv fails too ({python_error})"
        elif warnings.lines:
            verdict = "python-dotenv warns: " + "; ".join(warnings.lines)
        else:
            verdict = "python-dotenv reads it (a strict refusal)"
        tap(good, f"{name}: refused with a located message; {verdict}", msg or "accepted")

print(f"1..{count}")
sys.exit(1 if failed else 0)
