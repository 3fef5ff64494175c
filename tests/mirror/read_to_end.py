"""kafka-python and confluent-kafka read a topic to its end: each consumer's position must reach
the high watermark even when the log ends in offsets without records (a mirrored source's
trailing transaction markers), and the record count must match.

usage: /usr/bin/python3 read_to_end.py BOOTSTRAP TOPIC PARTITIONS RECORDS
"""
import sys
import time

from confluent_kafka import Consumer, TopicPartition as CTP
from kafka import KafkaConsumer, TopicPartition

boot, topic, parts, expected = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ok = True

kc = KafkaConsumer(bootstrap_servers=boot, enable_auto_commit=False, group_id=None)
tps = [TopicPartition(topic, p) for p in range(parts)]
kc.assign(tps)
kc.seek_to_beginning()
ends = kc.end_offsets(tps)
n = 0
deadline = time.time() + 30
while time.time() < deadline:
    for recs in kc.poll(timeout_ms=200).values():
        n += len(recs)
    if all(kc.position(tp) >= ends[tp] for tp in tps):
        break
pos = ' '.join(f'{tp.partition}:{kc.position(tp)}' for tp in tps)
high = ' '.join(f'{tp.partition}:{ends[tp]}' for tp in tps)
print(f'kafka-python: records={n} positions={pos} high={high}')
ok = ok and n == expected and pos == high
kc.close()

cc = Consumer({'bootstrap.servers': boot, 'group.id': 'sh-read-to-end', 'enable.auto.commit': False,
               'enable.partition.eof': True, 'isolation.level': 'read_committed'})
cc.assign([CTP(topic, p, 0) for p in range(parts)])
n, eof = 0, set()
deadline = time.time() + 30
while time.time() < deadline and len(eof) < parts:
    m = cc.poll(0.2)
    if m is None:
        continue
    if m.error():
        eof.add(m.partition())
        continue
    n += 1
pos = ' '.join(f'{tp.partition}:{tp.offset}' for tp in cc.position([CTP(topic, p) for p in range(parts)]))
print(f'confluent-kafka: records={n} partitions at their end={len(eof)} positions={pos}')
ok = ok and n == expected and len(eof) == parts
cc.close()
sys.exit(0 if ok else 1)
