#!/usr/bin/python3
"""kafka-python 2.0.2: produce with every codec, keys, headers and tombstones; consume from
earliest with assign(); ListOffsets earliest/latest; a consumer at 'latest' sees only what is
produced after it positioned; everything survives a broker restart (not on the mock).

kafka-python sends Produce v7 (magic 2 batches), Fetch v4, ListOffsets v1, Metadata v1.
"""

import collections
import time

import harness
from harness import check, check_eq, log

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
PER_CODEC = 150
TOPICS = {f"kp-{c or 'none'}": PARTITIONS for c in CODECS}


def produce(bootstrap, topic, codec, count, start=0):
    """Sends `count` records round-robin over the partitions; returns what each should read back,
    keyed by (partition, offset) from the produce responses."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all",
                             linger_ms=20, batch_size=16384, retries=0,
                             request_timeout_ms=30000, max_block_ms=30000)
    sent = []
    base_ts = int(time.time() * 1000) - 60000
    for i in range(start, start + count):
        key = f"key-{i % 17}".encode() if i % 11 or i % 13 == 5 else None
        value = None if i % 13 == 5 else (f"value {i} ".encode() + bytes(range(256)) * (i % 5))
        headers = [("i", str(i).encode()), ("dup", b"1"), ("dup", b"2"), ("empty", b"")]
        ts = base_ts + i  # explicit CreateTime: must come back as sent
        fut = producer.send(topic, key=key, value=value, headers=headers,
                            partition=i % PARTITIONS, timestamp_ms=ts)
        sent.append((fut, key, value, headers, ts))
    producer.flush(timeout=60)
    producer.close(timeout=30)
    out = {}
    for fut, key, value, headers, ts in sent:
        md = fut.get(timeout=1)
        out[(md.partition, md.offset)] = (key, value, headers, ts)
    return out


def consume_all(bootstrap, topic, want_count, timeout=60):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=1000, request_timeout_ms=30000,
                             fetch_max_wait_ms=200)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want_count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend(batch)
    # Nothing more may arrive after everything expected.
    for batch in consumer.poll(timeout_ms=500).values():
        got.extend(batch)
    consumer.close()
    return got


def verify(topic, expected, records):
    by_partition = collections.defaultdict(list)
    for r in records:
        by_partition[r.partition].append(r.offset)
    for p, offsets in by_partition.items():
        check_eq(offsets, list(range(len(offsets))), f"{topic}[{p}] offsets in consumed order")
    check_eq(len(records), len(expected), f"{topic}: records consumed")
    for r in records:
        want = expected.get((r.partition, r.offset))
        check(want is not None, f"{topic}[{r.partition}]@{r.offset}: not produced")
        key, value, headers, ts = want
        check_eq(r.key, key, f"{topic}[{r.partition}]@{r.offset} key")
        check_eq(r.value, value, f"{topic}[{r.partition}]@{r.offset} value")
        check_eq(list(r.headers), headers, f"{topic}[{r.partition}]@{r.offset} headers")
        check_eq((r.timestamp, r.timestamp_type), (ts, 0),
                 f"{topic}[{r.partition}]@{r.offset} (timestamp, type CreateTime)")


def offsets(bootstrap, topic):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             request_timeout_ms=30000)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
    consumer.close()
    return ({tp.partition: o for tp, o in begin.items()},
            {tp.partition: o for tp, o in end.items()})


def run(ctx):
    expected = {}
    for codec in CODECS:
        topic = f"kp-{codec or 'none'}"
        expected[topic] = produce(ctx.bootstrap, topic, codec, PER_CODEC)
        per_partition = collections.Counter(p for p, _ in expected[topic])
        for (p, o) in expected[topic]:
            check(0 <= o < per_partition[p], f"{topic}[{p}]: produce answered offset {o}")
        verify(topic, expected[topic], consume_all(ctx.bootstrap, topic, PER_CODEC))
        begin, end = offsets(ctx.bootstrap, topic)
        check_eq(begin, {p: 0 for p in range(PARTITIONS)}, f"{topic} earliest offsets")
        check_eq(end, dict(per_partition), f"{topic} latest offsets")
        log(f"{topic}: {PER_CODEC} records round-tripped, offsets ok")

    # 'latest': position first, then produce; only the new records are seen.
    topic = "kp-none"
    consumer = KafkaConsumer(bootstrap_servers=ctx.bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="latest",
                             request_timeout_ms=30000, fetch_max_wait_ms=200)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    positions = {tp.partition: consumer.position(tp) for tp in tps}
    _, end = offsets(ctx.bootstrap, topic)
    check_eq(positions, end, "positions of a consumer at 'latest'")
    more = produce(ctx.bootstrap, topic, None, 9, start=PER_CODEC)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 9 and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend(batch)
    consumer.close()
    check_eq(sorted((r.partition, r.offset) for r in got), sorted(more),
             "records seen by the 'latest' consumer")
    expected[topic].update(more)
    log("latest: only the 9 new records seen")

    if not ctx.mock:
        ctx.restart()
        for topic, exp in expected.items():
            verify(topic, exp, consume_all(ctx.bootstrap, topic, len(exp)))
        log("after restart: every topic identical")


if __name__ == "__main__":
    harness.main(run, TOPICS, time_limit=240)
