#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the guest's `raw impl=.. name=.. us=..` lines into
`bench NAME rust_us=.. c_us=.. ratio=..` lines (medians; ratio = Rust / C).

With several rounds, `spread=LO-HI` is the range of the per-round ratios
(round i's Rust time over round i's C time). The pinning floor lines
(`pin_floor_1g_*`, iommufd_rs only) give `overhead` lines: what each
module spends above the floor on the matching 1 GiB map + unmap."""

import re
import statistics
import sys
from collections import OrderedDict

RAW = re.compile(r"raw impl=(\w+) name=(\S+) (?:(us|bytes)=([\d.]+)|error=(.*))$")

# Floor line -> the 1 GiB lines that pin the same memory.
FLOORS = {
    "pin_floor_1g_4k_pages": ["map_unmap_1g_domain_4k_pages", "vfio_map_unmap_dma_1g_domain"],
    "pin_floor_1g_thp": ["map_unmap_1g_domain_thp"],
    "pin_floor_1g_hugetlb": ["map_unmap_1g_domain_hugetlb"],
}


def spread(row):
    pairs = list(zip(row["rust"], row["c"]))
    if len(pairs) < 2:
        return ""
    ratios = [r / c for r, c in pairs if c]
    return f" spread={min(ratios):.2f}-{max(ratios):.2f}"


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
    medians = {}
    for name, row in runs.items():
        c_err = errors.get((name, "c")) or ""
        if row["rust"] and not row["c"] and c_err.startswith("no C peer"):
            # Beyond C, or the floor: reported without a ratio.
            r = statistics.median(row["rust"])
            medians[name] = (r, None)
            print(f"bench {name} rust_us={r:.2f} c_us=- ratio=- clock={clock} runs={len(row['rust'])} (no C peer)")
            continue
        if not row["c"] or not row["rust"]:
            why = errors.get((name, "rust")) or errors.get((name, "c")) or "no result"
            print(f"bench {name} skipped: {why}")
            continue
        c = statistics.median(row["c"])
        r = statistics.median(row["rust"])
        medians[name] = (r, c)
        unit = row["unit"]
        tag = f"clock={clock}" if unit == "us" else "slab"
        print(f"bench {name} rust_{unit}={r:.2f} c_{unit}={c:.2f} ratio={r / c:.2f}"
              f"{spread(row)} {tag} runs={len(row['rust'])}")
    for floor, lines in FLOORS.items():
        if floor not in medians:
            continue
        f = medians[floor][0]
        for name in lines:
            r, c = medians.get(name, (None, None))
            if r is None or c is None:
                continue
            ratio = f"{(r - f) / (c - f):.2f}" if c > f else "-"
            print(f"bench overhead:{name} rust_over_floor_us={r - f:.2f} c_over_floor_us={c - f:.2f}"
                  f" ratio={ratio} floor_us={f:.2f} clock={clock}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "tcg"))
