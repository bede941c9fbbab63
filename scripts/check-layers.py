#!/usr/bin/env python3
"""The module's layering, checked from its source: reads every `crate::`
path in iommufd/**/*.rs, builds the module import graph, and prints its
import cycles. Fails if a kernel wrapper (a module under iommufd/sys/)
imports a logic module, or if a cycle holds a module other than the
object table, the file context and the modules that define the kinds of
object the table names (the one cycle we accept: the table names every
kind while the kinds use the table)."""

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


def kind_modules(mods, table="object"):
    """The modules that define a type the object table's `ObjectKind`
    names, or are named by a kind without data."""
    body = re.search(r"enum ObjectKind\s*\{(.*?)\n\}", mods.get(table, ""), re.S)
    if not body:
        return set()
    types = set(re.findall(r"\w+\((?:Arc<)?(\w+)>?\)", body.group(1)))
    # A kind without data (`Access,`) is the module of its name.
    out = {v.lower() for v in re.findall(r"^\s*(\w+),\s*$", body.group(1), re.M)}
    out &= set(mods)
    for m, src in mods.items():
        if any(re.search(rf"\bstruct {t}\b", src) for t in types):
            out.add(m)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crate", default="iommufd")
    ap.add_argument("--wrappers", default="sys", help="the wrapper folder, as a module path")
    ap.add_argument("--table", default="object", help="the object table's module")
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
    allowed = kind_modules(mods, args.table) | {args.table, "context"}
    for c in comps:
        print(f"cycle ({len(c)}): {' '.join(c)}")
        stray = sorted(set(c) - allowed)
        if stray:
            print(f"not ok: in a cycle but no object kind: {' '.join(stray)}")
            failed = True
    print(f"modules={len(mods)} cycles={len(comps)} kinds={' '.join(sorted(allowed))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
