#!/usr/bin/env python3
"""Check a Prometheus text exposition (format 0.0.4), as dfs-master serves
on /metrics.

Usage:
  check_metrics.py URL|FILE|- [--require NAME ...] [--promtool]

Reads the text from an http(s) URL, a file, or stdin ("-").  Checks:
  - every line is a comment, a HELP/TYPE line or a sample;
  - every family has exactly one HELP and one TYPE, before its samples,
    and its samples are contiguous;
  - metric and label names match [a-zA-Z_:][a-zA-Z0-9_:]* (labels:
    [a-zA-Z_][a-zA-Z0-9_]*), label values use only \\\\, \\" and \\n escapes;
  - types are counter or gauge, counters end in _total and are >= 0;
  - values parse as floats; no series (name + labels) appears twice;
  - each --require NAME has at least one sample.
With --promtool, also runs `promtool check metrics` when it is installed.
Exit status: 0 when all checks pass, 1 otherwise (each problem printed),
2 on a usage or fetch error.
"""
import argparse
import re
import shutil
import subprocess
import sys
import urllib.request

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge"}


def parse_labels(s, pos, line_no, problems):
    """Parses {a="x",...} at s[pos]; returns (labels tuple, next pos)."""
    labels = []
    if pos >= len(s) or s[pos] != "{":
        return (), pos
    pos += 1
    while pos < len(s) and s[pos] != "}":
        m = LABEL.match(s, pos)
        if not m:
            problems.append(f"line {line_no}: bad label name")
            return None, pos
        name = m.group(0)
        pos = m.end()
        if s[pos:pos + 2] != '="':
            problems.append(f"line {line_no}: expected =\" after {name}")
            return None, pos
        pos += 2
        value = []
        while pos < len(s) and s[pos] != '"':
            if s[pos] == "\\":
                if pos + 1 >= len(s) or s[pos + 1] not in '\\"n':
                    problems.append(f"line {line_no}: bad escape in {name}")
                    return None, pos
                value.append(s[pos:pos + 2])
                pos += 2
            else:
                value.append(s[pos])
                pos += 1
        if pos >= len(s):
            problems.append(f"line {line_no}: unterminated value of {name}")
            return None, pos
        pos += 1
        labels.append((name, "".join(value)))
        if pos < len(s) and s[pos] == ",":
            pos += 1
        elif pos >= len(s) or s[pos] != "}":
            problems.append(f"line {line_no}: expected , or }} after {name}")
            return None, pos
    if pos >= len(s):
        problems.append(f"line {line_no}: unterminated label set")
        return None, pos
    names = [n for n, _ in labels]
    if len(set(names)) != len(names):
        problems.append(f"line {line_no}: repeated label name")
    return tuple(sorted(labels)), pos + 1


class Family:
    def __init__(self):
        self.help = False
        self.type = None
        self.samples = 0
        self.closed = False


def check(text):
    """Returns (problems, families)."""
    problems = []
    fams = {}
    seen = set()
    last = None
    if text and not text.endswith("\n"):
        problems.append("text does not end with a newline")
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
                continue                     # a plain comment
            name = parts[2]
            if not NAME.fullmatch(name):
                problems.append(f"line {no}: bad metric name {name!r}")
                continue
            fam = fams.setdefault(name, Family())
            if fam.samples:
                problems.append(f"line {no}: {parts[1]} of {name} after "
                                "its samples")
            if parts[1] == "HELP":
                if fam.help:
                    problems.append(f"line {no}: second HELP for {name}")
                fam.help = True
            else:
                if fam.type:
                    problems.append(f"line {no}: second TYPE for {name}")
                fam.type = parts[3] if len(parts) > 3 else ""
                if fam.type not in TYPES:
                    problems.append(f"line {no}: {name}: type {fam.type!r} "
                                    "is not counter or gauge")
                if fam.type == "counter" and not name.endswith("_total"):
                    problems.append(f"line {no}: counter {name} does not "
                                    "end in _total")
            continue
        m = NAME.match(line)
        if not m:
            problems.append(f"line {no}: bad sample line {line!r}")
            continue
        name = m.group(0)
        fam = fams.get(name)
        if fam is None or not fam.help or not fam.type:
            problems.append(f"line {no}: {name} has no HELP and TYPE "
                            "before it")
            fam = fams.setdefault(name, Family())
        if last is not None and last != name:
            fams[last].closed = True
        if fam.closed:
            problems.append(f"line {no}: samples of {name} are not "
                            "contiguous")
        last = name
        labels, pos = parse_labels(line, m.end(), no, problems)
        if labels is None:
            continue
        rest = line[pos:]
        if not rest.startswith(" "):
            problems.append(f"line {no}: expected a space before the value")
            continue
        fields = rest.split()
        try:
            value = float(fields[0])
        except (ValueError, IndexError):
            problems.append(f"line {no}: bad value {rest.strip()!r}")
            continue
        if len(fields) > 2:
            problems.append(f"line {no}: junk after the value")
        if fam.type == "counter" and value < 0:
            problems.append(f"line {no}: counter {name} is negative")
        key = (name, labels)
        if key in seen:
            problems.append(f"line {no}: duplicate series {name}{labels}")
        seen.add(key)
        fam.samples += 1
    for name, fam in fams.items():
        if not fam.help or not fam.type:
            problems.append(f"{name}: missing HELP or TYPE")
    return problems, fams


def read_input(src):
    if src == "-":
        return sys.stdin.read()
    if src.startswith(("http://", "https://")):
        with urllib.request.urlopen(src, timeout=10) as r:
            ctype = r.headers.get("Content-Type", "")
            if not ctype.startswith("text/plain"):
                raise ValueError(f"Content-Type is {ctype!r}, not text/plain")
            return r.read().decode("utf-8")
    with open(src, encoding="utf-8") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", help="URL, file, or - for stdin")
    ap.add_argument("--require", action="append", default=[],
                    metavar="NAME", help="a metric that must have a sample")
    ap.add_argument("--promtool", action="store_true",
                    help="also run `promtool check metrics` if installed")
    args = ap.parse_args()
    try:
        text = read_input(args.source)
    except (OSError, ValueError) as e:
        print(f"check_metrics: {args.source}: {e}", file=sys.stderr)
        return 2
    problems, fams = check(text)
    for name in args.require:
        if name not in fams or fams[name].samples == 0:
            problems.append(f"required metric {name} has no sample")
    if args.promtool and shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text,
                           capture_output=True, text=True)
        if p.returncode != 0:
            problems.append("promtool: " + (p.stdout + p.stderr).strip())
    for p in problems:
        print(f"check_metrics: {p}", file=sys.stderr)
    nsamples = sum(f.samples for f in fams.values())
    print(f"check_metrics: {len(fams)} families, {nsamples} samples, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
