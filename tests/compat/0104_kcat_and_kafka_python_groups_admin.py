#!/usr/bin/python3
"""The parts of the compat list the other scenarios leave out:

1. kcat: metadata (-L -J), produce with keys and headers in every codec (-z), consume with
   -J and check partition, offset, key, value and headers; start at a timestamp (-o s@ts) and
   see exactly the records produced after it; a balanced consumer (-G) that exits at the end,
   commits, and a second run of the same group that sees only what was produced in between.
2. kafka-python's admin client: create a topic with configs, describe its configs, delete it.
3. kafka-python consumer group of two members that split the partitions with no overlap.
4. Static membership through confluent-kafka (group.instance.id): a member that closes and
   comes back with the same instance id gets the same partitions back.
5. kafka-python's group admin: list, describe and delete consumer groups.

librdkafka's mock cluster lacks CreateTopics/DescribeConfigs/DeleteGroups and timestamp lookups,
refuses kafka-python's JoinGroup versions and rebalances static members; on it only the kcat
part runs.
"""

import json
import subprocess
import threading
import time

import harness
from harness import ScenarioError, check, check_eq, log

from confluent_kafka import Consumer
from kafka import KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

TOPIC = "kc-tools"
GROUP_TOPIC = "kp-split"
PARTITIONS = 3
TOPICS = {TOPIC: PARTITIONS, GROUP_TOPIC: 4}
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def kcat(ctx, args, stdin=None, timeout=60):
    r = subprocess.run(["kcat", "-b", ctx.bootstrap, "-m", "15"] + args, input=stdin,
                       capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise ScenarioError(f"kcat {' '.join(args)} exited {r.returncode}: "
                            f"{r.stderr.decode(errors='replace')[-800:]}")
    return r.stdout.decode()


def kcat_produce(ctx, codec, lines, partition):
    # -K '|' splits key and value; -H adds the same two headers (one key twice) to each record.
    kcat(ctx, ["-P", "-t", TOPIC, "-p", str(partition), "-K", "|", "-z", codec,
               "-H", "h1=one", "-H", "dup=a", "-H", "dup=b", "-X", "acks=all"],
         stdin=("\n".join(lines) + "\n").encode())


def kcat_consume(ctx, args):
    out = kcat(ctx, ["-C", "-t", TOPIC, "-e", "-J", "-q"] + args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def records_of(msgs):
    return sorted((m["partition"], m["offset"], m.get("key"), m.get("payload"),
                   tuple(m.get("headers") or ())) for m in msgs)


def kcat_part(ctx):
    md = json.loads(kcat(ctx, ["-L", "-J", "-t", TOPIC]))
    topic = [t for t in md["topics"] if t["topic"] == TOPIC]
    check(topic and len(topic[0]["partitions"]) == PARTITIONS, f"kcat -L for {TOPIC}: {md}")
    check(md["brokers"], f"kcat -L lists no broker: {md}")

    expected = []
    next_offset = [0] * PARTITIONS
    for i, codec in enumerate(CODECS):
        p = i % PARTITIONS
        lines = [f"k{codec}{j}|v{codec}{j}" for j in range(40)]
        kcat_produce(ctx, codec, lines, p)
        for j, line in enumerate(lines):
            k, v = line.split("|")
            expected.append((p, next_offset[p] + j, k, v, ("h1", "one", "dup", "a", "dup", "b")))
        next_offset[p] += len(lines)
    got = records_of(kcat_consume(ctx, ["-o", "beginning"]))
    check_eq(got, sorted(expected), "kcat -C of what kcat -P produced (every codec)")
    log(f"kcat: {len(got)} records with keys and headers in {len(CODECS)} codecs read back")

    # -o s@ts: the broker's ListOffsets by timestamp. CreateTime is the producer's clock, so a
    # pause on both sides of the cut keeps it unambiguous.
    if not ctx.mock:
        time.sleep(1.1)
        cut = int(time.time() * 1000)
        time.sleep(1.1)
        later = [f"late{j}|after{j}" for j in range(10)]
        kcat_produce(ctx, "lz4", later, 1)
        got = kcat_consume(ctx, ["-o", f"s@{cut}"])
        check_eq(sorted(m["payload"] for m in got), sorted(f"after{j}" for j in range(10)),
                 f"kcat -o s@{cut}: records from the timestamp on")
        check(all(m["partition"] == 1 for m in got), "records of -o s@ts on partition 1 only")
        log("kcat: -o s@ts starts exactly at the first record at or after the timestamp")

    # -G: a balanced consumer commits on exit; the group's second run sees only newer records.
    group = "kcat-group"
    first = kcat(ctx, ["-G", group, "-X", "auto.offset.reset=earliest", "-e", "-J", "-q", TOPIC],
                 timeout=90)
    n_first = len([line for line in first.splitlines() if line.strip()])
    check_eq(n_first, len(expected) + (0 if ctx.mock else 10), "records read by kcat -G")
    kcat_produce(ctx, "zstd", [f"g{j}|new{j}" for j in range(12)], 2)
    second = kcat(ctx, ["-G", group, "-X", "auto.offset.reset=earliest", "-e", "-J", "-q", TOPIC],
                  timeout=90)
    values = sorted(json.loads(line)["payload"] for line in second.splitlines() if line.strip())
    check_eq(values, sorted(f"new{j}" for j in range(12)), "kcat -G resumed from its commits")
    log("kcat: -G group resumed exactly after its committed offsets")


def kafka_python_admin_part(ctx):
    admin = KafkaAdminClient(bootstrap_servers=ctx.bootstrap, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic("kp-admin", 2, 1, topic_configs={
            "retention.ms": "3600000", "cleanup.policy": "delete"})])
        ctx.wait_for_topic("kp-admin", 2)
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-admin")])
        entries = {}
        for r in res:
            for resource in r.resources:
                for entry in resource[4]:
                    entries[entry[0]] = entry[1]
        check_eq(entries.get("retention.ms"), "3600000", "kafka-python describe_configs retention.ms")
        check("max.message.bytes" in entries, f"defaults listed too: {sorted(entries)}")
        admin.delete_topics(["kp-admin"], timeout_ms=30000)
        deadline = time.monotonic() + 30
        while "kp-admin" in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.2)
        check("kp-admin" not in admin.list_topics(), "kp-admin still listed after delete_topics")
    finally:
        admin.close()
    log("kafka-python admin: create with configs, describe_configs, delete_topics")


def kafka_python_split_part(ctx):
    from confluent_kafka import Producer

    def member(name):
        return KafkaConsumer(GROUP_TOPIC, bootstrap_servers=ctx.bootstrap, group_id="kp-split",
                             client_id=name, enable_auto_commit=False,
                             auto_offset_reset="earliest", session_timeout_ms=6000,
                             heartbeat_interval_ms=1000, request_timeout_ms=30000)

    # kafka-python blocks in poll() while a rebalance waits for the other member, so each member
    # polls on its own thread, as separate processes would. Records are produced only once both
    # hold partitions, so neither can read everything before the other has joined.
    got = {"a": [], "b": []}
    assigned = {"a": set(), "b": set()}
    lock = threading.Lock()
    done = threading.Event()

    def consume(name):
        c = member(name)
        try:
            deadline = time.monotonic() + 90
            while not done.is_set() and time.monotonic() < deadline:
                records = c.poll(timeout_ms=200)
                with lock:
                    assigned[name] = {tp.partition for tp in c.assignment()}
                    for batch in records.values():
                        got[name].extend(batch)
                    if sum(map(len, got.values())) >= 200:
                        done.set()
            c.commit()
            time.sleep(1.0)  # both commit before either leaves (a leave rebalances the other)
        finally:
            c.close()

    threads = [threading.Thread(target=consume, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            if (assigned["a"] and assigned["b"] and not assigned["a"] & assigned["b"]
                    and len(assigned["a"] | assigned["b"]) == 4):
                break
        time.sleep(0.1)
    log(f"kafka-python: members assigned {assigned}")
    p = Producer({"bootstrap.servers": ctx.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(200):
        p.produce(GROUP_TOPIC, value=f"s{i}".encode(), partition=i % 4)
    check_eq(p.flush(30), 0, "messages left after flush")
    for t in threads:
        t.join(120)
    parts = {n: {r.partition for r in rs} for n, rs in got.items()}
    check(parts["a"] and parts["b"], f"both members read records: {parts}")
    check(not (parts["a"] & parts["b"]), f"partitions read by both members: {parts}")
    check_eq(sorted(r.value for rs in got.values() for r in rs),
             sorted(f"s{i}".encode() for i in range(200)), "kafka-python two-member group")
    log(f"kafka-python: two members split the partitions {parts}")


def static_membership_part(ctx):
    def member(instance):
        c = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": "static-group",
                      "group.instance.id": instance, "session.timeout.ms": 10000,
                      "heartbeat.interval.ms": 1000, "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        assigned = []
        c.subscribe([GROUP_TOPIC], on_assign=lambda _c, ps: assigned.append(
            sorted(tp.partition for tp in ps)))
        return c, assigned

    a, a_assigned = member("static-a")
    b, b_assigned = member("static-b")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        a.poll(0.2)
        b.poll(0.2)
        if a_assigned and b_assigned and len(a_assigned[-1]) + len(b_assigned[-1]) == 4:
            break
    check(a_assigned and b_assigned, f"static members assigned: {a_assigned} {b_assigned}")
    before = b_assigned[-1]
    rebalances_of_a = len(a_assigned)
    b.close()  # a static member leaves no LeaveGroup behind
    b2, b2_assigned = member("static-b")
    deadline = time.monotonic() + 30
    while not b2_assigned and time.monotonic() < deadline:
        b2.poll(0.2)
        a.poll(0.05)
    check_eq(b2_assigned[-1] if b2_assigned else None, before,
             "partitions of a static member that came back")
    for _ in range(10):
        a.poll(0.1)
    check_eq(len(a_assigned), rebalances_of_a, "assignments of the other static member")
    a.close()
    b2.close()
    log("static membership: a returning member got its partitions back without a rebalance")


def group_admin_part(ctx):
    admin = KafkaAdminClient(bootstrap_servers=ctx.bootstrap, request_timeout_ms=30000)
    try:
        groups = {g[0] for g in admin.list_consumer_groups()}
        check({"kp-split", "kcat-group"} <= groups, f"list_consumer_groups: {groups}")
        desc = admin.describe_consumer_groups(["kp-split"])[0]
        check_eq(desc.group, "kp-split", "describe_consumer_groups group")
        check_eq(desc.state, "Empty", "state of a group whose members all left")
        offsets = admin.list_consumer_group_offsets("kp-split")
        check_eq(sorted((tp.partition, o.offset) for tp, o in offsets.items()),
                 [(p, 50) for p in range(4)], "list_consumer_group_offsets")
        result = admin.delete_consumer_groups(["kp-split"])
        check_eq([(g, e.errno) for g, e in result], [("kp-split", 0)], "delete_consumer_groups")
        check("kp-split" not in {g[0] for g in admin.list_consumer_groups()},
              "kp-split listed after its deletion")
        check_eq(admin.list_consumer_group_offsets("kp-split"), {},
                 "offsets of a deleted group")
    finally:
        admin.close()
    log("kafka-python group admin: list, describe, offsets, delete")


def run(ctx):
    kcat_part(ctx)
    if ctx.mock:
        log("mock: kafka-python's JoinGroup v0-2 is refused (INVALID_REQUEST), static members "
            "are rebalanced, and there is no CreateTopics/DescribeConfigs/DeleteGroups: only the "
            "kcat part runs")
        return
    static_membership_part(ctx)
    kafka_python_split_part(ctx)
    kafka_python_admin_part(ctx)
    group_admin_part(ctx)


if __name__ == "__main__":
    harness.main(run, TOPICS, time_limit=300)
