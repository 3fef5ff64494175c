"""Shared harness for the compat scenarios: starts a broker, creates the scenario's topics, runs
the scenario under a time limit, and on failure prints what went wrong and the broker's log.

A scenario is a script that ends with:

    if __name__ == "__main__":
        harness.main(run, topics={"name": partitions, ...}, time_limit=120)

and is run as

    /usr/bin/python3 NNNN_scenario.py --broker STREAMHOUSE_BINARY   # a real broker
    /usr/bin/python3 NNNN_scenario.py --mock SH_MOCK_KAFKA_BINARY   # librdkafka's mock cluster

`run(ctx)` gets a Context (bootstrap address, helpers) and fails by raising (assert or
ScenarioError). With --mock the scenario checks itself against a reference implementation;
`ctx.mock` lets it skip what the mock lacks (CreateTopics, restarts).
"""

import argparse
import faulthandler
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback


class ScenarioError(Exception):
    pass


def check(cond, message):
    if not cond:
        raise ScenarioError(message)


def check_eq(got, want, what):
    if got != want:
        raise ScenarioError(f"{what}: want {short(want)}, got {short(got)}")


def short(v, limit=300):
    r = repr(v)
    return r if len(r) <= limit else r[:limit] + f"... ({len(r)} chars)"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def log(msg):
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", flush=True)


_T0 = time.monotonic()


def _die_with_parent():
    """Child-side: SIGKILL this process when the harness dies (even by SIGKILL), so a killed
    test never leaves a broker behind."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Broker:
    """One broker process (or the mock cluster) with its own data.dir and log file."""

    def __init__(self, binary, work, mock, topics, extra_config=None):
        self.binary, self.work, self.mock, self.topics = binary, work, mock, topics
        self.port = free_port()
        self.proc = None
        self.logs = []
        self.config = os.path.join(work, "broker.properties")
        lines = [
            f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "node.id=1",
            f"data.dir={os.path.join(work, 'data')}",
            "num.partitions=4",
            "auto.create.topics.enable=true",
        ] + [f"{k}={v}" for k, v in (extra_config or {}).items()]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=30):
        path = os.path.join(self.work, f"broker-{len(self.logs) + 1}.log")
        self.logs.append(path)
        out = open(path, "wb")
        if self.mock:
            args = [self.binary] + [a for t, n in self.topics.items()
                                    for a in ("--topic", f"{t}:{n}")]
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=out,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            line = self.proc.stdout.readline().decode().strip()
            check(line, "mock cluster printed no bootstrap address")
            self.port = int(line.rsplit(":", 1)[1])
        else:
            self.proc = subprocess.Popen([self.binary, "broker", "--config", self.config],
                                         stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        out.close()
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            rc = self.proc.poll()
            check(rc is None, f"broker exited with status {rc} during start-up")
            check(time.monotonic() < deadline, f"broker not listening after {timeout} s")
            time.sleep(0.1)
        log(f"broker up on {self.bootstrap} (pid {self.proc.pid})")

    def stop(self, timeout=30):
        """SIGTERM; the broker must exit 0 within `timeout` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise ScenarioError(f"broker did not exit within {timeout} s of SIGTERM")
        if not self.mock:
            check_eq(rc, 0, "broker exit status after SIGTERM")
        log("broker stopped")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def print_logs(self, lines=150):
        for path in self.logs:
            print(f"----- broker log {path} (last {lines} lines) -----")
            with open(path, "rb") as f:
                tail = f.read().decode(errors="replace").splitlines()[-lines:]
            print("\n".join(tail))


class Context:
    def __init__(self, broker, mock):
        self.broker = broker
        self.mock = mock
        self.flags = []  # command-line arguments the harness does not know

    @property
    def bootstrap(self):
        return self.broker.bootstrap

    def restart(self):
        """Graceful stop and start on the same data.dir (not possible on the mock)."""
        check(not self.mock, "restart() on the mock")
        self.broker.stop()
        self.broker.start()

    def create_topics(self, topics):
        """CreateTopics through confluent-kafka's admin client (librdkafka), then wait until every
        partition has a leader. On the mock (no CreateTopics) they were made at its start."""
        if not self.mock:
            from confluent_kafka.admin import AdminClient, NewTopic
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            futures = admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()],
                                          operation_timeout=30, request_timeout=30)
            for t, f in futures.items():
                try:
                    f.result(timeout=60)
                except Exception as e:
                    raise ScenarioError(f"CreateTopics {t}: {e}")
        for t, n in topics.items():
            self.wait_for_topic(t, n)
        log(f"topics ready: {topics}")

    def wait_for_topic(self, topic, partitions, timeout=30):
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            md = admin.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t is not None and t.error is None and len(t.partitions) == partitions and all(
                    p.leader >= 0 and p.error is None for p in t.partitions.values()):
                return
            last = t
            time.sleep(0.2)
        raise ScenarioError(f"topic {topic} not ready with {partitions} partitions after "
                            f"{timeout} s: {last and (last.error, len(last.partitions))}")


REMOTE_ENV = ["S3_ENDPOINT", "S3_REGION", "S3_ACCESS_KEY", "S3_SECRET_KEY", "PG_URL"]


def remote_backend(work):
    """A bucket on the test services' S3 server and a database on their PostgreSQL, both new.
    Returns (broker config, cleanup function)."""
    env = os.environ
    suffix = "".join(c for c in os.path.basename(work).lower() if c.isalnum())[-12:]
    bucket, db = f"sh-compat-{suffix}", f"sh_compat_{suffix}"
    netrc = os.path.join(work, "s3.netrc")
    with open(netrc, "w") as f:
        f.write(f"machine 127.0.0.1 login {env['S3_ACCESS_KEY']} password {env['S3_SECRET_KEY']}\n")
    code = subprocess.run(
        ["curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
         "--aws-sigv4", f"aws:amz:{env['S3_REGION']}:s3", "--netrc-file", netrc,
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", f"{env['S3_ENDPOINT']}/{bucket}"],
        capture_output=True, text=True, timeout=30).stdout
    check(code == "200", f"creating bucket {bucket}: HTTP {code}")
    r = subprocess.run(["psql", env["PG_URL"], "-qAt", "-c", f"CREATE DATABASE {db}"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"CREATE DATABASE {db}: {r.stderr}")

    def cleanup():
        subprocess.run(["psql", env["PG_URL"], "-qAt", "-c", f"DROP DATABASE IF EXISTS {db}"],
                       capture_output=True, timeout=30)

    config = {
        "metadata.url": env["PG_URL"].rsplit("/", 1)[0] + "/" + db,
        "storage.url": f"s3://{bucket}/compat",
        "s3.endpoint": env["S3_ENDPOINT"],
        "s3.region": env["S3_REGION"],
        "s3.access.key": env["S3_ACCESS_KEY"],
        "s3.secret.key": env["S3_SECRET_KEY"],
        "ingest.flush.ms": "20",
    }
    log(f"backends: PostgreSQL database {db}, s3://{bucket}/compat")
    return config, cleanup


def main(run, topics, time_limit=120, extra_config=None):
    """Runs the scenario and exits the process with 0 (pass) or 1 (fail)."""
    code = _main(run, topics, time_limit, extra_config)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # client libraries' background threads must not keep the process alive


def _main(run, topics, time_limit, extra_config):
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--broker", help="streamhouse binary")
    g.add_argument("--mock", help="sh_mock_kafka binary (harness self-check)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--remote", action="store_true",
                    help="run the broker on PostgreSQL + S3 from the test services' env "
                         "(exit 77, skipped, without them)")
    args, extra = ap.parse_known_args()  # the scenario's own flags stay in ctx.flags
    binary = args.broker or args.mock
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"FAIL: broker binary not found or not executable: {binary} "
              "(is the target built?)")
        return 1

    # A hang fails the scenario with every thread's stack rather than blocking CI.
    faulthandler.dump_traceback_later(time_limit, exit=True)
    if args.remote and any(not os.environ.get(v) for v in REMOTE_ENV):
        print(f"SKIP: --remote needs {' '.join(REMOTE_ENV)} (tests/services/test-services.sh)")
        return 77
    work = tempfile.mkdtemp(prefix="sh-compat-")
    cleanup = None
    if args.remote:
        try:
            remote_config, cleanup = remote_backend(work)
        except (ScenarioError, OSError, subprocess.SubprocessError) as e:
            print(f"FAIL: setting up PostgreSQL + S3 for the broker: {e}")
            print(f"work directory kept: {work}")
            return 1
        extra_config = {**remote_config, **(extra_config or {})}
    broker = Broker(binary, work, args.mock is not None, topics, extra_config)
    ok = False
    try:
        broker.start()
        ctx = Context(broker, args.mock is not None)
        ctx.flags = extra
        if topics:
            ctx.create_topics(topics)
        run(ctx)
        broker.stop()
        ok = True
    except ScenarioError as e:
        print(f"FAIL: {e}")
        traceback.print_exc(limit=4, file=sys.stdout)
    except Exception:
        print("FAIL: unexpected exception")
        traceback.print_exc(file=sys.stdout)
    finally:
        faulthandler.cancel_dump_traceback_later()
        broker.kill()
        if cleanup:
            cleanup()
        if not ok:
            broker.print_logs()
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    if ok:
        log("PASS")
    return 0 if ok else 1

