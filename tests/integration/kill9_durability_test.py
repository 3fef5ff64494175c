#!/usr/bin/python3
"""A broker killed with SIGKILL mid-produce loses no acknowledged record.

confluent-kafka produces continuously (acks=all, 4 partitions) while the broker is SIGKILLed
three times and restarted on the same data.dir; the producer keeps retrying across the restarts.
Afterwards every record the broker acknowledged must be readable at exactly the offset its
acknowledgement named, with the same value; offsets must run 0..n-1 with no gap; records that
were never acknowledged may be there or not (and, being retried without idempotence, may be
there twice), but nothing else may be.

With --idempotent the producer has enable.idempotence=true, and the broker must keep producer
sequence state across the kills: then every record sent is there exactly once, in send order per
partition.

  kill9_durability_test.py --broker STREAMHOUSE_BINARY [--idempotent]
  kill9_durability_test.py --mock SH_MOCK_KAFKA_BINARY   # harness check: no kill (in-memory)
"""

import collections
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compat"))

import harness  # noqa: E402
from harness import ScenarioError, check, check_eq, log  # noqa: E402

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: E402

TOPIC = "durable"
PARTITIONS = 4
KILLS = 3


def run(ctx):
    acked = {}  # (partition, offset) -> value
    failed = []
    sent = 0

    def on_delivery(err, msg):
        if err is None:
            key = (msg.partition(), msg.offset())
            if key in acked:
                failed.append(f"offset {key} acknowledged twice")
            acked[key] = msg.value()
        else:
            failed.append(str(err))

    idempotent = "--idempotent" in ctx.flags
    producer = Producer({"bootstrap.servers": ctx.bootstrap, "acks": "all", "linger.ms": 5,
                         "message.timeout.ms": 60000, "retry.backoff.ms": 100,
                         "reconnect.backoff.max.ms": 500, "enable.idempotence": idempotent})

    def produce_for(seconds):
        nonlocal sent
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(20):  # about 2,000 records a second
                producer.produce(TOPIC, value=f"m{sent}".encode(), partition=sent % PARTITIONS,
                                 on_delivery=on_delivery)
                sent += 1
            producer.poll(0.01)

    for k in range(KILLS):
        produce_for(1.5)
        if ctx.mock:
            continue
        before = len(acked)
        ctx.broker.kill()  # SIGKILL: no shutdown, no flush
        log(f"kill #{k + 1}: SIGKILL with {before} acknowledged of {sent} sent")
        produce_for(0.5)  # the client queues and retries while the broker is down
        ctx.broker.start()
    produce_for(1.0)
    check_eq(producer.flush(90), 0, "messages still unacknowledged 90 s after the last restart")
    log(f"{sent} sent, {len(acked)} acknowledged, {len(failed)} delivery errors")
    producer = None  # disconnect before reading back
    check(acked, "nothing was acknowledged")

    # No commits: with them close() would wait for a group coordinator.
    c = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": "kill9-unused",
                  "enable.auto.commit": False, "enable.partition.eof": True, "check.crcs": True})
    c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    stored = collections.defaultdict(list)
    eof = set()
    deadline = time.monotonic() + 120
    quiet_since = time.monotonic()
    while len(eof) < PARTITIONS:
        check(time.monotonic() < deadline, "reading back did not finish in 120 s")
        m = c.poll(0.5)
        if m is None:
            if time.monotonic() - quiet_since > 5:
                log(f"reading back: nothing for 5 s; {sum(map(len, stored.values()))} read, "
                    f"at end of partitions {sorted(eof)}")
                quiet_since = time.monotonic()
            continue
        quiet_since = time.monotonic()
        if m.error():
            if m.error().code() == m.error()._PARTITION_EOF:
                eof.add(m.partition())
                continue
            raise ScenarioError(f"consumer error {m.error()}")
        eof.discard(m.partition())
        stored[m.partition()].append((m.offset(), m.value()))
    c.close()

    problems = []
    for p, recs in stored.items():
        offsets = [o for o, _ in recs]
        if offsets != list(range(len(offsets))):
            problems.append(f"partition {p}: offsets are not 0..{len(offsets) - 1}")
    at = {(p, o): v for p, recs in stored.items() for o, v in recs}
    lost = [(k, v) for k, v in sorted(acked.items()) if k not in at]
    changed = [(k, v, at[k]) for k, v in sorted(acked.items()) if k in at and at[k] != v]
    sent_values = {f"m{i}".encode() for i in range(sent)}
    foreign = [(k, v) for k, v in sorted(at.items()) if v not in sent_values]
    if lost:
        problems.append(f"{len(lost)} acknowledged records LOST, e.g. {lost[:5]}")
    if changed:
        problems.append(f"{len(changed)} acknowledged offsets hold other records, e.g. "
                        f"{changed[:5]}")
    if foreign:
        problems.append(f"{len(foreign)} records nobody sent, e.g. {foreign[:5]}")
    stored_n = sum(map(len, stored.values()))
    log(f"read back {stored_n} records; {stored_n - len(acked)} beyond the acknowledged ones "
        "(unacknowledged retries)")
    if idempotent:
        for p, recs in stored.items():
            want = [f"m{i}".encode() for i in range(p, sent, PARTITIONS)]
            got = [v for _, v in recs]
            if got != want:
                extra = len(got) - len(set(got))
                problems.append(f"idempotent: partition {p} holds {len(got)} records "
                                f"({extra} duplicates), want the {len(want)} sent, in order")
    if problems:
        raise ScenarioError("; ".join(problems))
    log(f"all {len(acked)} acknowledged records intact after {KILLS} SIGKILLs")


if __name__ == "__main__":
    harness.main(run, {TOPIC: PARTITIONS}, time_limit=280)
