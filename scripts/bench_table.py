#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Join make bench's two clocks and make profile's rep-as-one count into
one Markdown table for the README.

Usage: bench_table.py ICOUNT_OUT WALL_OUT [PROFILE_OUT]

ICOUNT_OUT and WALL_OUT are scripts/bench.py's output for the two boots
(make bench keeps them as $CACHE/bench-icount.txt and bench-wall.txt);
PROFILE_OUT is `make profile WORKLOAD=all`'s ($CACHE/profile-all.txt)."""

import re
import sys

BENCH = re.compile(r"^bench (\S+) rust_(?:us|bytes)=([\d.]+|-) c_(?:us|bytes)=([\d.]+|-) "
                   r"ratio=([\d.]+|-)(?: spread=([\d.]+-[\d.]+))?")
PROFILE = re.compile(r"^\s*([\d.]+|-)\s+([\d.]+|-)\s+([\d.]+|-)\s+([a-z0-9_]+)$")


def matches(path, pattern, strip):
    """The groups of each line of PATH that PATTERN matches."""
    with open(path, errors="replace") as f:
        for line in f:
            m = pattern.match(strip(line))
            if m:
                yield m.groups()


def bench_lines(path):
    return {name: (rust, c, ratio, spread)
            for name, rust, c, ratio, spread in matches(path, BENCH, str.strip)}


def profile_lines(path):
    return {name: (rust, c, ratio)
            for c, rust, ratio, name in matches(path, PROFILE, str.rstrip)}


def num(s):
    if s in (None, "-"):
        return "-"
    v = float(s)
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


def main(icount_path, wall_path, profile_path=None):
    icount = bench_lines(icount_path)
    wall = bench_lines(wall_path)
    profile = profile_lines(profile_path) if profile_path else {}
    names = list(icount) + [n for n in wall if n not in icount]
    print("| line | -icount: Rust / C (us) | ratio | rep as one: Rust / C (insns per call) | ratio "
          "| wall: Rust / C (us) | ratio (per-round range) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        ir, ic, iratio, _ = icount.get(name, ("-", "-", "-", None))
        pr, pc, pratio = profile.get(name, ("-", "-", "-"))
        wr, wc, wratio, spread = wall.get(name, ("-", "-", "-", None))
        wspread = f"{wratio} ({spread})" if spread else wratio
        print(f"| `{name}` | {num(ir)} / {num(ic)} | {iratio} | {num(pr)} / {num(pc)} | {pratio} "
              f"| {num(wr)} / {num(wc)} | {wspread} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
