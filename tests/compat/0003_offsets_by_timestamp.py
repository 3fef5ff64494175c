#!/usr/bin/python3
"""ListOffsets by timestamp, as Kafka defines it: the first offset whose timestamp is >= the
target; none (kafka-python) / -1 (librdkafka) past the last record. Asked through kafka-python
(offsets_for_times, ListOffsets v1) and confluent-kafka (offsets_for_times, ListOffsets v2).

Timestamps are explicit CreateTimes, deliberately not monotonic inside a partition: Kafka answers
with the first offset whose timestamp reaches the target, scanning in offset order.
librdkafka's mock cluster does not answer by timestamp; on it only the produce side runs.
"""

import time

import harness
from harness import check_eq, log

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

TOPIC = "by-time"
TOPICS = {TOPIC: 2}


def run(ctx):
    t0 = (int(time.time()) - 3600) * 1000
    # Partition 0: offsets 0..19 at t0 + 1000 * offset, except offset 10, which goes back in time
    # (t0 + 2500). Partition 1: nothing.
    stamps = [t0 + 1000 * i for i in range(20)]
    stamps[10] = t0 + 2500
    p = Producer({"bootstrap.servers": ctx.bootstrap, "linger.ms": 50, "acks": "all"})
    for i, ts in enumerate(stamps):
        p.produce(TOPIC, value=f"m{i}".encode(), partition=0, timestamp=ts)
    check_eq(p.flush(30), 0, "messages left after flush")
    if ctx.mock:
        log("mock: no offsets by timestamp; produce only")
        return

    # target -> (offset, timestamp of that record) for partition 0
    cases = {
        t0 - 1: (0, t0),
        t0: (0, t0),
        t0 + 1: (1, t0 + 1000),
        # Offset 10 (t0 + 2500) also reaches this target, but offset 3 comes first.
        t0 + 2400: (3, t0 + 3000),
        # Offset 10 is below this target: the answer is 11, not 10 and not 9.
        t0 + 9500: (11, t0 + 11000),
        t0 + 19000: (19, t0 + 19000),
    }

    kc = KafkaConsumer(bootstrap_servers=ctx.bootstrap, group_id=None, request_timeout_ms=30000)
    tp = KpTopicPartition(TOPIC, 0)
    for target, (offset, ts) in cases.items():
        got = kc.offsets_for_times({tp: target})[tp]
        check_eq((got.offset, got.timestamp) if got else None, (offset, ts),
                 f"kafka-python offsets_for_times(t0{target - t0:+d})")
    check_eq(kc.offsets_for_times({tp: t0 + 20000})[tp], None,
             "kafka-python offsets_for_times past the last record")
    empty = KpTopicPartition(TOPIC, 1)
    check_eq(kc.offsets_for_times({empty: t0})[empty], None,
             "kafka-python offsets_for_times on an empty partition")
    kc.close()

    c = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": "compat-0003-unused",
                  "enable.auto.commit": False})
    for target, (offset, _) in cases.items():
        got = c.offsets_for_times([TopicPartition(TOPIC, 0, target)], timeout=10)[0]
        check_eq((got.error, got.offset), (None, offset),
                 f"confluent offsets_for_times(t0{target - t0:+d})")
    got = c.offsets_for_times([TopicPartition(TOPIC, 0, t0 + 20000)], timeout=10)[0]
    check_eq(got.offset, -1, "confluent offsets_for_times past the last record (OFFSET_END)")
    c.close()
    log(f"{len(cases)} timestamp lookups answered as Kafka does, by both clients")


if __name__ == "__main__":
    harness.main(run, TOPICS, time_limit=120)
