#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Prove that our uAPI header is binary-identical to the kernel's.

Every macro, enumerator and struct/union declared by OUR header is turned
into a C probe program that prints values, sizes, alignments and offsets.
The probe is compiled and run once against OUR header and once against
THEIR header (each copied to <tmp>/inc-*/linux/<basename of --theirs>,
first on the -I path), and the outputs are compared.  A parse of THEIR
header checks the other direction (everything they declare is declared by
us too).

Output is KTAP; the exit status is non-zero if any check fails.

  python3 scripts/check-uapi.py --ours include/uapi/linux/iommufd.h \\
      --theirs $KSRC/include/uapi/linux/iommufd.h \\
      --hdr $KSRC/usr/include [--hdr DIR ...] [--cc clang]

--hdr may be repeated; each DIR is passed with -I in order.  With a raw
(not headers_install'ed) source tree, pass --asm-generic-shims to add a
fallback dir whose asm/<x>.h just includes <asm-generic/x.h>.

The selftest header (it includes <linux/iommufd.h>, found via --hdr; put
include/uapi of this repository first to use ours for both sides):

  python3 scripts/check-uapi.py --ours iommufd/iommufd_test.h \\
      --theirs $KSRC/drivers/iommu/iommufd/iommufd_test.h \\
      --hdr $KSRC/usr/include [--hdr DIR ...]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Where the headers under test are staged (-I<tmp>/inc-*/HEADER_NAME);
# main() sets it to linux/<basename of --theirs>, or --include-as.
HEADER_NAME = "linux/iommufd.h"

# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def strip_comments(text):
    """Remove C comments, keeping string/char literals and line structure."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise ValueError("unterminated comment")
            out.append(" " + "\n" * text.count("\n", i, j))
            i = j + 2
        elif c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


TOKEN_RE = re.compile(r"""
    (?P<id>[A-Za-z_]\w*)
  | (?P<num>(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*)
  | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
  | (?P<op><<|>>|[{}()\[\];,=:*+\-~|&^!<>?./%])
  | (?P<ws>\s+)
""", re.VERBOSE)


def tokenize(text):
    toks = []
    pos = 0
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m:
            raise ValueError("cannot tokenize near %r" % text[pos:pos + 40])
        if m.lastgroup != "ws":
            toks.append(m.group())
        pos = m.end()
    return toks


def drop_attributes(toks):
    """Remove __attribute__((...)) groups from a token list."""
    out = []
    i = 0
    while i < len(toks):
        if toks[i] in ("__attribute__", "__attribute"):
            i += 1
            depth = 0
            while i < len(toks):
                if toks[i] == "(":
                    depth += 1
                elif toks[i] == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
            continue
        out.append(toks[i])
        i += 1
    return out


def match_brace(toks, i, open_="{", close="}"):
    """toks[i] is an opening brace; return index of its partner."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j] == open_:
            depth += 1
        elif toks[j] == close:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced %s" % open_)


def split_top(toks, sep):
    """Split a token list on sep at bracket depth 0."""
    parts, cur, depth = [], [], 0
    for t in toks:
        if t in "([{" and len(t) == 1:
            depth += 1
        elif t in ")]}" and len(t) == 1:
            depth -= 1
        if t == sep and depth == 0:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        parts.append(cur)
    return parts


class Field:
    def __init__(self, path, type_toks, dims, bitfield=False):
        self.path = path            # "a" or "u.b" (member designator)
        self.type = " ".join(type_toks)
        self.dims = dims            # list of dimension strings; "" = flexible
        self.bitfield = bitfield
        self.aggregate = bool(type_toks) and type_toks[0] in (
            "struct", "union", "{anon}")

    @property
    def flexible(self):
        return bool(self.dims) and self.dims[0] == ""


class Record:
    def __init__(self, kind, tag):
        self.kind = kind            # "struct" or "union"
        self.tag = tag
        self.fields = []

    @property
    def cname(self):
        return "%s %s" % (self.kind, self.tag)


class Header:
    def __init__(self, path):
        self.path = path
        with open(path) as f:
            raw = f.read()
        text = strip_comments(raw.replace("\\\n", " "))
        self.includes = []
        self.macros = {}            # name -> value text (None: function-like)
        self.guard = None
        body = []
        for line in text.splitlines():
            s = line.strip()
            if not s.startswith("#"):
                body.append(line)
                continue
            d = s[1:].strip()
            m = re.match(r"include\s*([<\"][^>\"]+[>\"])", d)
            if m:
                self.includes.append(m.group(1))
                continue
            m = re.match(r"ifndef\s+(\w+)", d)
            if m and self.guard is None and not self.macros:
                self.guard = m.group(1)
                continue
            m = re.match(r"define\s+(\w+)(\()?\s*(.*)$", d)
            if m:
                name, fn, val = m.group(1), m.group(2), m.group(3).strip()
                if name == self.guard:
                    continue
                self.macros[name] = None if fn else val
        self.enums = {}             # tag (or "<anon N>") -> [enumerator names]
        self.enumerators = {}       # name -> value expression text
        self.records = {}           # tag -> Record
        self._parse(tokenize("\n".join(body)))

    # -- declarations -------------------------------------------------------

    def _parse(self, toks):
        i, anon = 0, 0
        while i < len(toks):
            t = toks[i]
            if t == "enum":
                j = i + 1
                tag = None
                if toks[j] != "{" and re.match(r"\w+$", toks[j]):
                    tag = toks[j]
                    j += 1
                if toks[j] == "{":
                    end = match_brace(toks, j)
                    if tag is None:
                        anon += 1
                        tag = "<anonymous enum %d>" % anon
                    self._parse_enum(tag, toks[j + 1:end])
                    i = end + 1
                    continue
            elif t in ("struct", "union") and i + 2 < len(toks) \
                    and toks[i + 2] == "{":
                rec = Record(t, toks[i + 1])
                end = match_brace(toks, i + 2)
                self._parse_members(rec, toks[i + 3:end], "")
                self.records[rec.tag] = rec
                i = end + 1
                continue
            elif t == "{":
                i = match_brace(toks, i) + 1
                continue
            i += 1

    def _parse_enum(self, tag, toks):
        names = []
        for item in split_top(toks, ","):
            if not item:
                continue
            item = drop_attributes(item)
            name = item[0]
            val = " ".join(item[2:]) if len(item) > 2 and item[1] == "=" \
                else None
            names.append(name)
            self.enumerators[name] = val
        self.enums[tag] = names

    def _parse_members(self, rec, toks, prefix):
        for decl in split_top(toks, ";"):
            decl = drop_attributes(decl)
            if not decl:
                continue
            if decl[0] in ("struct", "union") and "{" in decl[:3]:
                ob = decl.index("{")
                cb = match_brace(decl, ob)
                inner, rest = decl[ob + 1:cb], decl[cb + 1:]
                named_tag = ob == 2
                if not rest:
                    if named_tag:
                        continue    # nested type declaration, no member
                    # anonymous struct/union: members belong to the parent
                    self._parse_members(rec, inner, prefix)
                    continue
                for d in split_top(rest, ","):
                    f = self._declarator(prefix, ["{anon}"], d)
                    rec.fields.append(f)
                    if not f.dims:
                        self._parse_members(rec, inner, f.path + ".")
                continue
            parts = split_top(decl, ",")
            first = parts[0]
            # type = tokens before the declarator name of the first part
            k = 0
            while k < len(first) and first[k] not in ("[", ":"):
                k += 1
            name_idx = k - 1
            type_toks = [t for t in first[:name_idx] if t != "*"]
            rec.fields.append(self._declarator(prefix, type_toks,
                                               first[name_idx:]))
            for d in parts[1:]:
                rec.fields.append(self._declarator(prefix, type_toks, d))

    @staticmethod
    def _declarator(prefix, type_toks, d):
        ptr = False
        while d and d[0] == "*":
            d = d[1:]
            ptr = True
        if not d or not re.match(r"[A-Za-z_]\w*$", d[0]):
            raise ValueError("cannot parse declarator %r" % " ".join(d))
        name, rest = d[0], d[1:]
        dims, bitfield = [], False
        while rest:
            if rest[0] == "[":
                cb = match_brace(rest, 0, "[", "]")
                dims.append(" ".join(rest[1:cb]))
                rest = rest[cb + 1:]
            elif rest[0] == ":":
                bitfield = True
                break
            else:
                raise ValueError("cannot parse declarator %s %r" %
                                 (name, " ".join(rest)))
        tt = list(type_toks) + (["*"] if ptr else [])
        f = Field(prefix + name, tt, dims, bitfield)
        if ptr:
            f.aggregate = False
        return f

    def ioctl_macros(self):
        return sorted(n for n, v in self.macros.items()
                      if v is not None and re.match(r"_IO(W|R|WR)?\s*\(", v))


# ---------------------------------------------------------------------------
# Probe generation
# ---------------------------------------------------------------------------

# Classify the (lvalue-converted) type of an expression.
CLASSIFY = r"""
#define CLS(x) _Generic((x), \
	_Bool: "bool", char: "char", signed char: "schar", \
	unsigned char: "uchar", short: "short", unsigned short: "ushort", \
	int: "int", unsigned int: "uint", long: "long", unsigned long: "ulong", \
	long long: "llong", unsigned long long: "ullong", float: "float", \
	double: "double", long double: "ldouble", \
	char *: "char*", const char *: "const char*", void *: "void*", \
	default: "other")
"""


def c_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_macros(hdr):
    lines = []
    for name in sorted(hdr.macros):
        val = hdr.macros[name]
        lines.append("#ifdef %s" % name)
        if val is None:
            lines.append('\tputs("macro %s: function-like");' % name)
        elif val.startswith('"'):
            lines.append('\tprintf("macro %%s = %%s\\n", %s, %s);'
                         % (c_str(name), name))
        else:
            lines.append('\tprintf("macro %%s = %%llu (%%s)\\n", %s, '
                         '(unsigned long long)(%s), CLS(%s));'
                         % (c_str(name), name, name))
        lines.append("#else")
        lines.append('\tputs("macro %s: NOT DEFINED");' % name)
        lines.append("#endif")
    return lines


def unit_enumerators(hdr):
    lines = []
    for name in sorted(hdr.enumerators):
        lines.append('\tprintf("enumerator %%s = %%lld (%%s)\\n", %s, '
                     '(long long)(%s), CLS(%s));' % (c_str(name), name, name))
    return lines


def unit_enum_types(hdr):
    lines = []
    for tag in sorted(t for t in hdr.enums if not t.startswith("<")):
        lines.append('\tprintf("enum %s: sizeof %%zu alignof %%zu '
                     'signed %%d\\n", sizeof(enum %s), _Alignof(enum %s), '
                     '(int)((enum %s)-1 < 0));' % (tag, tag, tag, tag))
    return lines


def unit_record(rec):
    cn = rec.cname
    lines = ['\tprintf("%s: sizeof %%zu alignof %%zu\\n", sizeof(%s), '
             '_Alignof(%s));' % (cn, cn, cn)]
    for f in rec.fields:
        acc = "((%s *)0)->%s" % (cn, f.path)
        label = "%s.%s" % (cn, f.path)
        if f.bitfield:
            lines.append('\tputs("%s: bit-field (layout not probed)");'
                         % label)
            continue
        lines.append('\tprintf("%s: offsetof %%zu\\n", '
                     '__builtin_offsetof(%s, %s));' % (label, cn, f.path))
        if not f.flexible:
            lines.append('\tprintf("%s: sizeof %%zu alignof %%zu\\n", '
                         'sizeof(%s), (size_t)__alignof__(%s));'
                         % (label, acc, acc))
        elem = acc + "[0]" * len(f.dims)
        if f.dims:
            lines.append('\tprintf("%s: element sizeof %%zu alignof %%zu '
                         'class %%s\\n", sizeof(%s), (size_t)__alignof__(%s),'
                         ' CLS(%s));' % (label, elem, elem, elem))
        elif not f.aggregate:
            lines.append('\tprintf("%s: class %%s\\n", CLS(%s));'
                         % (label, acc))
    return lines


def build_units(hdr):
    """Ordered list of (test name, C statement lines)."""
    units = [("macros", unit_macros(hdr)),
             ("enumerators", unit_enumerators(hdr)),
             ("enum types", unit_enum_types(hdr))]
    for tag in hdr.records:
        rec = hdr.records[tag]
        units.append((rec.cname, unit_record(rec)))
    return units


def probe_source(units):
    src = ["#include <stddef.h>", "#include <stdio.h>",
           "#include <%s>" % HEADER_NAME, CLASSIFY]
    for idx, (name, body) in enumerate(units):
        src.append("/* %s */" % name)
        src.append("static void unit_%d(void)\n{" % idx)
        src.append('\tputs("@@ %s");' % name)
        src.extend(body)
        src.append("}")
    src.append("int main(void)\n{")
    for idx in range(len(units)):
        src.append("\tunit_%d();" % idx)
    src.append("\treturn 0;\n}")
    return "\n".join(src) + "\n"


# ---------------------------------------------------------------------------
# Compile and run
# ---------------------------------------------------------------------------


class Toolchain:
    def __init__(self, cc, hdr_dirs, workdir):
        self.cc = cc
        self.hdr_dirs = hdr_dirs
        self.workdir = workdir
        self.count = 0

    def stage(self, header, label):
        """Copy header to <tmp>/inc-<label>/HEADER_NAME; return include dir."""
        inc = os.path.join(self.workdir, "inc-" + label)
        dst = os.path.join(inc, HEADER_NAME)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(header, dst)
        return inc

    def compile(self, inc, source, extra=(), link=True):
        """Return (ok, exe path or None, compiler stderr)."""
        self.count += 1
        base = os.path.join(self.workdir, "probe%d" % self.count)
        with open(base + ".c", "w") as f:
            f.write(source)
        # __EXPORTED_HEADERS__ silences the "kernel headers from user space"
        # #warning of a raw (not headers_install'ed) include/uapi/linux/types.h.
        cmd = [self.cc, "-std=gnu11", "-D__EXPORTED_HEADERS__", "-I" + inc]
        cmd += ["-I" + d for d in self.hdr_dirs]
        cmd += list(extra)
        if link:
            cmd += ["-o", base, base + ".c"]
        else:
            cmd += ["-c", "-o", base + ".o", base + ".c"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        return p.returncode == 0, (base if link else None), p.stdout

    @staticmethod
    def run(exe):
        p = subprocess.run([exe], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        if p.returncode != 0:
            raise RuntimeError("probe exited with %d" % p.returncode)
        return p.stdout


def first_errors(log, n=2):
    errs = [re.sub(r"^\S*/(probe\d+\.c:)", r"\1", ln.strip())
            for ln in log.splitlines() if "error" in ln]
    if not errs:
        errs = log.strip().splitlines()[-1:] or ["?"]
    return "; ".join(errs[:n])


def split_output(out):
    res, cur = {}, None
    for ln in out.splitlines():
        if ln.startswith("@@ "):
            cur = ln[3:]
            res[cur] = []
        elif cur is not None:
            res[cur].append(ln)
    return res


def probe(tc, inc, units):
    """Run all units against one staged header.

    Returns {unit name: list of output lines or ("error", message)}.
    """
    ok, exe, log = tc.compile(inc, probe_source(units), ["-w"])
    if ok:
        return split_output(tc.run(exe))
    # Something does not compile: isolate unit by unit.
    res = {}
    for unit in units:
        ok, exe, log = tc.compile(inc, probe_source([unit]), ["-w"])
        if ok:
            res.update(split_output(tc.run(exe)))
        else:
            res[unit[0]] = ("error", first_errors(log))
    return res


# ---------------------------------------------------------------------------
# KTAP
# ---------------------------------------------------------------------------


class Ktap:
    def __init__(self):
        self.results = []

    def add(self, name, ok, details=""):
        self.results.append((name, ok, details))

    def emit(self):
        print("KTAP version 1")
        print("1..%d" % len(self.results))
        for n, (name, ok, details) in enumerate(self.results, 1):
            details = " ".join(details.split())
            if ok:
                print("ok %d - %s" % (n, name))
            else:
                print("not ok %d - %s # %s" % (n, name, details))
        return all(ok for _, ok, _ in self.results)


def describe_diff(a, b, limit=3):
    diffs = []
    for x, y in zip(a, b):
        if x != y:
            diffs.append("ours '%s' vs theirs '%s'" % (x, y))
    if len(a) != len(b):
        diffs.append("%d vs %d output lines" % (len(a), len(b)))
    more = " (+%d more)" % (len(diffs) - limit) if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more


def missing(what, want, have):
    gone = [x for x in want if x not in have]
    return ["%s %s" % (what, x) for x in gone]


def main():
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", required=True, help="header under test")
    ap.add_argument("--theirs", required=True, help="reference kernel header")
    ap.add_argument("--hdr", action="append", default=[], required=True,
                    help="installed uapi include dir (repeatable, -I order)")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--asm-generic-shims", action="store_true",
                    help="add a last-resort asm/*.h -> asm-generic/*.h dir")
    ap.add_argument("--include-as", metavar="NAME",
                    help="name the probes #include the header by "
                    "(default: linux/<basename of --theirs>)")
    ap.add_argument("--keep", action="store_true", help="keep temp dir")
    args = ap.parse_args()

    global HEADER_NAME
    HEADER_NAME = args.include_as or \
        "linux/" + os.path.basename(args.theirs)

    if shutil.which(args.cc) is None:
        print("check-uapi: compiler %r not found" % args.cc, file=sys.stderr)
        return 2

    ours = Header(args.ours)
    theirs = Header(args.theirs)
    workdir = tempfile.mkdtemp(prefix="check-uapi.")
    hdr_dirs = [os.path.abspath(d) for d in args.hdr]
    if args.asm_generic_shims:
        shim = os.path.join(workdir, "asm-shims")
        os.makedirs(os.path.join(shim, "asm"))
        for d in hdr_dirs:
            gen = os.path.join(d, "asm-generic")
            if not os.path.isdir(gen):
                continue
            for name in os.listdir(gen):
                p = os.path.join(shim, "asm", name)
                if name.endswith(".h") and not os.path.exists(p):
                    with open(p, "w") as f:
                        f.write("#include <asm-generic/%s>\n" % name)
        hdr_dirs.append(shim)

    tc = Toolchain(args.cc, hdr_dirs, workdir)
    inc_ours = tc.stage(args.ours, "ours")
    inc_theirs = tc.stage(args.theirs, "theirs")
    k = Ktap()
    try:
        # 1. our header compiles on its own, warning-free.
        ok, _, log = tc.compile(
            inc_ours, "#include <%s>\n" % HEADER_NAME,
            ["-Wall", "-Wextra", "-Werror"], link=False)
        k.add("ours compiles standalone with -Wall -Wextra -Werror", ok,
              first_errors(log) if not ok else "")
        # Sanity: theirs too, so later failures are not environment noise.
        ok, _, log = tc.compile(inc_theirs, "#include <%s>\n" % HEADER_NAME,
                                ["-w"], link=False)
        k.add("theirs compiles in this environment", ok,
              first_errors(log) if not ok else "")

        # 2. same includes.
        k.add("includes match theirs (%s)" % " ".join(theirs.includes),
              ours.includes == theirs.includes,
              "ours %s vs theirs %s" % (ours.includes, theirs.includes))

        # 3. completeness: everything they declare, we declare.
        gaps = (missing("macro", sorted(theirs.macros), ours.macros)
                + missing("enumerator", sorted(theirs.enumerators),
                          ours.enumerators)
                + missing("enum", sorted(t for t in theirs.enums
                                         if not t.startswith("<")), ours.enums)
                + missing("record", sorted(theirs.records), ours.records))
        k.add("completeness: %d ioctls, %d macros, %d enums, %d enumerators, "
              "%d structs/unions of theirs are in ours"
              % (len(theirs.ioctl_macros()), len(theirs.macros),
                 len(theirs.enums), len(theirs.enumerators),
                 len(theirs.records)),
              not gaps, "missing: " + ", ".join(gaps[:8]) +
              (" (+%d more)" % (len(gaps) - 8) if len(gaps) > 8 else ""))

        # 4. enum membership and macro kinds (parse-level, both ways).
        bad = []
        for tag, names in ours.enums.items():
            if tag.startswith("<"):
                continue
            if tag in theirs.enums and sorted(names) != \
                    sorted(theirs.enums[tag]):
                bad.append("enum %s: ours %s vs theirs %s"
                           % (tag, names, theirs.enums[tag]))
        anon_o = sorted(sorted(v) for t, v in ours.enums.items()
                        if t.startswith("<"))
        anon_t = sorted(sorted(v) for t, v in theirs.enums.items()
                        if t.startswith("<"))
        if anon_o != anon_t:
            bad.append("anonymous enums differ: %s vs %s" % (anon_o, anon_t))
        for name, val in ours.macros.items():
            if name in theirs.macros and \
                    (val is None) != (theirs.macros[name] is None):
                bad.append("macro %s: object-like vs function-like" % name)
        k.add("enum membership and macro kinds match theirs", not bad,
              "; ".join(bad[:3]))

        # 5. binary probes: same program (derived from OURS) on both headers.
        units = build_units(ours)
        res_o = probe(tc, inc_ours, units)
        res_t = probe(tc, inc_theirs, units)
        for name, _ in units:
            o, t = res_o.get(name), res_t.get(name)
            label = name
            if name == "macros":
                label = "macros: %d values and types" % len(ours.macros)
            elif name == "enumerators":
                label = "enumerators: %d values" % len(ours.enumerators)
            elif name == "enum types":
                label = "enum types: %d sizes and signedness" % len(
                    [t for t in ours.enums if not t.startswith("<")])
            else:
                label = "%s layout (%d fields)" % (
                    name, len(ours.records[name.split(" ", 1)[1]].fields))
            if isinstance(o, tuple):
                k.add(label, False, "does not compile against ours: " + o[1])
                continue
            if isinstance(t, tuple):
                k.add(label, False, "does not compile against theirs: " + t[1])
                continue
            detail = describe_diff(o, t) if o != t else ""
            extra = ""
            if name.startswith(("struct ", "union ")):
                tag = name.split(" ", 1)[1]
                rt = theirs.records.get(tag)
                fo = [f.path for f in ours.records[tag].fields]
                ft = [f.path for f in rt.fields] if rt else None
                if rt is None:
                    extra = "not declared by theirs"
                elif rt.kind != ours.records[tag].kind:
                    extra = "kind %s vs %s" % (ours.records[tag].kind, rt.kind)
                elif fo != ft:
                    extra = "field list ours %s vs theirs %s" % (fo, ft)
                else:
                    # Declared types must match too: catches differences
                    # that happen to be invisible on this arch (e.g.
                    # __u64 vs __aligned_u64 on x86_64).
                    decl_diffs = [
                        "%s: ours '%s%s' vs theirs '%s%s'" % (
                            a.path, a.type, "".join("[%s]" % d for d in a.dims),
                            b.type, "".join("[%s]" % d for d in b.dims))
                        for a, b in zip(ours.records[tag].fields, rt.fields)
                        if (a.type, a.dims) != (b.type, b.dims)]
                    extra = "; ".join(decl_diffs[:3])
            k.add(label, not detail and not extra,
                  "; ".join(x for x in (detail, extra) if x))
    finally:
        if args.keep:
            print("# temp dir kept: %s" % workdir, file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    return 0 if k.emit() else 1


if __name__ == "__main__":
    sys.exit(main())
