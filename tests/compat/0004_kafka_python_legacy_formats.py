#!/usr/bin/python3
"""Legacy message formats on the produce path: kafka-python pinned to old broker versions sends
magic 0 (api_version 0.9: Produce v1) and magic 1 (0.10.1: Produce v2) message sets, plain and
gzip-compressed. The broker converts them to magic 2; modern clients (kafka-python at full
version, confluent-kafka) must read back the same keys and values, in order, at offsets 0..n-1.
Magic 1 carries a CreateTime that must survive; magic 0 has none, so its timestamp isn't checked.
librdkafka's mock cluster answers Produce v1/v2 with UNSUPPORTED_VERSION: no self-check on it.
"""

import time

import harness
from harness import ScenarioError, check_eq, log

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

CASES = [((0, 9), None), ((0, 9), "gzip"), ((0, 10, 1), None), ((0, 10, 1), "gzip")]
COUNT = 60


def topic_of(api_version, codec):
    return "legacy-v" + "_".join(map(str, api_version)) + f"-{codec or 'none'}"


TOPICS = {topic_of(v, c): 1 for v, c in CASES}


def run(ctx):
    if ctx.mock:
        log("mock: librdkafka's mock cluster rejects Produce v1/v2; nothing to check")
        return
    for api_version, codec in CASES:
        topic = topic_of(api_version, codec)
        base_ts = int(time.time() * 1000) - 10000
        producer = KafkaProducer(bootstrap_servers=ctx.bootstrap, api_version=api_version,
                                 compression_type=codec, acks="all", linger_ms=20, retries=0,
                                 request_timeout_ms=30000, max_block_ms=30000)
        sent = []
        for i in range(COUNT):
            kwargs = {"timestamp_ms": base_ts + i} if api_version >= (0, 10) else {}
            sent.append((f"k{i % 7}".encode(), f"legacy {i} ".encode() * (i % 9 + 1),
                         base_ts + i, producer.send(topic, key=f"k{i % 7}".encode(),
                                                    value=f"legacy {i} ".encode() * (i % 9 + 1),
                                                    partition=0, **kwargs)))
        producer.flush(timeout=60)
        producer.close(timeout=30)
        offsets = [f.get(timeout=1).offset for _, _, _, f in sent]
        check_eq(offsets, list(range(COUNT)), f"{topic}: offsets in produce responses")

        kc = KafkaConsumer(bootstrap_servers=ctx.bootstrap, group_id=None,
                           enable_auto_commit=False, request_timeout_ms=30000)
        tp = KpTopicPartition(topic, 0)
        kc.assign([tp])
        kc.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < COUNT and time.monotonic() < deadline:
            for batch in kc.poll(timeout_ms=500).values():
                got.extend(batch)
        kc.close()
        check_eq([(r.offset, r.key, r.value) for r in got],
                 [(i, k, v) for i, (k, v, _, _) in enumerate(sent)],
                 f"{topic}: (offset, key, value) read by kafka-python")
        if api_version >= (0, 10):
            check_eq([r.timestamp for r in got], [ts for _, _, ts, _ in sent],
                     f"{topic}: CreateTimes read by kafka-python")

        c = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": "compat-0004-unused",
                      "enable.auto.commit": False,
                      "enable.partition.eof": True, "check.crcs": True})
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        msgs = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == m.error()._PARTITION_EOF:
                    break
                raise ScenarioError(f"{topic}: consumer error {m.error()}")
            msgs.append(m)
        c.close()
        check_eq([(m.offset(), m.key(), m.value()) for m in msgs],
                 [(i, k, v) for i, (k, v, _, _) in enumerate(sent)],
                 f"{topic}: (offset, key, value) read by confluent-kafka")
        log(f"{topic}: {COUNT} records converted and read back by both clients")


if __name__ == "__main__":
    harness.main(run, TOPICS, time_limit=180)
