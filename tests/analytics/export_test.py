#!/usr/bin/python3
"""`streamhouse export` against a real broker, compared record by record with what Kafka clients
read through that broker.

1. Starts `streamhouse broker` (embedded: SQLite + local directory; --services: PostgreSQL + S3
   from tests/services/test-services.sh, exit 77 without them).
2. Produces to a 3-partition topic with kcat (keys, null keys, headers; codecs none, gzip,
   snappy, lz4, zstd) and with confluent-kafka (binary non-UTF-8 keys/values, null values,
   header with a null value, explicit CreateTime timestamps), in rounds so timestamps differ.
3. Reads everything back through the broker with a confluent-kafka consumer (exact bytes) and
   kcat -C -J, and checks both agree.
4. Exports (no broker involved: the export reads metadata + object storage) to JSON lines
   (base64 and utf8), CSV (base64) and Parquet, and compares every record; offset-range and
   time-range exports (epoch ms and ISO 8601) give exactly the records inside the inclusive
   bounds; the Parquet file is read by DuckDB (tests/duckdb, npm @duckdb/node-api): types, rows,
   and row-group statistics (min/max of partition, offset, timestamp) checked.
5. --segments: the topic has segment.ms=1, so the broker's compactor writes segments; once they
   cover the topic, `export --segments-only` with a config holding ONLY storage.url (+ s3 keys;
   metadata.url points at nothing) gives the same records.

usage: export_test.py --broker STREAMHOUSE_BINARY [--services] [--segments]
"""

import argparse
import base64
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sh_test_util import fail, free_port, log, wait_port  # noqa: E402

TOPIC = "exp"
PARTITIONS = 3
HERE = os.path.dirname(os.path.abspath(__file__))
DUCKDB_DIR = os.path.join(HERE, "..", "duckdb")


def run(cmd, timeout=60, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        fail(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr.decode(errors='replace')}")
    return r


# A record as compared: (partition, offset, timestamp, timestamp_type, key, value, headers)
# with bytes or None for key/value, headers a tuple of (str key, bytes-or-None value).
def rec(partition, offset, ts, ts_type, key, value, headers):
    return (partition, offset, ts, ts_type, key, value, tuple(headers))


def produce(bootstrap, work):
    # kcat: one invocation per (partition, codec), lines "key:value" and lines without the
    # delimiter (null key), two headers on every message of the invocation.
    codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
    for rnd, codec in enumerate(codecs):
        for p in range(PARTITIONS):
            path = os.path.join(work, f"in-{p}-{codec}.txt")
            with open(path, "w") as f:
                for i in range(40):
                    if i % 5 == 3:
                        f.write(f"nokey-{codec}-{p}-{i}\n")
                    else:
                        f.write(f"key-{i % 7}:value-{codec}-{p}-{i}-{'x' * (i * 13 % 300)}\n")
            run(["kcat", "-P", "-b", bootstrap, "-t", TOPIC, "-p", str(p), "-K", ":", "-z", codec,
                 "-H", f"codec={codec}", "-H", f"round={rnd}", "-X", "linger.ms=50", "-l", path])
        time.sleep(0.05)
    # confluent-kafka: binary keys/values, null value, null header value, explicit timestamps.
    from confluent_kafka import Producer
    pr = Producer({"bootstrap.servers": bootstrap, "compression.type": "zstd",
                   "linger.ms": 20})
    base_ts = 1_600_000_000_000
    for i in range(60):
        p = i % PARTITIONS
        key = None if i % 4 == 0 else bytes([0xff, 0xfe, i % 256, 0x00])
        value = None if i % 10 == 9 else bytes([0x80 + (i % 64)]) + b"\x00bin" + bytes([i])
        headers = [("bin", bytes([0xc3, 0x28])), ("nullhdr", None), ("empty", b"")]
        pr.produce(TOPIC, key=key, value=value, partition=p, timestamp=base_ts + i * 1000,
                   headers=headers)
    if pr.flush(30) != 0:
        fail("confluent-kafka producer did not flush")
    # And a last text round after the old timestamps, so time ranges cross batches.
    time.sleep(0.05)
    for p in range(PARTITIONS):
        path = os.path.join(work, f"in-{p}-last.txt")
        with open(path, "w") as f:
            for i in range(25):
                f.write(f"k{i}:last-{p}-{i} ünïcødé ✓\n")
        run(["kcat", "-P", "-b", bootstrap, "-t", TOPIC, "-p", str(p), "-K", ":", "-z", "lz4",
             "-l", path])


def consume_reference(bootstrap, topic=TOPIC, partitions=PARTITIONS):
    from confluent_kafka import Consumer, TopicPartition, KafkaError
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "export-test-ref",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, eof = [], set()
    deadline = time.time() + 60
    while len(eof) < partitions and time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                continue
            fail(f"consumer: {m.error()}")
        tt, ts = m.timestamp()
        hs = [(k, v) for k, v in (m.headers() or [])]
        out.append(rec(m.partition(), m.offset(), ts, 1 if tt == 2 else 0, m.key(), m.value(), hs))
    c.close()
    if len(eof) < partitions:
        fail("reference consumer did not reach the end of every partition")
    return sorted(out)


def kcat_reference(bootstrap):
    out = []
    for p in range(PARTITIONS):
        r = run(["kcat", "-C", "-b", bootstrap, "-t", TOPIC, "-p", str(p), "-o", "beginning", "-e",
                 "-J", "-q"], timeout=60)
        for line in r.stdout.decode("utf-8", errors="replace").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def export(binary, cfg, fmt, output, *extra, check=True, topic=TOPIC):
    cmd = [binary, "export", "--config", cfg, "--topic", topic, "--format", fmt, "--output",
           output, *extra]
    r = run(cmd, timeout=120, check=check)
    return r


def b64(s):
    return None if s is None else base64.b64decode(s)


def load_jsonl_b64(path, topic=TOPIC):
    out = []
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            if j["topic"] != topic:
                fail(f"topic {j['topic']}")
            out.append(rec(j["partition"], j["offset"], j["timestamp"], j["timestamp_type"],
                           b64(j["key"]), b64(j["value"]),
                           [(h["key"], b64(h["value"])) for h in j["headers"]]))
    return out


def load_csv_b64(path):
    out = []
    with open(path, newline="") as f:
        # Null is an empty unquoted field; csv.reader can't tell "" from empty, so read raw.
        text = f.read()
    rows = parse_csv_keep_quotes(text)
    if rows[0] != [("topic", False), ("partition", False), ("offset", False),
                   ("timestamp", False), ("timestamp_type", False), ("key", False),
                   ("value", False), ("headers", False)]:
        fail(f"csv header {rows[0]}")
    for r in rows[1:]:
        (topic, _), (p, _), (o, _), (ts, _), (tt, _), (k, kq), (v, vq), (h, _) = r
        hs = json.loads(h)
        out.append(rec(int(p), int(o), int(ts), int(tt), base64.b64decode(k) if kq else None,
                       base64.b64decode(v) if vq else None,
                       [(x["key"], b64(x["value"])) for x in hs]))
    return out


def parse_csv_keep_quotes(text):
    """RFC 4180 rows as lists of (field, was_quoted)."""
    rows, row, i, n = [], [], 0, len(text)
    while i < n:
        if text[i] == '"':
            i += 1
            buf = []
            while True:
                j = text.index('"', i)
                buf.append(text[i:j])
                if j + 1 < n and text[j + 1] == '"':
                    buf.append('"')
                    i = j + 2
                else:
                    i = j + 1
                    break
            row.append(("".join(buf), True))
        else:
            j = i
            while j < n and text[j] not in ",\n":
                j += 1
            row.append((text[i:j], False))
            i = j
        if i < n and text[i] == ",":
            i += 1
            if i == n or text[i] == "\n":
                row.append(("", False))
        if i < n and text[i] == "\n":
            rows.append(row)
            row = []
            i += 1
    if row:
        rows.append(row)
    return rows


def compare(name, got, want):
    if got == want:
        log(f"{name}: {len(got)} records identical")
        return
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            fail(f"{name}: record {i} differs:\n  got  {g}\n  want {w}")
    fail(f"{name}: {len(got)} records, want {len(want)}")


def duckdb(path, *args):
    node = shutil.which("node")
    script = os.path.join(DUCKDB_DIR, "read_parquet.mjs")
    if not node or not os.path.isdir(os.path.join(DUCKDB_DIR, "node_modules", "@duckdb")):
        return None
    r = run([node, script, path, *args], timeout=120)
    return json.loads(r.stdout)


def hexb(s):
    return None if s is None else bytes.fromhex(s)


def check_parquet(path, want, codec):
    d = duckdb(path, "--describe", "--rows", "--metadata")
    if d is None:
        if os.environ.get("CI"):
            fail("DuckDB (tests/duckdb/node_modules) missing in CI")
        log("DuckDB not installed (npm ci --prefix tests/duckdb): Parquet not checked")
        return
    types = {c["name"]: c["type"] for c in d["describe"]}
    expect = {"topic": "VARCHAR", "partition": "INTEGER", "offset": "BIGINT",
              "timestamp_type": "INTEGER", "key": "BLOB", "value": "BLOB",
              "key_utf8": "VARCHAR", "value_utf8": "VARCHAR"}
    for k, v in expect.items():
        if types.get(k) != v:
            fail(f"parquet column {k}: DuckDB type {types.get(k)}, want {v} (all: {types})")
    if not types.get("timestamp", "").startswith("TIMESTAMP"):
        fail(f"parquet timestamp type {types.get('timestamp')}")
    if not (types.get("headers", "").startswith("STRUCT") and types["headers"].endswith("[]")):
        fail(f"parquet headers type {types.get('headers')}")
    got = []
    for r in d["rows"]:
        k, v = hexb(r["key"]), hexb(r["value"])
        if r["key_utf8"] != (k.decode() if k is not None and is_utf8(k) else None):
            fail(f"key_utf8 {r['key_utf8']!r} for key {k!r}")
        if r["value_utf8"] != (v.decode() if v is not None and is_utf8(v) else None):
            fail(f"value_utf8 {r['value_utf8']!r} for value {v!r}")
        hs = [(h["key"], hexb(h["value"])) for h in (r["headers"] or [])]
        got.append(rec(r["partition"], int(r["offset"]), int(r["timestamp"]["epoch_ms"]),
                       r["timestamp_type"], k, v, hs))
    compare(f"parquet ({codec}) via DuckDB", got, want)
    # Statistics: per row group, min/max of partition, offset and timestamp equal the rows'.
    groups = {}
    for m in d["metadata"]:
        groups.setdefault(m["row_group_id"], {})[m["path_in_schema"]] = m
    start = 0
    for gid in sorted(groups, key=int):
        cols = groups[gid]
        n = int(cols["offset"]["row_group_num_rows"])
        rows = want[start:start + n]
        start += n
        for col, idx in (("partition", 0), ("offset", 1)):
            st = cols[col]
            vals = [r[idx] for r in rows]
            if int(st["stats_min_value"]) != min(vals) or int(st["stats_max_value"]) != max(vals):
                fail(f"row group {gid} {col} stats {st['stats_min_value']}..{st['stats_max_value']}"
                     f", rows {min(vals)}..{max(vals)}")
        st = cols["timestamp"]
        if st["stats_min_value"] is None or st["stats_max_value"] is None:
            fail(f"row group {gid}: no timestamp statistics")
        lo, hi = min(r[2] for r in rows), max(r[2] for r in rows)
        if parse_duck_ts(st["stats_min_value"]) != lo or parse_duck_ts(st["stats_max_value"]) != hi:
            fail(f"row group {gid} timestamp stats {st['stats_min_value']}..{st['stats_max_value']}"
                 f", rows {lo}..{hi}")
        if codec.upper() not in str(cols["value"].get("compression", "")).upper():
            fail(f"row group {gid}: value compression {cols['value'].get('compression')}")
    if start != len(want):
        fail(f"row groups hold {start} rows, want {len(want)}")
    log(f"parquet ({codec}): DuckDB types, rows and {len(groups)} row groups' statistics OK")


def parse_duck_ts(s):
    # DuckDB prints TIMESTAMP stats as "2020-09-13 12:26:40.000" (maybe with +00 / +00:00).
    s = str(s)
    if s.lstrip("-").isdigit():
        return int(s)
    s = s.replace(" ", "T")
    for suffix in ("+00:00", "+00"):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
    dt = datetime.datetime.fromisoformat(s).replace(tzinfo=datetime.timezone.utc)
    return round(dt.timestamp() * 1000)


def is_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--services", action="store_true")
    ap.add_argument("--segments", action="store_true")
    args = ap.parse_args()
    binary = os.path.abspath(args.broker)
    for tool in ("kcat",):
        if not shutil.which(tool):
            print(f"SKIP: {tool} not installed")
            return 77
    env = os.environ
    work = tempfile.mkdtemp(prefix="sh-export-")
    proc = None
    ok = False
    try:
        storage_lines = ""
        metadata_line = ""
        if args.services:
            needed = ["S3_ENDPOINT", "S3_REGION", "S3_ACCESS_KEY", "S3_SECRET_KEY", "PG_URL"]
            if any(not env.get(v) for v in needed):
                print(f"SKIP: needs {' '.join(needed)} (tests/services/test-services.sh)")
                return 77
            suffix = "".join(c for c in os.path.basename(work).lower() if c.isalnum())[-10:]
            bucket, db = f"sh-export-{suffix}", f"sh_export_{suffix}"
            netrc = os.path.join(work, "s3.netrc")
            with open(netrc, "w") as f:
                f.write(f"machine 127.0.0.1 login {env['S3_ACCESS_KEY']} "
                        f"password {env['S3_SECRET_KEY']}\n")
            code = run(["curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", "-X",
                        "PUT", "--aws-sigv4", f"aws:amz:{env['S3_REGION']}:s3", "--netrc-file",
                        netrc, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                        f"{env['S3_ENDPOINT']}/{bucket}"], check=False).stdout.decode()
            if code != "200":
                fail(f"creating bucket {bucket}: HTTP {code}")
            run(["psql", env["PG_URL"], "-qAt", "-c", f"CREATE DATABASE {db}"])
            metadata_line = f"metadata.url={env['PG_URL'].rsplit('/', 1)[0]}/{db}\n"
            storage_lines = (f"storage.url=s3://{bucket}/archive\n"
                             f"s3.endpoint={env['S3_ENDPOINT']}\n"
                             f"s3.region={env['S3_REGION']}\n"
                             f"s3.access.key={env['S3_ACCESS_KEY']}\n"
                             f"s3.secret.key={env['S3_SECRET_KEY']}\n")
            where = f"PostgreSQL {db}, s3://{bucket}/archive"
        else:
            storage_lines = f"storage.url=file://{work}/objects\n"
            metadata_line = f"metadata.url=sqlite://{work}/metadata.db\n"
            where = "SQLite + local directory"
        port = free_port()
        cfg = os.path.join(work, "broker.properties")
        with open(cfg, "w") as f:
            f.write(f"listeners=PLAINTEXT://127.0.0.1:{port}\nnode.id=1\n"
                    f"data.dir={work}/data\nnum.partitions={PARTITIONS}\n"
                    f"ingest.flush.ms=20\n" + metadata_line + storage_lines)
        logf = open(os.path.join(work, "broker.log"), "w")
        proc = subprocess.Popen([binary, "broker", "--config", cfg], stdout=logf,
                                stderr=subprocess.STDOUT)
        if not wait_port(port, proc):
            fail("broker did not start")
        bootstrap = f"127.0.0.1:{port}"
        log(f"broker up on {port} ({where})")

        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": bootstrap})
        configs = {"segment.ms": "1"} if args.segments else {}
        fut = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1, config=configs)])
        fut[TOPIC].result(30)
        produce(bootstrap, work)
        want = consume_reference(bootstrap)
        log(f"produced and read back through the broker: {len(want)} records")
        if len(want) != PARTITIONS * (5 * 40 + 25) + 60:
            fail(f"reference has {len(want)} records")

        # kcat -J agrees with the confluent-kafka reference (text records; kcat prints payloads
        # as strings).
        kc = kcat_reference(bootstrap)
        if len(kc) != len(want):
            fail(f"kcat -J read {len(kc)} records, confluent-kafka {len(want)}")
        by_pos = {(r[0], r[1]): r for r in want}
        for j in kc:
            w = by_pos.get((j["partition"], j["offset"]))
            if w is None or j["ts"] != w[2]:
                fail(f"kcat record {j} not in the reference")
            if w[5] is not None and is_utf8(w[5]):
                if j["payload"] != w[5].decode() or (j["key"] is None) != (w[4] is None):
                    fail(f"kcat record {j} differs from {w}")
        log("kcat -C -J agrees with the confluent-kafka reference")

        # Full exports in every format.
        out = os.path.join(work, "all.jsonl")
        r = export(binary, cfg, "jsonl", out, "--binary", "base64")
        compare("jsonl base64", load_jsonl_b64(out), want)
        if "records from 3 partition(s)" not in r.stderr.decode():
            fail(f"summary line missing: {r.stderr.decode()}")
        if "\r" in r.stderr.decode():
            fail("progress line written although stderr is not a terminal")
        if shutil.which("script"):
            # On a terminal (a pty from script(1)) the progress line is drawn.
            cmd = [binary, "export", "--config", cfg, "--topic", TOPIC, "--format", "parquet",
                   "--output", os.path.join(work, "tty.parquet")]
            t = run(["script", "-qec", " ".join(shlex.quote(c) for c in cmd), "/dev/null"],
                    timeout=120).stdout.decode(errors="replace")
            if f"\r{TOPIC}-0 offset 0: 1 records" not in t or "records/s" not in t:
                fail(f"no progress line on a terminal: {t!r}")
            log("progress line drawn on a terminal, absent otherwise")
        out = os.path.join(work, "all.csv")
        export(binary, cfg, "csv", out, "--binary", "base64")
        compare("csv base64", load_csv_b64(out), want)
        out = os.path.join(work, "utf8.jsonl")
        export(binary, cfg, "jsonl", out)
        with open(out, encoding="utf-8") as f:
            lines = [json.loads(x) for x in f]
        for j, w in zip(lines, want):
            if w[5] is not None and is_utf8(w[5]) and j["value"] != w[5].decode():
                fail(f"utf8 jsonl value {j['value']!r} != {w[5]!r}")
            if w[5] is not None and not is_utf8(w[5]) and "\ufffd" not in j["value"]:
                fail(f"utf8 jsonl: invalid UTF-8 not replaced: {j['value']!r}")
        log(f"jsonl utf8: {len(lines)} records, text exact, invalid UTF-8 replaced")
        for codec in ("zstd", "snappy"):
            out = os.path.join(work, f"all-{codec}.parquet")
            export(binary, cfg, "parquet", out, "--compression", codec, "--row-group-bytes",
                   "8192")
            check_parquet(out, want, codec)

        # Offset range, one partition, inclusive bounds.
        out = os.path.join(work, "off.jsonl")
        export(binary, cfg, "jsonl", out, "--binary", "base64", "--partition", "1",
               "--from-offset", "37", "--to-offset", "201")
        compare("offset range p1 [37, 201]", load_jsonl_b64(out),
                [r for r in want if r[0] == 1 and 37 <= r[1] <= 201])
        # Time range across partitions: bounds taken from real timestamps (inclusive), once as
        # epoch ms and once as ISO 8601.
        # Taken among the kcat rounds' (current) timestamps, so the range cuts through
        # compressed batches of several codecs.
        stamps = sorted({r[2] for r in want if r[2] > 1_700_000_000_000})
        lo, hi = stamps[len(stamps) // 4], stamps[len(stamps) * 3 // 4]
        exp = [r for r in want if lo <= r[2] <= hi]
        out = os.path.join(work, "time.jsonl")
        export(binary, cfg, "jsonl", out, "--binary", "base64", "--from-time", str(lo),
               "--to-time", str(hi))
        compare(f"time range [{lo}, {hi}]", load_jsonl_b64(out), exp)
        out = os.path.join(work, "time-iso.jsonl")
        export(binary, cfg, "jsonl", out, "--binary", "base64", "--from-time", iso(lo),
               "--to-time", iso(hi))
        compare(f"time range ISO [{iso(lo)}, {iso(hi)}]", load_jsonl_b64(out), exp)
        # The explicit old timestamps: exactly records i in 10..20 of the confluent round.
        lo2, hi2 = 1_600_000_010_000, 1_600_000_020_000
        out = os.path.join(work, "time-old.jsonl")
        export(binary, cfg, "jsonl", out, "--binary", "base64", "--from-time", str(lo2),
               "--to-time", str(hi2), "--from-offset", "0")
        got = load_jsonl_b64(out)
        compare("time range of explicit timestamps", got,
                [r for r in want if lo2 <= r[2] <= hi2])
        if len(got) != 11:
            fail(f"explicit-timestamp range: {len(got)} records, want 11")
        # Both bounds at once.
        out = os.path.join(work, "both.jsonl")
        export(binary, cfg, "jsonl", out, "--binary", "base64", "--partition", "2",
               "--from-offset", "100", "--to-time", str(hi))
        compare("offset + time bounds", load_jsonl_b64(out),
                [r for r in want if r[0] == 2 and r[1] >= 100 and r[2] <= hi])
        # A LogAppendTime topic: the broker stamps batches; every record carries the batch's
        # append time and timestamp type 1, as consumers see it.
        fut = admin.create_topics([NewTopic("exp-lat", 1, 1, config={
            "message.timestamp.type": "LogAppendTime"})])
        fut["exp-lat"].result(30)
        for rnd, codec in enumerate(("gzip", "none", "zstd")):
            path = os.path.join(work, f"lat-{rnd}.txt")
            with open(path, "w") as f:
                for i in range(15):
                    f.write(f"k{i}:lat-{rnd}-{i}\n")
            run(["kcat", "-P", "-b", bootstrap, "-t", "exp-lat", "-K", ":", "-z", codec, "-l",
                 path])
            time.sleep(0.02)
        lat = consume_reference(bootstrap, "exp-lat", 1)
        if len(lat) != 45 or any(r[3] != 1 for r in lat):
            fail(f"LogAppendTime reference: {len(lat)} records, types {set(r[3] for r in lat)}")
        out = os.path.join(work, "lat.jsonl")
        export(binary, cfg, "jsonl", out, "--binary", "base64", topic="exp-lat")
        compare("LogAppendTime topic", load_jsonl_b64(out, "exp-lat"), lat)
        lat_ts = sorted({r[2] for r in lat})
        out = os.path.join(work, "lat-time.jsonl")
        export(binary, cfg, "jsonl", out, "--binary", "base64", "--from-time", str(lat_ts[-1]),
               topic="exp-lat")
        compare("LogAppendTime topic, time range", load_jsonl_b64(out, "exp-lat"),
                [r for r in lat if r[2] >= lat_ts[-1]])
        # Usage errors.
        r = export(binary, cfg, "jsonl", out, "--from-time", "yesterday", check=False)
        if r.returncode != 2:
            fail(f"bad --from-time: exit {r.returncode}")
        r = run([binary, "export", "--config", cfg, "--topic", "nope", "--format", "csv",
                 "--output", os.path.join(work, "x.csv")], check=False)
        if r.returncode != 1 or b"nope" not in r.stderr:
            fail(f"unknown topic: exit {r.returncode} {r.stderr}")

        if args.segments:
            # A config with nothing but object storage: metadata.url points at no database.
            seg_cfg = os.path.join(work, "bucket-only.properties")
            with open(seg_cfg, "w") as f:
                f.write("metadata.url=postgresql://127.0.0.1:1/none?connect_timeout=1\n" +
                        storage_lines)
            deadline = time.time() + 90
            got = []
            while time.time() < deadline:
                out = os.path.join(work, "seg.jsonl")
                r = export(binary, seg_cfg, "jsonl", out, "--binary", "base64",
                           "--segments-only", check=False)
                if r.returncode == 0:
                    got = load_jsonl_b64(out)
                    if len(got) == len(want):
                        break
                time.sleep(2)
            log(f"segment-only export after compaction: {len(got)} records")
            if b"segment-only mode" not in r.stderr or b"NOT included" not in r.stderr:
                fail(f"segment-only mode did not say it sees compacted data only: {r.stderr}")
            compare("segment-only jsonl (bucket alone)", got, want)
            out = os.path.join(work, "seg-time.jsonl")
            r = export(binary, seg_cfg, "jsonl", out, "--binary", "base64", "--segments-only",
                       "--from-time", str(lo), "--to-time", str(hi))
            compare("segment-only time range", load_jsonl_b64(out), exp)
            out = os.path.join(work, "seg-off.jsonl")
            export(binary, seg_cfg, "jsonl", out, "--binary", "base64", "--segments-only",
                   "--partition", "0", "--from-offset", "5", "--to-offset", "150")
            compare("segment-only offset range", load_jsonl_b64(out),
                    [r for r in want if r[0] == 0 and 5 <= r[1] <= 150])
            out = os.path.join(work, "seg.parquet")
            export(binary, seg_cfg, "parquet", out, "--segments-only")
            check_parquet(out, want, "zstd")
            # And metadata mode now reads the compacted rows (segments) identically.
            out = os.path.join(work, "after.jsonl")
            export(binary, cfg, "jsonl", out, "--binary", "base64")
            compare("metadata mode after compaction", load_jsonl_b64(out), want)
        ok = True
        log("PASS")
        return 0
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work dir kept: {work}")
            blog = os.path.join(work, "broker.log")
            if os.path.exists(blog):
                with open(blog) as f:
                    print("---- broker.log (tail) ----\n" + "".join(f.readlines()[-40:]))


if __name__ == "__main__":
    try:
        code = main()
    except SystemExit as e:
        code = e.code
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: confluent-kafka 1.7 can crash in interpreter finalization (none_dealloc).
    os._exit(code if isinstance(code, int) else 1)
