#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the guest's `raw impl=.. name=.. us=..` lines into
`bench NAME rust_us=.. c_us=.. ratio=..` lines (medians; ratio = Rust / C)."""

import re
import statistics
import sys
from collections import OrderedDict

RAW = re.compile(r"raw impl=(\w+) name=(\S+) (?:(us|bytes)=([\d.]+)|error=(.*))$")


def main(path, clock):
    runs = OrderedDict()
    errors = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = RAW.search(line.strip())
            if not m:
                continue
            imp, name, unit, us, err = m.groups()
            row = runs.setdefault(name, {"c": [], "rust": [], "unit": unit or "us"})
            if us is not None:
                row.setdefault(imp, []).append(float(us))
            else:
                errors[(name, imp)] = err
    if not runs:
        print("bench: no results in the guest log")
        return 1
    for name, row in runs.items():
        c_err = errors.get((name, "c")) or ""
        if row["rust"] and not row["c"] and c_err.startswith("no C peer"):
            # Beyond C: reported beside its native counterpart, no ratio.
            r = statistics.median(row["rust"])
            print(f"bench {name} rust_us={r:.2f} c_us=- ratio=- clock={clock} runs={len(row['rust'])} (no C peer)")
            continue
        if not row["c"] or not row["rust"]:
            why = errors.get((name, "rust")) or errors.get((name, "c")) or "no result"
            print(f"bench {name} skipped: {why}")
            continue
        c = statistics.median(row["c"])
        r = statistics.median(row["rust"])
        unit = row["unit"]
        tag = f"clock={clock}" if unit == "us" else "slab"
        print(f"bench {name} rust_{unit}={r:.2f} c_{unit}={c:.2f} ratio={r / c:.2f} {tag} runs={len(row['rust'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "tcg"))
