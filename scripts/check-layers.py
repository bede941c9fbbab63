#!/usr/bin/env python3
"""The module's layering, checked from its source: reads every `crate::`
path in iommufd/**/*.rs, builds the module import graph, and prints its
import cycles. Fails if a kernel wrapper (a module under iommufd/sys/)
imports a logic module, or if the largest cycle has more modules than
--max-cycle (the one cycle we accept: the object table names every kind of
object while the kinds use the table)."""

import argparse
import os
import re
import sys


def modules(crate):
    """{module path: source without comments} for every .rs file."""
    out = {}
    for folder, _, files in os.walk(crate):
        for name in files:
            if not name.endswith(".rs") or "generated" in name:
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, crate)[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts == ["iommufd_rs_main"]:
                parts = ["crate"]
            with open(path, errors="replace") as f:
                out["::".join(parts)] = re.sub(r"//.*", "", f.read())
    return out


def use_paths(tree):
    """Flattens a use tree such as `a::{b, c::{d, e}}` into paths."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree]
    head, body = tree.split("{", 1)
    body = body[: body.rfind("}")]
    items, depth, cur = [], 0, ""
    for ch in body:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return [p for item in items if item for p in use_paths(head + item)]


def graph(mods):
    names = set(mods)

    def owner(path):
        segs = [s for s in path.split("::") if s and s != "self"]
        for i in range(len(segs), 0, -1):
            if "::".join(segs[:i]) in names:
                return "::".join(segs[:i])
        return None

    edges = {m: set() for m in names}
    for m, src in mods.items():
        paths = []
        for tree in re.findall(r"\buse\s+crate::([^;]+);", src, re.S):
            paths += use_paths(tree)
        paths += re.findall(r"\bcrate::((?:\w+::)*\w+)", src)
        for p in paths:
            t = owner(p)
            # A module's own submodules and parents are not edges.
            if t and t != m and not m.startswith(t + "::") and not t.startswith(m + "::"):
                edges[m].add(t)
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crate", default="iommufd")
    ap.add_argument("--wrappers", default="sys", help="the wrapper folder, as a module path")
    ap.add_argument("--max-cycle", type=int, default=6)
    args = ap.parse_args()

    mods = modules(args.crate)
    edges = graph(mods)
    failed = False
    wrapper = lambda m: m == args.wrappers or m.startswith(args.wrappers + "::")
    for m in sorted(mods):
        if not wrapper(m):
            continue
        up = sorted(t for t in edges[m] if not wrapper(t) and t != "uapi")
        if up:
            print(f"not ok: wrapper {m} imports logic: {' '.join(up)}")
            failed = True
    comps = cycles(edges)
    largest = max((len(c) for c in comps), default=0)
    for c in comps:
        print(f"cycle ({len(c)}): {' '.join(c)}")
    print(f"modules={len(mods)} cycles={len(comps)} largest={largest} ceiling={args.max_cycle}")
    if largest > args.max_cycle:
        print(f"not ok: the largest cycle has {largest} modules, over {args.max_cycle}")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
