#!/usr/bin/python3
"""Legacy formats on the fetch path: kafka-python pinned to old broker versions fetches with
Fetch v0/v1 (api_version 0.9: magic 0 message sets) and v2/v3 (0.10.1: magic 1). The broker
down-converts its magic-2 batches (here gzip-compressed, with headers, which the old formats
drop); every record comes back at its offset with its key and value, and magic 1 keeps the
CreateTime. librdkafka's mock cluster serves no Fetch below v4: no self-check on it.
"""

import time

import harness
from harness import check_eq, log

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

TOPIC = "legacy-fetch"
TOPICS = {TOPIC: 2}
COUNT = 80


def run(ctx):
    if ctx.mock:
        log("mock: no Fetch v0-v3 on librdkafka's mock cluster; nothing to check")
        return
    base_ts = int(time.time() * 1000) - 60000
    p = KafkaProducer(bootstrap_servers=ctx.bootstrap, compression_type="gzip", acks="all",
                      linger_ms=20)
    for i in range(COUNT):
        p.send(TOPIC, key=b"k%d" % i, value=b"v%d" % i, partition=i % 2, timestamp_ms=base_ts + i,
               headers=[("h", b"dropped-by-old-formats")])
    p.flush(30)
    p.close()
    want = sorted((i % 2, i // 2, b"k%d" % i, b"v%d" % i) for i in range(COUNT))
    for api_version in [(0, 9), (0, 10, 1)]:
        c = KafkaConsumer(bootstrap_servers=ctx.bootstrap, group_id=None, api_version=api_version,
                          auto_offset_reset="earliest", consumer_timeout_ms=5000)
        c.assign([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])
        msgs = list(c)
        c.close()
        check_eq(sorted((m.partition, m.offset, m.key, m.value) for m in msgs), want,
                 f"records read with api_version {api_version}")
        if api_version >= (0, 10):
            got_ts = sorted((m.partition, m.offset, m.timestamp) for m in msgs)
            check_eq(got_ts, sorted((i % 2, i // 2, base_ts + i) for i in range(COUNT)),
                     "CreateTime through magic 1")
        log(f"api_version {api_version}: {len(msgs)} records down-converted, exact")


if __name__ == "__main__":
    harness.main(run, TOPICS, time_limit=120)
