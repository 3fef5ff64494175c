#!/usr/bin/python3
"""Compaction, re-compression, kill -9 mid-compaction, the orphan sweep and retention through a
real broker, read back with kcat.

  compaction_retention_test.py --broker STREAMHOUSE_BINARY [--remote]

--remote runs the broker on PostgreSQL + S3 from tests/services/test-services.sh (exit 77,
skipped, without them). Steps:
 1. A 2-partition topic with segment.bytes=8000, segment.ms=1, archive.compression.type=zstd;
    DescribeConfigs reports segment.bytes as a dynamic topic config, retention.bytes from the
    static broker config (log.retention.bytes in the properties) and retention.ms as a default.
 2. confluent-kafka produces 2 x 2000 records (lz4, keys, headers) with timestamps two hours
    old; kcat reads them back.
 3. 2 x 2000 more in three chunks; after each chunk, while the compactor works on it
    (compaction.interval.ms=300), the broker is SIGKILLed and restarted (compaction.lease.ms=1500
    lets the new process take the partitions over); kcat reads after every restart. Every read
    must hold exactly the records acknowledged, at their offsets.
 4. Once all is compacted: no ingest object is left (object.gc.grace.ms=1500), the partitions'
    segment objects exist; planted orphans (an ingest object and a segment nobody registered) are
    deleted by the sweep; registered segments are not.
 5. AlterConfigs retention.ms=3600000: the log start offset (ListOffsets earliest)
    moves past the old records, kcat from the beginning returns exactly the tail of step 2, and
    the removed segments' objects are deleted.
"""

import os
import random
import re
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compat"))

import harness  # noqa: E402
from harness import ScenarioError, check, check_eq, log  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import (AdminClient, ConfigResource, NewTopic)  # noqa: E402

TOPIC = "archive"
PARTITIONS = 2
PER_PARTITION = 4000
BROKER_KEYS = {
    "compaction.interval.ms": "300",
    "object.gc.grace.ms": "1500",
    "object.sweep.interval.ms": "500",
    "log.retention.bytes": "-1",
    "compaction.lease.ms": "1500",  # a killed broker's partitions are taken over quickly
}


class Bucket:
    """The broker's object store, local directory or S3, for listing and planting objects."""

    def __init__(self, ctx):
        props = dict(line.split("=", 1) for line in open(ctx.broker.config).read().splitlines()
                     if "=" in line)
        self.url = props.get("storage.url", "")
        if self.url.startswith("s3://"):
            bucket, _, prefix = self.url[5:].partition("/")
            self.bucket, self.prefix = bucket, (prefix + "/" if prefix else "")
            env = os.environ
            self.netrc = os.path.join(ctx.broker.work, "list.netrc")
            with open(self.netrc, "w") as f:
                f.write(f"machine 127.0.0.1 login {env['S3_ACCESS_KEY']} "
                        f"password {env['S3_SECRET_KEY']}\n")
        else:
            self.root = os.path.join(ctx.broker.work, "data", "objects")

    def _curl(self, *args):
        env = os.environ
        return subprocess.run(
            ["curl", "-s", "-m", "20", "--aws-sigv4", f"aws:amz:{env['S3_REGION']}:s3",
             "--netrc-file", self.netrc, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", *args],
            capture_output=True, timeout=30)

    def keys(self, family):
        if self.url.startswith("s3://"):
            prefix = urllib.parse.quote(self.prefix + family, safe="")
            r = self._curl(f"{os.environ['S3_ENDPOINT']}/{self.bucket}?prefix={prefix}")
            check(r.returncode == 0 and b"ListBucketResult" in r.stdout,
                  f"S3 list: {r.stderr} {r.stdout[:300]}")
            return sorted(k[len(self.prefix):] for k in
                          re.findall(r"<Key>([^<]+)</Key>", r.stdout.decode()))
        out = []
        base = os.path.join(self.root, family)
        for d, _, files in os.walk(base):
            for f in files:
                if not f.startswith(".shtmp-"):
                    out.append(os.path.relpath(os.path.join(d, f), self.root))
        return sorted(out)

    def plant(self, key, data):
        if self.url.startswith("s3://"):
            path = os.path.join(os.path.dirname(self.netrc), "plant.bin")
            with open(path, "wb") as f:
                f.write(data)
            r = self._curl("-X", "PUT", "--data-binary", f"@{path}", "-o", "/dev/null", "-w",
                           "%{http_code}",
                           f"{os.environ['S3_ENDPOINT']}/{self.bucket}/{self.prefix}{key}")
            check(r.stdout.decode() == "200", f"S3 PUT {key}: {r.stdout!r}")
        else:
            path = os.path.join(self.root, key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)


def kcat_read(ctx, partition, expect_from=None):
    """Every record of the partition from the beginning: [(offset, key, value, ts, headers)]."""
    r = subprocess.run(["kcat", "-C", "-b", ctx.bootstrap, "-t", TOPIC, "-p", str(partition),
                        "-o", "beginning", "-e", "-q", "-X", "check.crcs=true",
                        "-f", "%o\t%k\t%s\t%T\t%h\n"], capture_output=True, timeout=60)
    check(r.returncode == 0, f"kcat failed: {r.stderr.decode()[-500:]}")
    rows = [tuple(line.split("\t")) for line in r.stdout.decode().splitlines() if line]
    return rows


def read_all(ctx):
    return [kcat_read(ctx, p) for p in range(PARTITIONS)]


def watermarks(ctx):
    c = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": "wm", "enable.auto.commit": False})
    try:
        return [c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
                for p in range(PARTITIONS)]
    finally:
        c.close()


def wait_for(what, cond, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise ScenarioError(f"timed out waiting for {what}")


def run(ctx):
    admin = AdminClient({"bootstrap.servers": ctx.bootstrap})
    configs = {"segment.bytes": "8000", "segment.ms": "1", "archive.compression.type": "zstd"}
    for t, f in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1, config=configs)]).items():
        f.result(timeout=30)
    ctx.wait_for_topic(TOPIC, PARTITIONS)

    res = admin.describe_configs([ConfigResource("topic", TOPIC)])
    entries = list(res.values())[0].result(timeout=30)
    src = {k: (v.value, v.source) for k, v in entries.items()}
    check_eq(src["segment.bytes"], ("8000", 1), "segment.bytes (value, source DYNAMIC_TOPIC)")
    check_eq(src["retention.bytes"], ("-1", 4), "retention.bytes (value, source STATIC_BROKER)")
    check_eq(src["retention.ms"], ("-1", 5), "retention.ms (value, source DEFAULT)")
    check_eq(src["archive.compression.type"][0], "zstd", "archive.compression.type")

    old_ts = int(time.time() * 1000) - 2 * 3600 * 1000
    producer = Producer({"bootstrap.servers": ctx.bootstrap, "compression.type": "lz4",
                         "linger.ms": 20, "batch.num.messages": 200,
                         "message.timeout.ms": 60000, "reconnect.backoff.max.ms": 500})
    expected = [[] for _ in range(PARTITIONS)]  # (offset, key, value) in produce order

    def produce(first, count, old):
        for n in range(first, first + count):
            for p in range(PARTITIONS):
                key, value = f"k{p}-{n}", f"v{p}-{n}-" + "x" * (n % 200)
                kw = {"timestamp": old_ts + n} if old else {}
                producer.produce(TOPIC, partition=p, key=key.encode(), value=value.encode(),
                                 headers=[("h", f"{n}".encode())], **kw)
                expected[p].append((str(n), key, value))
            if n % 500 == 0:
                producer.poll(0)
        check_eq(producer.flush(60), 0, "records not acknowledged")

    def check_all(what):
        got = read_all(ctx)
        for p in range(PARTITIONS):
            rows = [(r[0], r[1], r[2]) for r in got[p]]
            if rows != expected[p]:
                bad = next((i for i, (a, b) in enumerate(zip(rows, expected[p])) if a != b),
                           min(len(rows), len(expected[p])))
                raise ScenarioError(f"{what}: partition {p} differs at index {bad} "
                                    f"({len(rows)} records read, {len(expected[p])} expected)")
        return got

    produce(0, PER_PARTITION // 2, True)  # two hours old
    before_old = check_all("before compaction")
    log("old half produced and read back")

    # The new half in three chunks, each followed by a SIGKILL while the compactor (interval
    # 300 ms, segment.ms 1) is working on it; reads right after every restart.
    bucket = Bucket(ctx)
    chunk = PER_PARTITION // 2 // 3 + 1
    n = PER_PARTITION // 2
    for k in range(3):
        count = min(chunk, PER_PARTITION - n)
        produce(n, count, False)
        n += count
        time.sleep(random.uniform(0.05, 0.5))
        ctx.broker.kill()
        log(f"kill #{k + 1} (SIGKILL) with {len(bucket.keys('topics/'))} segment objects")
        ctx.broker.start()
        check_all(f"after kill #{k + 1}")
    check_eq(n, PER_PARTITION, "records produced per partition")
    before = check_all("after the kills")
    check([r[:3] for r in before[0][:PER_PARTITION // 2]] ==
          [r[:3] for r in before_old[0]], "old half changed")
    old_end = PER_PARTITION // 2  # per partition: offsets below hold the old records

    def compacted():
        return not [k for k in bucket.keys("ingest/") if k.endswith(".ing")]
    wait_for("every ingest object compacted and collected", compacted, 30)
    check(check_all("after compaction") == before, "records differ after compaction")
    segments = [k for k in bucket.keys("topics/") if k.endswith(".seg")]
    for p in range(PARTITIONS):
        check(len([k for k in segments if k.startswith(f"topics/{TOPIC}/{p}/")]) >= 3,
              f"partition {p}: expected several segments, have {segments}")
    log(f"all compacted: {len(segments)} segments, no ingest objects")

    orphan_ingest = "ingest/dead-broker-1/00000000000000000007.ing"
    orphan_segment = f"topics/{TOPIC}/0/00000000000099999999.seg"
    bucket.plant(orphan_ingest, b"junk" * 100)
    bucket.plant(orphan_segment, b"junk" * 100)
    wait_for("the orphan sweep",
             lambda: not ({orphan_ingest, orphan_segment} &
                          set(bucket.keys("ingest/") + bucket.keys("topics/"))), 20)
    check(set(segments) <= set(bucket.keys("topics/")), "a registered segment was deleted")
    check(check_all("after the sweep") == before, "records differ after the sweep")
    log("orphans swept, registered segments kept")

    # confluent-kafka 1.7 (Debian 12) has no IncrementalAlterConfigs; AlterConfigs sets the whole
    # set (the handler tests cover IncrementalAlterConfigs).
    res = admin.alter_configs([ConfigResource("topic", TOPIC, set_config={
        **configs, "retention.ms": "3600000"})])
    for f in res.values():
        f.result(timeout=30)
    low = wait_for("the log start offset to move",
                   lambda: all(lo > 0 for lo, _ in watermarks(ctx)) and watermarks(ctx), 20)
    for p in range(PARTITIONS):
        lo, hi = low[p]
        check(0 < lo <= old_end, f"partition {p}: log start {lo} not in (0, {old_end}]")
        check_eq(hi, PER_PARTITION, f"partition {p} high watermark")
    after = read_all(ctx)
    for p in range(PARTITIONS):
        lo = low[p][0]
        check_eq(after[p][0][0], str(lo), f"partition {p}: first offset read")
        check(after[p] == before[p][lo:], f"partition {p}: records after retention differ")
    wait_for("the removed segments' objects to be deleted",
             lambda: len([k for k in bucket.keys("topics/") if k.endswith(".seg")]) <
             len(segments), 20)
    log(f"retention: log start offsets {[lo for lo, _ in low]}")


if __name__ == "__main__":
    harness.main(run, {}, time_limit=110, extra_config=BROKER_KEYS)
