#!/usr/bin/python3
"""Idempotent producer (InitProducerId, producer id/epoch/sequence checks at commit):
confluent-kafka with enable.idempotence=true sends 2,000 messages over 4 partitions with many
in flight; every message is delivered once, in order, at offsets 0..n-1; a second producer (new
producer id) continues after them; and the sequence state survives a broker restart: a
producer started after it still appends without error (not on the mock).

NOT REGISTERED yet (see tests/CMakeLists.txt): needs InitProducerId and sequence checks.
"""

import collections
import time

import harness
from harness import ScenarioError, check, check_eq, log

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

TOPIC = "idem"
PARTITIONS = 4
TOPICS = {TOPIC: PARTITIONS}


def produce(bootstrap, start, count):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "max.in.flight.requests.per.connection": 5, "batch.num.messages": 50})
    delivered, errors = [], []

    def on_delivery(err, msg):
        (errors if err else delivered).append(err or (msg.partition(), msg.offset(),
                                                       msg.value()))

    for i in range(start, start + count):
        p.produce(TOPIC, value=f"m{i}".encode(), partition=i % PARTITIONS,
                  on_delivery=on_delivery)
        p.poll(0)
    check_eq(p.flush(60), 0, "messages left after flush")
    check(not errors, f"delivery errors: {errors[:5]}")
    return delivered


def read_all(bootstrap):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-0103-unused",
                  "enable.auto.commit": False,
                  "enable.partition.eof": True, "check.crcs": True})
    c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out, eof = collections.defaultdict(list), set()
    deadline = time.monotonic() + 60
    while len(eof) < PARTITIONS:
        check(time.monotonic() < deadline, "reading did not finish in 60 s")
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == m.error()._PARTITION_EOF:
                eof.add(m.partition())
                continue
            raise ScenarioError(f"consumer error {m.error()}")
        out[m.partition()].append((m.offset(), m.value()))
    c.close()
    return out


def expect(total):
    want = collections.defaultdict(list)
    for i in range(total):
        p = i % PARTITIONS
        want[p].append((len(want[p]), f"m{i}".encode()))
    return dict(want)


def run(ctx):
    d = produce(ctx.bootstrap, 0, 2000)
    check_eq(len(d), 2000, "delivery reports")
    produce(ctx.bootstrap, 2000, 200)
    check_eq(dict(read_all(ctx.bootstrap)), expect(2200), "records per partition")
    log("2,200 idempotent records exactly once, in order")
    if not ctx.mock:
        ctx.restart()
        produce(ctx.bootstrap, 2200, 100)
        check_eq(dict(read_all(ctx.bootstrap)), expect(2300), "records after restart")
        log("after restart: a new idempotent producer appended cleanly")


if __name__ == "__main__":
    harness.main(run, TOPICS, time_limit=180)
