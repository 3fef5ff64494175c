#!/usr/bin/python3
"""Two brokers on one PostgreSQL database and one S3 bucket (the test services' Swift s3api).

Both brokers accept produce for the SAME partitions at the same time (requests are sent to a
chosen broker, not to the partition's preferred one), and both serve identical data: every
acknowledged batch is read back from each broker at exactly the offsets it was acknowledged
with; offsets are contiguous, never duplicated, and the high watermark equals the records sent.

Needs S3_ENDPOINT S3_REGION S3_ACCESS_KEY S3_SECRET_KEY PG_URL (tests/services/test-services.sh);
exits 77 (skipped) without them.

usage: multi_broker_test.py STREAMHOUSE_BINARY
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sh_test_util import fail, free_port, log, wait_port  # noqa: E402

from kafka.client_async import KafkaClient
from kafka.protocol.fetch import FetchRequest
from kafka.protocol.produce import ProduceRequest
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder

TOPIC = "shared"
PARTITIONS = 2
REQUESTS_PER_BROKER = 60
RECORDS_PER_BATCH = 10


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    binary = sys.argv[1]
    env = os.environ
    needed = ["S3_ENDPOINT", "S3_REGION", "S3_ACCESS_KEY", "S3_SECRET_KEY", "PG_URL"]
    if any(not env.get(v) for v in needed):
        print(f"SKIP: needs {' '.join(needed)} (tests/services/test-services.sh)")
        return 77
    work = tempfile.mkdtemp(prefix="sh-multi-")
    suffix = os.path.basename(work).replace("sh-multi-", "").lower()
    suffix = "".join(c for c in suffix if c.isalnum())
    bucket, db = f"sh-multi-{suffix}", f"sh_multi_{suffix}"
    procs = []
    ok = False
    try:
        netrc = os.path.join(work, "s3.netrc")
        with open(netrc, "w") as f:
            f.write(f"machine 127.0.0.1 login {env['S3_ACCESS_KEY']} password {env['S3_SECRET_KEY']}\n")
        code = subprocess.run(
            ["curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
             "--aws-sigv4", f"aws:amz:{env['S3_REGION']}:s3", "--netrc-file", netrc,
             "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", f"{env['S3_ENDPOINT']}/{bucket}"],
            capture_output=True, text=True, timeout=30).stdout
        if code != "200":
            fail(f"creating bucket {bucket}: HTTP {code}")
        r = subprocess.run(["psql", env["PG_URL"], "-qAt", "-c", f"CREATE DATABASE {db}"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            fail(f"CREATE DATABASE {db}: {r.stderr}")
        pg_db_url = env["PG_URL"].rsplit("/", 1)[0] + "/" + db

        ports = {}
        for node in (1, 2):
            port = free_port()
            ports[node] = port
            cfg = os.path.join(work, f"broker-{node}.properties")
            with open(cfg, "w") as f:
                f.write(f"listeners=PLAINTEXT://127.0.0.1:{port}\n"
                        f"node.id={node}\n"
                        f"data.dir={work}/data-{node}\n"
                        f"num.partitions={PARTITIONS}\n"
                        f"ingest.flush.ms=20\n"
                        f"metadata.url={pg_db_url}\n"
                        f"storage.url=s3://{bucket}/archive\n"
                        f"s3.endpoint={env['S3_ENDPOINT']}\n"
                        f"s3.region={env['S3_REGION']}\n"
                        f"s3.access.key={env['S3_ACCESS_KEY']}\n"
                        f"s3.secret.key={env['S3_SECRET_KEY']}\n")
            logf = open(os.path.join(work, f"broker-{node}.log"), "w")
            p = subprocess.Popen([binary, "broker", "--config", cfg], stdout=logf,
                                 stderr=subprocess.STDOUT)
            procs.append((p, logf, node))
            if not wait_port(port, p):
                fail(f"broker {node} did not start")
        log(f"brokers 1 and 2 up on {ports[1]} and {ports[2]} (PostgreSQL {db}, s3://{bucket})")

        bootstrap = [f"127.0.0.1:{ports[1]}", f"127.0.0.1:{ports[2]}"]

        def client():
            c = KafkaClient(bootstrap_servers=bootstrap, api_version=(2, 0, 0),
                            request_timeout_ms=30000)
            deadline = time.time() + 30
            while time.time() < deadline:
                fut = c.cluster.request_update()
                c.poll(future=fut, timeout_ms=5000)
                if {b.nodeId for b in c.cluster.brokers()} == {1, 2}:
                    return c
                time.sleep(0.5)
            fail(f"metadata does not list both brokers: {c.cluster.brokers()}")

        def send(c, node, req):
            deadline = time.time() + 30
            while not c.ready(node):
                c.poll(timeout_ms=100)
                if time.time() > deadline:
                    fail(f"node {node} not ready")
            fut = c.send(node, req)
            c.poll(future=fut, timeout_ms=30000)
            if not fut.succeeded():
                fail(f"request to node {node} failed: {fut.exception}")
            return fut.value

        # Auto-create the topic through Metadata.
        c0 = client()
        fut = c0.cluster.request_update()
        c0.set_topics([TOPIC])
        deadline = time.time() + 30
        while len(c0.cluster.partitions_for_topic(TOPIC) or ()) != PARTITIONS:
            c0.poll(future=c0.cluster.request_update(), timeout_ms=2000)
            if time.time() > deadline:
                fail("topic not created")
        leaders = {p: c0.cluster.leader_for_partition(
            __import__("kafka").TopicPartition(TOPIC, p)) for p in range(PARTITIONS)}
        log(f"Metadata lists brokers {sorted(b.nodeId for b in c0.cluster.brokers())}, "
            f"preferred brokers {leaders}")

        acked = {}  # (partition, base offset) -> list of values
        lock = threading.Lock()
        errors = []

        def producer(node):
            try:
                c = client()
                for i in range(REQUESTS_PER_BROKER):
                    partition = i % PARTITIONS
                    b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
                    values = [f"n{node}-r{i}-{j}".encode() for j in range(RECORDS_PER_BATCH)]
                    for v in values:
                        b.append(timestamp=int(time.time() * 1000), key=b"k", value=v, headers=[])
                    b.close()
                    req = ProduceRequest[3](transactional_id=None, required_acks=-1,
                                            timeout=30000,
                                            topics=[(TOPIC, [(partition, b.buffer())])])
                    resp = send(c, node, req)
                    (_, parts), = resp.topics
                    (pidx, err, base, *_), = parts
                    if err != 0:
                        raise RuntimeError(f"node {node} produce error {err}")
                    with lock:
                        if (pidx, base) in acked:
                            raise RuntimeError(f"offset {pidx}/{base} acknowledged twice")
                        acked[(pidx, base)] = values
                c.close()
            except BaseException as e:  # noqa: B902 - reported below
                errors.append(f"{node}: {e!r}")

        threads = [threading.Thread(target=producer, args=(n,)) for n in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        if errors:
            fail(f"producers: {errors}")
        total = REQUESTS_PER_BROKER * 2 * RECORDS_PER_BATCH
        log(f"{len(acked)} batches ({total} records) acknowledged by both brokers concurrently")

        # Expected per partition: offset -> value, from the acknowledgements.
        expected = {p: {} for p in range(PARTITIONS)}
        for (p, base), values in acked.items():
            for j, v in enumerate(values):
                if base + j in expected[p]:
                    fail(f"partition {p} offset {base + j} assigned twice")
                expected[p][base + j] = v
        for p in range(PARTITIONS):
            offs = sorted(expected[p])
            if offs != list(range(len(offs))):
                fail(f"partition {p} offsets are not contiguous from 0: {offs[:5]}...")

        # Read everything back from EACH broker and compare.
        for node in (1, 2):
            c = client()
            for p in range(PARTITIONS):
                got = {}
                offset = 0
                hw = None
                while offset < len(expected[p]):
                    req = FetchRequest[4](replica_id=-1, max_wait_time=100, min_bytes=1,
                                          max_bytes=10 << 20, isolation_level=0,
                                          topics=[(TOPIC, [(p, offset, 1 << 20)])])
                    resp = send(c, node, req)
                    (_, parts), = resp.topics
                    (pidx, err, hw, _lso, _aborted, data), = parts
                    if err != 0:
                        fail(f"fetch from node {node} partition {p}@{offset}: error {err}")
                    records = MemoryRecords(data)
                    while records.has_next():
                        batch = records.next_batch()
                        for rec in batch:
                            if rec.offset >= offset:
                                got[rec.offset] = rec.value
                    offset = max(got) + 1 if got else offset
                if hw != len(expected[p]):
                    fail(f"node {node} partition {p}: high watermark {hw}, "
                         f"expected {len(expected[p])}")
                if got != expected[p]:
                    missing = sorted(set(expected[p]) - set(got))[:5]
                    wrong = [o for o in got if expected[p].get(o) != got[o]][:5]
                    fail(f"node {node} partition {p}: missing {missing}, different {wrong}")
            c.close()
            log(f"broker {node} serves all {total} records at their acknowledged offsets")
        ok = True
        print("PASS")
        return 0
    finally:
        for p, logf, node in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
            logf.close()
            if not ok:
                print(f"----- broker {node} log -----")
                with open(os.path.join(work, f"broker-{node}.log")) as f:
                    print("".join(f.readlines()[-60:]))
        subprocess.run(["psql", env.get("PG_URL", ""), "-qAt", "-c", f"DROP DATABASE IF EXISTS {db}"],
                       capture_output=True, timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
