// kafkajs 2.2.4 reads a topic to its end through a group and commits: the committed offsets must
// reach the high watermarks even when the log ends in offsets without records (a mirrored
// source's trailing transaction markers).
// usage: NODE_PATH=tests/compat/js/node_modules node read_to_end.js BOOTSTRAP TOPIC RECORDS
// prints "records=N committed=p:off ..." and exits 0 when N == RECORDS and every committed
// offset equals its high watermark.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, expected] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'sh-read-to-end', brokers: [bootstrap],
  logLevel: logLevel.ERROR, retry: { retries: 8 } });
const group = `sh-read-to-end-${process.pid}`;

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let records = 0;
  await consumer.run({ autoCommitInterval: 100, eachMessage: async () => { records++; } });
  const deadline = Date.now() + 30000;
  let committed = [];
  for (;;) {
    await new Promise((r) => setTimeout(r, 300));
    const got = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    committed = got[0].partitions;
    const done = ends.every((e) => {
      const c = committed.find((p) => p.partition === e.partition);
      return c && c.offset === e.high;
    });
    if ((done && records >= Number(expected)) || Date.now() > deadline) break;
  }
  await consumer.disconnect();
  await admin.disconnect();
  const line = committed.map((p) => `${p.partition}:${p.offset}`).sort().join(' ');
  const highs = ends.map((e) => `${e.partition}:${e.high}`).sort().join(' ');
  console.log(`records=${records} committed=${line} high=${highs}`);
  process.exit(records === Number(expected) && line === highs ? 0 : 1);
}

main().catch((e) => { console.error(e); process.exit(2); });
