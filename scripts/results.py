#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Count test results in a guest log.

The guest wraps each program's KTAP/TAP output in `##BEGIN <section>` and
`##END <section>` lines. KUnit sections nest cases under suites; only the
cases (indented result lines) are counted there. Everywhere else only
top-level result lines are counted.

  results.py check LOG MUST_PASS HOST_KTAP...
      `make check`: KUnit, our selftests, guest checks, real devices
      (vfio-pci and edu), QEMU as vfio's client, host checks, the
      upstream ratchet (every case in MUST_PASS must pass against
      iommufd_rs) and a splat scan. Ends with `N passed, M failed`; exits
      1 on any failure.
  results.py conformance LOG
      `make conformance`: per fixture variant, upstream passes for Rust and
      C. Never fails on low Rust counts.
"""

import re
import sys
from collections import OrderedDict

RESULT = re.compile(r"^(\s*)(not ok|ok) (\d+)(?: -)? ([^#]*?)\s*(#.*)?$")
SPLAT = re.compile(
    r"(BUG:|WARNING:|Oops|KASAN:|UBSAN:|kernel BUG|general protection fault|"
    r"possible circular locking|sleeping function called|unreferenced object|"
    r"Kernel panic|RIP:)"
)


def sections(lines):
    """Map section name -> list of its lines (all runs concatenated)."""
    out = OrderedDict()
    current = None
    for line in lines:
        # The console may prefix the first line with escape codes.
        begin = re.search(r"##BEGIN (\S+)", line)
        if begin:
            current = begin.group(1)
            out.setdefault(current, [])
        elif "##END " in line:
            current = None
        elif current is not None:
            out[current].append(line)
    return out


def results(lines, nested):
    """List of (name, status) with status in ok / fail / skip."""
    out = []
    for line in lines:
        # dmesg timestamps, if any, go first.
        line = re.sub(r"^\[\s*\d+\.\d+\] ", "", line)
        m = RESULT.match(line)
        if not m:
            continue
        indent, verdict, _, name, rest = m.groups()
        rest = rest or ""
        if nested != bool(indent):
            continue
        if "# SKIP" in rest or "# skip" in rest:
            status = "skip"
        elif verdict == "ok":
            status = "ok"
        else:
            status = "fail"
        out.append((name, status))
    return out


def tally(res):
    ok = sum(1 for _, s in res if s == "ok")
    fail = sum(1 for _, s in res if s == "fail")
    skip = sum(1 for _, s in res if s == "skip")
    return ok, fail, skip


def read(path):
    with open(path, errors="replace") as f:
        return f.read().splitlines()


def check(log_path, must_pass_path, host_paths):
    lines = read(log_path)
    secs = sections(lines)
    passed = failed = 0

    def count(label, res):
        nonlocal passed, failed
        ok, fail, skip = tally(res)
        print(f"{label}: {ok} passed, {fail} failed, {skip} skipped")
        for name, s in res:
            if s == "fail":
                print(f"  FAILED {label}: {name}")
        passed += ok
        failed += fail
        return ok + fail + skip

    for path in host_paths:
        count("host checks", results(read(path), nested=False))
    if count("kunit", results(secs.get("kunit", []), nested=True)) == 0:
        print("  FAILED kunit: no KUnit results in the guest log")
        failed += 1
    if count("selftests", results(secs.get("selftests", []), nested=False)) == 0:
        print("  FAILED selftests: no results in the guest log")
        failed += 1
    if count("selftests against C iommufd", results(secs.get("selftests-c", []), nested=False)) == 0:
        print("  FAILED selftests against C iommufd: no results in the guest log")
        failed += 1
    count("differential fuzz vs C iommufd", results(secs.get("fuzz", []), nested=False))
    count("multi-threaded stress", results(secs.get("stress", []), nested=False))
    count("guest checks", results(secs.get("guest", []), nested=False))
    if count("real devices", results(secs.get("real-devices", []), nested=False)) == 0:
        print("  FAILED real devices: no results in the guest log")
        failed += 1
    if count("kapi probe", results(secs.get("kapi-probe", []), nested=False)) == 0:
        print("  FAILED kapi probe: no results in the guest log")
        failed += 1
    if count("qemu client", results(secs.get("qemu-client", []), nested=False)) == 0:
        print("  FAILED qemu client: no results in the guest log")
        failed += 1

    upstream = dict(results(secs.get("upstream-rust", []), nested=False))
    upstream.update(results(secs.get("failnth-rust", []), nested=False))
    must = [l.split("#")[0].strip() for l in read(must_pass_path)]
    must = [m for m in must if m]
    ratchet_ok = [m for m in must if upstream.get(m) == "ok"]
    ratchet_bad = [m for m in must if upstream.get(m) != "ok"]
    print(f"upstream ratchet: {len(ratchet_ok)} of {len(must)} listed cases pass")
    for m in ratchet_bad:
        print(f"  FAILED upstream ratchet: {m} ({upstream.get(m, 'not run')})")
    passed += len(ratchet_ok)
    failed += len(ratchet_bad)
    newly = sorted(n for n, s in upstream.items() if s == "ok" and n not in must)
    if newly:
        print(f"upstream: {len(newly)} passing cases not yet in the ratchet list:")
        for n in newly:
            print(f"  {n}")

    splats = [l for l in lines if SPLAT.search(l)]
    if splats:
        print("kernel splats in the guest log:")
        for l in splats[:20]:
            print(f"  {l}")
        failed += 1
    else:
        passed += 1
    if "IOMMUFD_RS_EXIT=" not in "\n".join(lines):
        print("  FAILED: the guest did not finish")
        failed += 1

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def fixture_of(name, section):
    if section.startswith("failnth"):
        return "iommufd_fail_nth"
    parts = name.split(".")
    return ".".join(parts[:-1]) if len(parts) > 1 else name


def conformance(log_path):
    secs = sections(read(log_path))
    table = OrderedDict()
    for impl in ("c", "rust"):
        for suite in ("upstream", "failnth"):
            for name, status in results(secs.get(f"{suite}-{impl}", []), nested=False):
                fx = fixture_of(name, suite)
                row = table.setdefault(fx, {"cases": OrderedDict(), "rust": 0, "c": 0})
                row["cases"][name] = True
                if status == "ok":
                    row[impl] += 1
    skips = {impl: sum(1 for suite in ("upstream", "failnth")
                       for _, st in results(secs.get(f"{suite}-{impl}", []), nested=False)
                       if st == "skip") for impl in ("c", "rust")}
    tot = {"rust": 0, "c": 0, "total": 0}
    for fx, row in table.items():
        total = len(row["cases"])
        print(f"fixture {fx} rust={row['rust']} c={row['c']} total={total}")
        tot["rust"] += row["rust"]
        tot["c"] += row["c"]
        tot["total"] += total
    print(f"# skipped (counted as not passed): rust={skips['rust']} c={skips['c']}")
    print(f"conformance: rust={tot['rust']} c={tot['c']} total={tot['total']}")
    if tot["total"] == 0:
        print("conformance: no upstream results found in the guest log")
        return 1
    return 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "check":
        return check(argv[2], argv[3], argv[4:])
    if len(argv) == 3 and argv[1] == "conformance":
        return conformance(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
