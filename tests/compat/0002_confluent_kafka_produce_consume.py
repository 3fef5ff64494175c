#!/usr/bin/python3
"""confluent-kafka 1.7.0 (librdkafka 2.0.2): produce with every codec, keys, headers, NULL values
and explicit timestamps; read back with assign() from OFFSET_BEGINNING; watermarks
(ListOffsets earliest/latest); a consumer assigned at OFFSET_END sees only newer records; a
consumer started at an absolute offset; everything survives a broker restart (not on the mock).

librdkafka sends Produce v7, Fetch v11, ListOffsets v2, Metadata v4.
"""

import collections
import time

import harness
from harness import ScenarioError, check, check_eq, log

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Producer, TopicPartition

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 4
PER_CODEC = 200
TOPICS = {f"ck-{c}": PARTITIONS for c in CODECS}


def produce(bootstrap, topic, codec, count, start=0):
    """Returns {(partition, offset): (key, value, headers, timestamp)} from delivery reports."""
    producer = Producer({"bootstrap.servers": bootstrap, "compression.codec": codec,
                         "acks": "all", "linger.ms": 10, "message.timeout.ms": 60000})
    delivered, errors = {}, []
    base_ts = int(time.time() * 1000) - 60000

    def delivery_handler(sent):
        # The delivery report carries partition and offset; headers are not kept on it.
        def on_delivery(err, msg):
            if err is not None:
                errors.append(f"{msg.partition()}: {err}")
            else:
                delivered[(msg.partition(), msg.offset())] = sent
        return on_delivery

    for i in range(start, start + count):
        key = None if i % 19 == 3 else f"k{i % 23}".encode()
        value = None if i % 31 == 7 else f"v{i}:".encode() + b"\x00\xff" * (i % 40)
        headers = [("i", str(i).encode()), ("dup", b"a"), ("dup", b"b"), ("null", None)]
        producer.produce(topic, key=key, value=value, headers=headers,
                         partition=i % PARTITIONS, timestamp=base_ts + i,
                         on_delivery=delivery_handler((key, value, headers, base_ts + i)))
        producer.poll(0)
    left = producer.flush(60)
    check_eq(left, 0, f"{topic}: messages still queued after flush(60)")
    check(not errors, f"{topic}: delivery failed: {errors[:5]}")
    check_eq(len(delivered), count, f"{topic}: distinct (partition, offset) delivered")
    return delivered


def consumer(bootstrap):
    # group.id is required by the client; no subscribe/commit happens, so no group is used.
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-0002-unused",
                     "enable.auto.commit": False, "enable.partition.eof": True,
                     "check.crcs": True, "fetch.wait.max.ms": 200})


def read(bootstrap, assignment, timeout=60):
    """Reads every assigned partition to its end; returns the messages in arrival order."""
    c = consumer(bootstrap)
    c.assign(assignment)
    got, eof = [], set()
    deadline = time.monotonic() + timeout
    while len(eof) < len(assignment):
        if time.monotonic() > deadline:
            raise ScenarioError(f"reading did not reach the end of {assignment} within {timeout} s"
                                f" ({len(got)} messages)")
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == msg.error()._PARTITION_EOF:
                eof.add(msg.partition())
                continue
            raise ScenarioError(f"consumer error: {msg.error()}")
        got.append(msg)
    c.close()
    return got


def verify(topic, expected, msgs, first_offset=None):
    by_partition = collections.defaultdict(list)
    for m in msgs:
        by_partition[m.partition()].append(m.offset())
    for p, offs in by_partition.items():
        start = 0 if first_offset is None else first_offset[p]
        check_eq(offs, list(range(start, start + len(offs))), f"{topic}[{p}] offsets read")
    for m in msgs:
        want = expected.get((m.partition(), m.offset()))
        check(want is not None, f"{topic}[{m.partition()}]@{m.offset()}: not produced")
        got = (m.key(), m.value(), m.headers(), m.timestamp()[1])
        check_eq(got, want, f"{topic}[{m.partition()}]@{m.offset()} (key, value, headers, ts)")
        check_eq(m.timestamp()[0], 1, f"{topic}[{m.partition()}]@{m.offset()} timestamp type "
                 "(1 = CreateTime)")


def watermarks(bootstrap, topic):
    c = consumer(bootstrap)
    marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
             for p in range(PARTITIONS)}
    c.close()
    return marks


def run(ctx):
    expected = {}
    for codec in CODECS:
        topic = f"ck-{codec}"
        expected[topic] = produce(ctx.bootstrap, topic, codec, PER_CODEC)
        counts = collections.Counter(p for p, _ in expected[topic])
        msgs = read(ctx.bootstrap,
                    [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        check_eq(len(msgs), PER_CODEC, f"{topic}: messages read")
        verify(topic, expected[topic], msgs)
        check_eq(watermarks(ctx.bootstrap, topic), {p: (0, counts[p]) for p in range(PARTITIONS)},
                 f"{topic} watermarks (low, high)")
        log(f"{topic}: {PER_CODEC} messages round-tripped, watermarks ok")

    topic = "ck-none"
    # An absolute start offset: partition 1 from offset 10.
    msgs = read(ctx.bootstrap, [TopicPartition(topic, 1, 10)])
    verify(topic, expected[topic], msgs, first_offset={1: 10})
    check_eq(len(msgs), PER_CODEC // PARTITIONS - 10, "messages read from offset 10")

    # OFFSET_END: only what is produced after the consumer positioned.
    c = consumer(ctx.bootstrap)
    c.assign([TopicPartition(topic, p, OFFSET_END) for p in range(PARTITIONS)])
    eof = set()
    deadline = time.monotonic() + 30
    while len(eof) < PARTITIONS and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() and m.error().code() == m.error()._PARTITION_EOF:
            eof.add(m.partition())
        elif m is not None:
            raise ScenarioError(f"consumer at OFFSET_END got {m.error() or 'an old message'}")
    check_eq(len(eof), PARTITIONS, "partitions positioned at the end")
    more = produce(ctx.bootstrap, topic, "none", 12, start=PER_CODEC)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 12 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    c.close()
    check_eq(sorted((m.partition(), m.offset()) for m in got), sorted(more),
             "messages seen by the OFFSET_END consumer")
    expected[topic].update(more)
    log("OFFSET_END: only the 12 new messages seen")

    if not ctx.mock:
        ctx.restart()
        for topic, exp in expected.items():
            msgs = read(ctx.bootstrap,
                        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
            check_eq(len(msgs), len(exp), f"{topic}: messages read after restart")
            verify(topic, exp, msgs)
        log("after restart: every topic identical")


if __name__ == "__main__":
    harness.main(run, TOPICS, time_limit=240)
