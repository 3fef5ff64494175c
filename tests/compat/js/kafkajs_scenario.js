// kafkajs 2.2.4 against a StreamHouse broker: admin (create, metadata, offsets by timestamp,
// describe groups, fetch committed offsets), sendBatch with keys/headers/timestamps, a consumer
// group that consumes, commits and resumes exactly where it left off.
// usage: node kafkajs_scenario.js BOOTSTRAP    (exit 0 = pass)
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const bootstrap = process.argv[2];
const kafka = new Kafka({ clientId: 'sh-compat-js', brokers: [bootstrap], logLevel: logLevel.ERROR,
  retry: { retries: 8 } });
const TOPIC = 'js-topic';
const GROUP = 'js-group';
const PARTITIONS = 3;
const t0 = Date.now() - 3600 * 1000;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}
function log(msg) { console.log(`[kafkajs] ${msg}`); }

function message(i) {
  return {
    key: `key-${i}`,
    value: `value-${i}`,
    partition: i % PARTITIONS,
    timestamp: String(t0 + i * 1000),
    headers: { n: String(i), h: 'x' },
  };
}

async function consumeUntil(count, seen) {
  const consumer = kafka.consumer({ groupId: GROUP, sessionTimeout: 6000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  let got = 0;
  await consumer.run({
    autoCommitInterval: 100,
    eachMessage: async ({ partition, message: m }) => {
      const i = Number(m.headers.n.toString());
      check(m.key.toString() === `key-${i}`, `key of ${i}`);
      check(m.value.toString() === `value-${i}`, `value of ${i}`);
      check(m.headers.h.toString() === 'x', `header of ${i}`);
      check(partition === i % PARTITIONS, `partition of ${i}`);
      check(m.timestamp === String(t0 + i * 1000), `timestamp of ${i}: ${m.timestamp}`);
      check(!seen.has(i), `message ${i} delivered twice`);
      seen.add(i);
      if (++got === count) done();
    },
  });
  const timer = setTimeout(() => done(), 60000);
  await finished;
  clearTimeout(timer);
  check(got === count, `consumed ${got} of ${count}`);
  return consumer;
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  check(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }],
    waitForLeaders: true }) === true, 'createTopics creates');
  check(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }] }) === false,
    'createTopics of an existing topic');
  const md = await admin.fetchTopicMetadata({ topics: [TOPIC] });
  check(md.topics[0].partitions.length === PARTITIONS, 'partition count in metadata');
  log('admin: topic created, metadata ok');

  const producer = kafka.producer();
  await producer.connect();
  const first = Array.from({ length: 300 }, (_, i) => message(i));
  await producer.sendBatch({ topicMessages: [{ topic: TOPIC, messages: first }], acks: -1 });
  log('sendBatch: 300 messages');

  const seen = new Set();
  let consumer = await consumeUntil(300, seen);
  // Let the auto-commit land, and check the group while it is active.
  await new Promise((r) => setTimeout(r, 500));
  const described = await admin.describeGroups([GROUP]);
  const g = described.groups[0];
  check(g.state === 'Stable', `group state ${g.state}`);
  check(g.members.length === 1, `group members ${g.members.length}`);
  check(g.protocolType === 'consumer', `protocol type ${g.protocolType}`);
  await consumer.disconnect();
  const committed = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
  const sum = committed[0].partitions.reduce((a, p) => a + Number(p.offset), 0);
  check(sum === 300, `committed offsets sum ${sum}`);
  log('group consumed 300, committed, describeGroups Stable with 1 member');

  const more = Array.from({ length: 60 }, (_, i) => message(300 + i));
  await producer.sendBatch({ topicMessages: [{ topic: TOPIC, messages: more }], acks: -1 });
  consumer = await consumeUntil(60, seen);
  await consumer.disconnect();
  check(seen.size === 360, `seen ${seen.size}`);
  log('resumed from committed offsets: exactly the 60 new messages');

  // Message i is in partition i % 3 at offset floor(i / 3), timestamp t0 + i s.
  const byTime = await admin.fetchTopicOffsetsByTimestamp(TOPIC, t0 + 30 * 1000);
  for (const p of byTime) {
    // First i with i % 3 == partition and t0 + i*1000 >= t0 + 30000 -> i >= 30.
    const want = Math.floor((30 + ((p.partition - 30 % 3 + 3) % 3)) / 3);
    check(Number(p.offset) === want, `offset by timestamp, partition ${p.partition}: ${p.offset} != ${want}`);
  }
  const latest = await admin.fetchTopicOffsets(TOPIC);
  check(latest.reduce((a, p) => a + Number(p.high), 0) === 360, 'high watermarks');
  log('fetchTopicOffsetsByTimestamp and fetchTopicOffsets exact');

  await producer.disconnect();
  await admin.disconnect();
  log('PASS');
}

main().then(() => process.exit(0)).catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
