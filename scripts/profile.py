#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn tbprof block counts into instructions per call, per function.

Usage: profile.py SYSTEM_MAP VM_LOG WINDOW_C WINDOW_RUST ITERATIONS

WINDOW_* are the plugin's dumps ("vaddr insns execs" per translated block)
for C iommufd and iommufd_rs. Kernel addresses are named with System.map
(the test kernel is not relocatable); module addresses with the
/proc/kallsyms lines the guest printed between ##BEGIN kallsyms_c/_rust
and ##END. Rust names are demangled with llvm-cxxfilt when it is present.
"""
import bisect
import subprocess
import sys
from collections import defaultdict

TEXT_TYPES = set("tTwW")
USER_TOP = 0x0000_8000_0000_0000


def system_map(path):
    syms = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] in TEXT_TYPES:
                syms.append((int(parts[0], 16), parts[2]))
    return syms


def module_syms(log, section):
    syms, inside = [], False
    with open(log, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line == f"##BEGIN {section}":
                inside = True
            elif line.startswith("##END"):
                inside = False
            elif inside:
                parts = line.split()
                if len(parts) >= 4 and parts[1] in TEXT_TYPES:
                    syms.append((int(parts[0], 16), parts[2] + " " + parts[3]))
    return syms


def demangle(names):
    try:
        out = subprocess.run(["llvm-cxxfilt"], input="\n".join(names), text=True,
                             capture_output=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {n: n for n in names}
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def per_function(window, syms, iterations):
    """Instructions and calls per iteration, by function name. A call is
    a run of the block that starts at the function's first byte."""
    syms.sort()
    addrs = [a for a, _ in syms]
    counts = defaultdict(float)
    calls = defaultdict(float)
    with open(window) as f:
        for line in f:
            vaddr, insns, execs = (int(x, 16) if i == 0 else int(x)
                                   for i, x in enumerate(line.split()))
            if vaddr < USER_TOP:
                name = "[user space]"
            else:
                i = bisect.bisect_right(addrs, vaddr) - 1
                name = syms[i][1] if i >= 0 else "[unknown kernel]"
                if i >= 0 and addrs[i] == vaddr:
                    calls[name] += execs / iterations
            counts[name] += insns * execs / iterations
    return counts, calls


def main():
    smap, log, win_c, win_rust, iterations = sys.argv[1:6]
    iterations = int(iterations)
    kernel = system_map(smap)
    c, c_calls = per_function(win_c, kernel + module_syms(log, "kallsyms_c"), iterations)
    rust, rust_calls = per_function(win_rust, kernel + module_syms(log, "kallsyms_rust"),
                                    iterations)
    names = sorted(set(c) | set(rust), key=lambda n: -max(c.get(n, 0), rust.get(n, 0)))
    shown = demangle([n.split(" ")[0] for n in names])
    print(f"{'C':>9} {'Rust':>9} {'C#':>5} {'Rust#':>5}  "
          "instructions and calls per iteration, by function")
    for n in names:
        cv, rv = c.get(n, 0.0), rust.get(n, 0.0)
        if max(cv, rv) < 0.5:
            continue
        module = " " + n.split(" ", 1)[1] if " " in n else ""
        cc, rc = c_calls.get(n, 0.0), rust_calls.get(n, 0.0)
        print(f"{cv:9.1f} {rv:9.1f} {cc:5.1f} {rc:5.1f}  {shown[n.split(' ')[0]]}{module}")
    total_c, total_rust = sum(c.values()), sum(rust.values())
    print(f"{total_c:9.1f} {total_rust:9.1f} {'':5} {'':5}  "
          f"total (ratio {total_rust / total_c:.3f})")


if __name__ == "__main__":
    main()
