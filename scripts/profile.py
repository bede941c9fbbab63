#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn tbprof block counts into instructions per call.

Usage: profile.py SYSTEM_MAP VM_LOG WINDOW_PREFIX [DETAIL_NAME [BLOCKS]]

WINDOW_PREFIX.N is the plugin's dump of window N ("vaddr insns execs" per
translated block). The guest's `profile impl=IMPL name=NAME iterations=N`
(or `failed`) lines, in order, say which workload and module each window
was. With one workload (or DETAIL_NAME among several), prints
instructions and calls per call by function, C and Rust side by side;
then one total per workload.
Kernel addresses are named with System.map (the test kernel is not
relocatable); module addresses with the /proc/kallsyms lines the guest
printed between ##BEGIN kallsyms_c/_rust and ##END. Rust names are
demangled with llvm-cxxfilt when it is present. BLOCKS, a comma-separated
list of name fragments, also prints the detailed workload's translated
blocks inside each matching function: offset, instructions, runs per
iteration (to find the hot blocks in a disassembly).
"""
import re
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


def blocks(window, syms, iterations, fragments):
    """Per matching function: its blocks as (offset, insns, runs per
    iteration), and its instructions per iteration."""
    syms.sort()
    addrs = [a for a, _ in syms]
    found = defaultdict(list)
    with open(window) as f:
        for line in f:
            vaddr, insns, execs = (int(x, 16) if i == 0 else int(x)
                                   for i, x in enumerate(line.split()))
            i = bisect.bisect_right(addrs, vaddr) - 1
            if vaddr < USER_TOP or i < 0:
                continue
            name = syms[i][1]
            if any(frag in name for frag in fragments):
                found[name].append((vaddr - addrs[i], insns, execs / iterations))
    return found


def print_blocks(imp, found):
    names = list(found)
    shown = demangle([n.split(" ")[0] for n in names])
    for n in names:
        rows = sorted(found[n])
        total = sum(insns * runs for _, insns, runs in rows)
        print(f"{imp}: {shown[n.split(' ')[0]]}: {total:.1f} instructions per iteration")
        for off, insns, runs in rows:
            if insns * runs >= 0.5:
                print(f"  +{off:#x} {insns} instructions x {runs:.2f}")


WINDOW_LINE = re.compile(r"profile impl=(c|rust) name=(\S+) (?:iterations=(\d+)|failed)")


def windows(log):
    """(impl, name, iterations or None) for windows 1, 2, ..."""
    found = []
    with open(log, errors="replace") as f:
        for line in f:
            m = WINDOW_LINE.search(line)
            if m:
                imp, name, n = m.groups()
                found.append((imp, name, int(n) if n else None))
    return found


def detail(c, c_calls, rust, rust_calls):
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


def main():
    smap, log, prefix = sys.argv[1:4]
    kernel = system_map(smap)
    syms = {imp: kernel + module_syms(log, f"kallsyms_{imp}") for imp in ("c", "rust")}
    results = {}
    order = []
    for number, (imp, name, iterations) in enumerate(windows(log), start=1):
        if iterations is None:
            continue
        if name not in order:
            order.append(name)
        results[(imp, name)] = per_function(f"{prefix}.{number}", syms[imp], iterations)
    if not order:
        print("profile: no window in the guest log")
        return 1
    pick = sys.argv[4] if len(sys.argv) > 4 else None
    if len(order) == 1 or pick in order:
        name = pick if pick in order else order[0]
        empty = ({}, {})
        c, c_calls = results.get(("c", name), empty)
        rust, rust_calls = results.get(("rust", name), empty)
        detail(c, c_calls, rust, rust_calls)
        fragments = [f for f in (sys.argv[5] if len(sys.argv) > 5 else "").split(",") if f]
        for number, (imp, wname, iterations) in enumerate(windows(log), start=1):
            if fragments and wname == name and iterations:
                print_blocks(imp, blocks(f"{prefix}.{number}", syms[imp], iterations, fragments))
    print(f"{'C':>12} {'Rust':>12} {'ratio':>6}  instructions per call (kernel and user)")
    for name in order:
        c = sum(results[("c", name)][0].values()) if ("c", name) in results else None
        rust = sum(results[("rust", name)][0].values()) if ("rust", name) in results else None
        c_s = f"{c:12.1f}" if c is not None else f"{'-':>12}"
        rust_s = f"{rust:12.1f}" if rust is not None else f"{'-':>12}"
        ratio = f"{rust / c:6.3f}" if c and rust is not None else f"{'-':>6}"
        print(f"{c_s} {rust_s} {ratio}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
