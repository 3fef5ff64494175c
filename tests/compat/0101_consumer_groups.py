#!/usr/bin/python3
"""Consumer groups (classic protocol) with committed offsets, through both clients.

1. kafka-python (FindCoordinator v0, JoinGroup v2, OffsetCommit v2, OffsetFetch v1): one member
   reads half the records, commits, leaves; a new member of the same group continues exactly
   where the commit left off: every record exactly once.
2. confluent-kafka (JoinGroup v5, SyncGroup v3, OffsetCommit/Fetch v7): two members split the
   partitions between them without overlap, read everything and commit; a third member of the
   group then sees only records produced after those commits.
3. Committed offsets survive a broker restart (not on the mock).
"""

import time

import harness
from harness import ScenarioError, check, check_eq, log

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

TOPIC = "groups"
PARTITIONS = 4
TOPICS = {TOPIC: PARTITIONS}
SESSION = 6000  # ms; a rejoining member waits out at most this


def produce(bootstrap, start, count):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "acks": "all"})
    for i in range(start, start + count):
        p.produce(TOPIC, value=f"m{i}".encode(), partition=i % PARTITIONS)
    check_eq(p.flush(30), 0, "messages left after flush")


def kafka_python_member(bootstrap, group):
    return KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=group,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         session_timeout_ms=SESSION, heartbeat_interval_ms=1000,
                         request_timeout_ms=30000, max_poll_records=50)


def kafka_python_part(ctx):
    group = "kp-group"
    first = kafka_python_member(ctx.bootstrap, group)
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < 200 and time.monotonic() < deadline:
        for batch in first.poll(timeout_ms=500, max_records=50).values():
            seen.extend(batch)
    check(len(seen) >= 200, f"kafka-python member read {len(seen)} records in 60 s")
    first.commit()
    committed = {p: first.committed(KpTopicPartition(TOPIC, p)) for p in range(PARTITIONS)}
    first.close()
    check_eq(sum(v or 0 for v in committed.values()), len(seen),
             "records covered by the committed offsets")
    second = kafka_python_member(ctx.bootstrap, group)
    rest = []
    deadline = time.monotonic() + 60
    while len(seen) + len(rest) < 400 and time.monotonic() < deadline:
        for batch in second.poll(timeout_ms=500).values():
            rest.extend(batch)
    second.commit()
    second.close()
    values = sorted(r.value for r in seen + rest)
    check_eq(values, sorted(f"m{i}".encode() for i in range(400)),
             "kafka-python group: every record exactly once across the two members")
    log("kafka-python: second member continued from the first one's commit")
    return committed


def confluent_member(bootstrap, group, name):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": SESSION, "heartbeat.interval.ms": 1000})


def commit_on_revoke(consumer, _partitions):
    # What a member read from partitions moving to the other one is committed first, so the
    # other one continues after it (without this, a member that joins second re-reads from
    # `earliest` what the first one read before the rebalance).
    try:
        consumer.commit(asynchronous=False)
    except KafkaException:
        pass  # nothing read yet


def confluent_part(ctx):
    group = "ck-group"
    a, b = confluent_member(ctx.bootstrap, group, "a"), confluent_member(ctx.bootstrap, group, "b")
    a.subscribe([TOPIC], on_revoke=commit_on_revoke)
    b.subscribe([TOPIC], on_revoke=commit_on_revoke)
    got = {"a": [], "b": []}
    deadline = time.monotonic() + 90
    while sum(map(len, got.values())) < 400 and time.monotonic() < deadline:
        for name, c in (("a", a), ("b", b)):
            m = c.poll(0.2)
            if m is not None and m.error():
                raise ScenarioError(f"member {name}: {m.error()}")
            if m is not None:
                got[name].append(m)
    parts = {name: {m.partition() for m in ms} for name, ms in got.items()}
    check(not (parts["a"] & parts["b"]), f"partitions read by both members: {parts}")
    values = sorted(m.value() for ms in got.values() for m in ms)
    check_eq(values, sorted(f"m{i}".encode() for i in range(400)),
             "confluent group: every record exactly once across both members")
    # Both commit before either leaves: a leave starts a rebalance that fails the other's commit.
    for c in (a, b):
        c.commit(asynchronous=False)
    for c in (a, b):
        c.close()
    log(f"confluent: two members split the partitions {parts}")

    produce(ctx.bootstrap, 400, 8)
    c = confluent_member(ctx.bootstrap, group, "c")
    c.subscribe([TOPIC])
    new = []
    deadline = time.monotonic() + 60
    while len(new) < 8 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            new.append(m.value())
    extra = c.poll(2.0)
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset
                 for tp in c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)],
                                       timeout=10)}
    c.close()
    check_eq(sorted(new), sorted(f"m{i}".encode() for i in range(400, 408)),
             "records seen by a member joining after the commits")
    check(extra is None or extra.error(), f"unexpected extra record {extra and extra.value()}")
    log("confluent: a later member resumed at the committed offsets")
    return committed


def run(ctx):
    produce(ctx.bootstrap, 0, 400)
    kafka_python_part(ctx)
    committed = confluent_part(ctx)
    if not ctx.mock:
        ctx.restart()
        c = confluent_member(ctx.bootstrap, "ck-group", "after-restart")
        after = {tp.partition: tp.offset
                 for tp in c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)],
                                       timeout=10)}
        c.close()
        check_eq(after, committed, "committed offsets after a broker restart")
        log("committed offsets survived the restart")


if __name__ == "__main__":
    harness.main(run, TOPICS, time_limit=300)
