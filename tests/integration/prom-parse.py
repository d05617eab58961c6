#!/usr/bin/python3
"""Parse Prometheus text on stdin with prometheus_client (Debian
python3-prometheus-client), the parser a scraper's tooling uses; print one
line per sample, "name{label=value,...} value TYPE", sorted.  Exit 1 with
the parser's message when the text does not parse."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    try:
        lines = []
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                name = f"{sample.name}{{{labels}}}" if labels else sample.name
                value = sample.value
                shown = str(int(value)) if value == int(value) else repr(value)
                lines.append(f"{name} {shown} {family.type}")
    except Exception as e:  # the parser raises ValueError and friends
        print(f"prom-parse: {e}", file=sys.stderr)
        return 1
    print("\n".join(sorted(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
