#!/usr/bin/env python3
"""Search a live process's whole address space for byte patterns.

Usage: memscan.py PID PATTERN_FILE
PATTERN_FILE holds one pattern per line.  Reads /proc/PID/maps and every
mapping through /proc/PID/mem (root with CAP_SYS_PTRACE may read a
non-dumpable process), all threads' stacks included since they share the
address space.  Prints one line per pattern, "pattern N: H hit(s)" with
the mapping names of the hits, never the pattern itself, then a summary
"scanned R regions, B bytes, U unreadable bytes".
"""
import re
import sys

CHUNK = 1 << 20


def main():
    pid, pattern_file = sys.argv[1], sys.argv[2]
    with open(pattern_file, "rb") as f:
        patterns = [line.rstrip(b"\n") for line in f if line.strip()]
    longest = max(len(p) for p in patterns)
    hits = [[] for _ in patterns]
    regions = scanned = unreadable = 0
    with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
        for line in maps:
            fields = line.split(None, 5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5].strip() if len(fields) > 5 else "[anon]"
            if name == "[vsyscall]":
                continue
            regions += 1
            tail = b""
            pos = start
            while pos < end:
                n = min(CHUNK, end - pos)
                try:
                    mem.seek(pos)
                    data = mem.read(n)
                except OSError:
                    data = None
                if not data:
                    unreadable += n
                    tail = b""
                    pos += n
                    continue
                scanned += len(data)
                window = tail + data
                for i, p in enumerate(patterns):
                    for m in re.finditer(re.escape(p), window):
                        hits[i].append("%s @%#x" % (name, pos - len(tail) + m.start()))
                tail = data[-(longest - 1):] if longest > 1 else b""
                pos += n
    for i, h in enumerate(hits):
        print("pattern %d: %d hit(s)%s" % (i, len(h), (" in " + "; ".join(sorted(set(h))[:8])) if h else ""))
    print("scanned %d regions, %d bytes, %d unreadable bytes" % (regions, scanned, unreadable))


main()
