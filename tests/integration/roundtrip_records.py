#!/usr/bin/python3
"""Data for kcat_roundtrip_test.sh: generates kcat -P input files with the records they must
become, and verifies what kcat -C printed against them.

  roundtrip_records.py generate --dir D --partitions P --per-partition N --chunks C [--post M]
      writes D/in-<p>-<chunk>.txt (kcat -P -K: input), D/flags-<p>-<chunk> (extra kcat options:
      codec, -Z, headers) and D/expected.tsv (one line per record, sorted by partition, offset;
      chunk 'post' is the batch produced after the restart).
  roundtrip_records.py verify --expected E --actual A [--same-as PREV] [--ts-window T0 T1]
      [--upto-post]
      checks A (kcat -C -f FORMAT output) against E: every record present exactly once,
      unaltered, offsets 0..n-1 per partition in output order; with --same-as, records also
      present in PREV must be byte-identical there (timestamps included).

Record line format (FORMAT in the test): partition TAB offset TAB keylen TAB key TAB valuelen TAB
value TAB timestamp TAB headers, as kcat's -f '%p\\t%o\\t%K\\t%k\\t%S\\t%s\\t%T\\t%h\\n' prints it.
Expected lines carry '*' as the timestamp (the producer picks it).

Exit status 0 = all good, 1 = mismatch (with a readable report on stdout), 2 = usage error.
"""

import argparse
import collections
import os
import sys

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
# Bytes a value draws from: printable ASCII with the characters kcat, CSV or JSON could trip on,
# and multi-byte UTF-8. Never TAB or newline (the line format) and never NUL.
TOKENS = [c.encode() for c in
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :=,;{}[]\"'\\/|!?#$%&*+-_.~^`@()<>"]
TOKENS += ["é".encode(), "€".encode(), "😀".encode()]

FIELDS = ["partition", "offset", "key length", "key", "value length", "value", "timestamp",
          "headers"]


def chunk_options(p, chunk):
    """kcat options for one chunk: codec, NULL handling, and headers that identify it."""
    if chunk == "post":
        codec, null_empty = "none", False
    else:
        codec, null_empty = CODECS[chunk % len(CODECS)], chunk == 1
    opts = []
    if codec == "zstd":
        opts += ["-X", "compression.codec=zstd"]
    elif codec != "none":
        opts += ["-z", codec]
    if null_empty:
        opts += ["-Z"]  # empty key/value become NULL
    # Repeated names, an empty value and a NULL value (no '='): Kafka headers are an ordered list.
    headers = [("p", str(p)), ("chunk", str(chunk)), ("codec", codec), ("dup", "1"),
               ("empty", ""), ("dup", "2")]
    if chunk != "post" and chunk % 2 == 0:
        headers.append(("nullv", None))
    for name, value in headers:
        opts += ["-H", name if value is None else f"{name}={value}"]
    # kcat prints headers as name=value CSV with NULL for a NULL value.
    rendered = ",".join(f"{n}={'NULL' if v is None else v}" for n, v in headers)
    return opts, null_empty, rendered.encode()


def make_record(p, i):
    """(line for kcat -P -K:, key or None, value or None before -Z) for record i of partition p."""
    n = (i * 7919 + p * 104729) % 300
    if i % 1000 == 999:
        n = 60000  # a big record among small ones
    h = (i * 2654435761 + p * 40503) & 0xFFFFFFFF
    filler = bytearray()
    for _ in range(n):
        h = (h * 1103515245 + 12345) & 0x7FFFFFFF
        filler += TOKENS[h % len(TOKENS)]
    value = f"p{p}/i{i}/".encode() + bytes(filler)
    if i % 333 == 5:
        value = b""
    if i % 500 == 13:
        # No key delimiter on the line: kcat sends a NULL key and the whole line as the value.
        value = (value.replace(b":", b"") or b"nokey")
        return value, None, value
    key = b"" if i % 250 == 7 else f"user-{(i * 7919 + p) % 503:03d}".encode()
    return key + b":" + value, key, value


def render(field):
    """(length, bytes) as kcat's %K/%k and %S/%s print them."""
    if field is None:
        return b"-1", b""
    return str(len(field)).encode(), field


def generate(args):
    os.makedirs(args.dir, exist_ok=True)
    per_chunk = -(-args.per_partition // args.chunks)
    expected = []
    for p in range(args.partitions):
        plan = [(c, c * per_chunk, min(args.per_partition, (c + 1) * per_chunk))
                for c in range(args.chunks)]
        if args.post:
            plan.append(("post", args.per_partition, args.per_partition + args.post))
        for chunk, lo, hi in plan:
            if lo >= hi:
                continue
            opts, null_empty, headers = chunk_options(p, chunk)
            with open(os.path.join(args.dir, f"in-{p}-{chunk}.txt"), "wb") as f:
                for i in range(lo, hi):
                    line, key, value = make_record(p, i)
                    f.write(line + b"\n")
                    if null_empty:
                        key = key or None
                        value = value or None
                    kl, k = render(key)
                    vl, v = render(value)
                    expected.append(b"\t".join([str(p).encode(), str(i).encode(), kl, k, vl, v,
                                                b"*", headers]))
            with open(os.path.join(args.dir, f"flags-{p}-{chunk}"), "w") as f:
                f.write("\n".join(opts) + "\n")
    with open(os.path.join(args.dir, "expected.tsv"), "wb") as f:
        f.write(b"\n".join(expected) + b"\n")
    return 0


def show(b, limit=120):
    r = repr(b)
    return r if len(r) <= limit else r[:limit] + f"... ({len(b)} bytes)"


def compare(name, want, got, a="want", b="got"):
    """One field's difference; long values are shown around the first differing byte."""
    if len(want) <= 60 and len(got) <= 60:
        return f"{name}: {a} {show(want)} {b} {show(got)}"
    at = next((i for i in range(min(len(want), len(got))) if want[i] != got[i]),
              min(len(want), len(got)))
    lo = max(0, at - 20)
    return (f"{name} ({a} {len(want)} bytes, {b} {len(got)}) first differs at byte {at}: "
            f"{a} ...{show(want[lo:at + 20])}... {b} ...{show(got[lo:at + 20])}...")


def parse(path, report, label):
    """Lines of a record file as 8-field tuples, in file order."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines[-1]:
        report.append(f"{label}: last line is not terminated (output cut short?): "
                      f"{show(lines[-1])}")
    for n, line in enumerate(lines[:-1], 1):
        fields = line.split(b"\t")
        if len(fields) != 8:
            report.append(f"{label} line {n}: {len(fields)} tab-separated fields, want 8: "
                          f"{show(line)}")
            continue
        out.append(tuple(fields))
    return out


def verify(args):
    problems = []
    expected = parse(args.expected, problems, "expected")
    if not args.upto_post:
        expected = [r for r in expected if b"chunk=post" not in r[7]]
    actual = parse(args.actual, problems, "consumed")
    want = {(r[0], r[1]): r for r in expected}

    # Output order: offsets 0, 1, 2, ... per partition, no gap, repeat or step back.
    next_offset = collections.defaultdict(int)
    order_errors = 0
    seen = collections.Counter()
    for r in actual:
        seen[(r[0], r[1])] += 1
        try:
            p, o = int(r[0]), int(r[1])
        except ValueError:
            problems.append(f"unparseable partition/offset: {show(b'|'.join(r[:2]))}")
            continue
        if o != next_offset[p]:
            if order_errors < 10:
                what = ("duplicate or step back" if o < next_offset[p] else "gap or reordering")
                problems.append(f"partition {p}: offset {o} where {next_offset[p]} was due "
                                f"({what})")
            order_errors += 1
        next_offset[p] = max(next_offset[p], o + 1)
    if order_errors > 10:
        problems.append(f"... {order_errors - 10} more offset order errors")

    # Presence: exactly once.
    missing = [k for k in want if seen[k] == 0]
    dups = [k for k, n in seen.items() if n > 1]
    extra = [k for k in seen if k not in want]
    for name, keys in (("missing", missing), ("duplicated", dups), ("unexpected", extra)):
        if keys:
            keys.sort(key=lambda k: (int(k[0]), int(k[1])) if k[0].isdigit() and k[1].isdigit()
                      else (0, 0))
            sample = ", ".join(f"{k[0].decode()}/{k[1].decode()}" for k in keys[:10])
            problems.append(f"{len(keys)} {name} records (partition/offset): {sample}"
                            + (" ..." if len(keys) > 10 else ""))

    # Content: every field but the timestamp equal to what was produced.
    altered = 0
    ts_lo = ts_hi = None
    if args.ts_window:
        ts_lo, ts_hi = args.ts_window[0] - 5000, args.ts_window[1] + 5000
    for r in actual:
        w = want.get((r[0], r[1]))
        if w is None:
            continue
        diffs = [compare(FIELDS[i], w[i], r[i]) for i in range(8) if i != 6 and w[i] != r[i]]
        if ts_lo is not None:
            try:
                ts = int(r[6])
                if not ts_lo <= ts <= ts_hi:
                    diffs.append(f"timestamp {ts} outside the produce window [{ts_lo}, {ts_hi}]")
            except ValueError:
                diffs.append(f"timestamp {show(r[6])} is not a number")
        if diffs:
            if altered < 10:
                problems.append(f"record {r[0].decode(errors='replace')}/"
                                f"{r[1].decode(errors='replace')} altered: " + "; ".join(diffs))
            altered += 1
    if altered > 10:
        problems.append(f"... {altered - 10} more altered records")

    # Same as an earlier consumption (e.g. before the restart), timestamps included.
    if args.same_as:
        before = {(r[0], r[1]): r for r in parse(args.same_as, problems, "previous")}
        changed = 0
        for r in actual:
            b = before.get((r[0], r[1]))
            if b is not None and b != r:
                if changed < 10:
                    diffs = [compare(FIELDS[i], b[i], r[i], "before", "now")
                             for i in range(8) if b[i] != r[i]]
                    problems.append(f"record {r[0].decode(errors='replace')}/"
                                    f"{r[1].decode(errors='replace')} changed since "
                                    f"{args.same_as}: " + "; ".join(diffs))
                changed += 1
        lost = [k for k in before if seen[k] == 0]
        if lost:
            problems.append(f"{len(lost)} records consumed before are gone now")
        if changed > 10:
            problems.append(f"... {changed - 10} more changed records")

    per_partition = collections.Counter(r[0].decode(errors="replace") for r in actual)
    summary = ", ".join(f"p{p}={per_partition[p]}" for p in sorted(per_partition))
    if problems:
        print(f"FAIL: {args.actual}: {len(actual)} records consumed ({summary}), "
              f"{len(expected)} expected")
        for line in problems:
            print("  " + line)
        return 1
    print(f"ok: {args.actual}: all {len(expected)} records exactly once, unaltered, in order "
          f"({summary})")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--dir", required=True)
    g.add_argument("--partitions", type=int, required=True)
    g.add_argument("--per-partition", type=int, required=True)
    g.add_argument("--chunks", type=int, required=True)
    g.add_argument("--post", type=int, default=0)
    v = sub.add_parser("verify")
    v.add_argument("--expected", required=True)
    v.add_argument("--actual", required=True)
    v.add_argument("--same-as")
    v.add_argument("--ts-window", type=int, nargs=2)
    v.add_argument("--upto-post", action="store_true",
                   help="include the post-restart chunk in what is expected")
    args = ap.parse_args()
    return generate(args) if args.cmd == "generate" else verify(args)


if __name__ == "__main__":
    sys.exit(main())
