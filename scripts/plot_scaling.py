#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write docs/scaling.csv and docs/scaling.png from `scale impl=.. areas=.. us=..`
lines of a guest log. Runs inside the build root (matplotlib)."""

import re
import sys

LINE = re.compile(r"scale impl=(\w+) areas=(\d+) us=([\d.]+)")


def main(log, csv_path, png_path):
    data = {}
    with open(log, errors="replace") as f:
        for line in f:
            m = LINE.search(line)
            if m:
                data.setdefault(m.group(1), {})[int(m.group(2))] = float(m.group(3))
    if not data.get("c") or not data.get("rust"):
        print("scaling: no data for both modules")
        return 1
    areas = sorted(set(data["c"]) & set(data["rust"]))
    with open(csv_path, "w") as f:
        f.write("areas,rust_us,c_us,ratio\n")
        for a in areas:
            r, c = data["rust"][a], data["c"][a]
            f.write(f"{a},{r:.3f},{c:.3f},{r / c:.3f}\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(areas, [data["rust"][a] for a in areas], "o-", label="iommufd_rs")
    ax.plot(areas, [data["c"][a] for a in areas], "s--", label="C iommufd")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("areas already in the IOAS")
    ax.set_ylabel("IOAS_MAP + IOAS_UNMAP, 4 KiB fixed (guest us, -icount)")
    ax.set_title("Map/unmap pair cost against IOAS size (no domain)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    print(f"scaling: wrote {csv_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
