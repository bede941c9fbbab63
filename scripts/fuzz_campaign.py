#!/usr/bin/env python3
"""Sums up a `make fuzz-campaign`: the guest logs of its VMs, each a run of
seeds marked `##SEED seed steps`. Prints the seeds and steps run, how often
each operation ran and succeeded (in the state it met), the first
divergence with its reproduce line, and exits 1 if there was one or if a
seed did not finish."""

import argparse
import re
import sys


def parse(path):
    """Yields (seed, steps, lines) for each seed run in one guest log."""
    seed = None
    lines = []
    try:
        text = open(path, errors="replace").read().splitlines()
    except OSError:
        return
    for line in text:
        m = re.match(r"^##SEED (\d+) (\d+)$", line)
        if m or line.startswith("##SPLATS") or line.startswith("##CAMPAIGN_END"):
            if seed is not None:
                yield seed, lines
            seed, lines = (m.groups() if m else None), []
            if line.startswith("##SPLATS"):
                yield ("splats", line.split()[1]), []
            continue
        if seed is not None:
            lines.append(line)
        m = re.match(r"^##SKIPPED (\d+) (\d+)$", line)
        if m:
            yield ("skipped", m.groups()), []
    if seed is not None:
        yield seed, lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("logs", nargs="+")
    args = ap.parse_args()

    ops = {}
    done, steps_run, skipped, unfinished, splats = [], 0, [], [], 0
    divergence = None
    ended = 0
    for path in args.logs:
        if "##CAMPAIGN_END" in open(path, errors="replace").read():
            ended += 1
        for key, lines in parse(path):
            if key[0] == "skipped":
                skipped.append(key[1])
                continue
            if key[0] == "splats":
                splats += int(key[1]) if key[1].isdigit() else 0
                continue
            seed, steps = key
            ok = any(l.startswith("ok 1 fuzz") for l in lines)
            bad = any(l.startswith("not ok 1 fuzz") for l in lines)
            if bad and any("divergence at" in l for l in lines):
                if divergence is None:
                    divergence = (seed, lines)
                m = [re.search(r"step=(\d+)", l) for l in lines if "divergence at" in l]
                steps_run += int(m[0].group(1)) if m and m[0] else 0
                continue
            if not ok:
                unfinished.append((seed, steps, lines[-5:]))
                continue
            done.append((seed, steps))
            steps_run += int(steps)
            for l in lines:
                if l.startswith("# succeeded/called: "):
                    for item in l[len("# succeeded/called: "):].split(", "):
                        name, _, frac = item.rpartition(" ")
                        good, calls = frac.split("/")
                        o = ops.setdefault(name, [0, 0])
                        o[0] += int(calls)
                        o[1] += int(good)

    width = max([len(k) for k in ops] + [10])
    print(f"{'operation (state met)':<{width}} {'calls':>10} {'succeeded':>10}")
    for name in sorted(ops):
        calls, good = ops[name]
        mark = "   <- never succeeded" if good == 0 else ""
        print(f"{name:<{width}} {calls:>10} {good:>10}{mark}")
    if divergence and unfinished:
        # The other VMs were stopped at the first divergence.
        print("# stopped when the campaign ended: seeds "
              + " ".join(seed for seed, _, _ in unfinished))
        unfinished = []
    for seed, steps, tail in unfinished:
        print(f"# seed {seed} ({steps} steps) did not finish; its last lines:")
        for l in tail:
            print(f"#   {l}")
    if skipped:
        print(f"# not started (time budget): {len(skipped)} seeds, "
              + " ".join(s for s, _ in skipped))
    if ended < len(args.logs) and divergence is None:
        print(f"# {len(args.logs) - ended} VM(s) did not reach the end of the campaign")
    if divergence:
        seed, lines = divergence
        print(f"# first divergence, seed {seed}; the steps before it:")
        for l in lines:
            if l.startswith("#"):
                print(l)
    print(f"campaign: {len(done)} seeds finished, {steps_run} steps, "
          f"{1 if divergence else 0} divergences, {splats} kernel splats, "
          f"{args.elapsed} s")
    failed = divergence or unfinished or splats or (ended < len(args.logs))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
