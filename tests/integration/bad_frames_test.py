#!/usr/bin/python3
"""Raw frames against the broker: an ApiVersions request of a version the broker does not know
is answered in the v0 layout with UNSUPPORTED_VERSION (35) and the supported ranges; malformed
input (oversized frame, garbage body, unknown API key, truncated frame) closes that connection
and nothing else — the broker keeps serving real clients afterwards.

usage: bad_frames_test.py STREAMHOUSE_BINARY
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def request(api_key, version, corr, body=b"", client=b"bad-frames"):
    payload = struct.pack(">hhih", api_key, version, corr, len(client)) + client + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(s):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf
    head = exact(4)
    if head is None:
        return None
    return exact(struct.unpack(">i", head)[0])


def closed_by_broker(s, timeout=5):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="sh-badframes-")
    port = free_port()
    cfg = os.path.join(work, "b.properties")
    with open(cfg, "w") as f:
        f.write(f"listeners=PLAINTEXT://127.0.0.1:{port}\ndata.dir={work}/data\n"
                "socket.request.max.bytes=65536\n")
    log = open(os.path.join(work, "broker.log"), "w")
    broker = subprocess.Popen([binary, "broker", "--config", cfg], stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)

        # 1. ApiVersions of an unknown version: v0 layout, error 35, the supported ranges.
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request(18, 127, 42, body=b"\x00" * 5))
        resp = read_frame(s)
        if resp is None:
            fail("no answer to ApiVersions v127")
        corr, err, n = struct.unpack(">ihi", resp[:10])
        if (corr, err) != (42, 35):
            fail(f"ApiVersions v127: correlation {corr}, error {err}; want 42, 35")
        ranges = {struct.unpack(">hhh", resp[10 + 6 * i:16 + 6 * i])[0]:
                  struct.unpack(">hhh", resp[10 + 6 * i:16 + 6 * i])[1:] for i in range(n)}
        if ranges.get(18, (None,))[0] != 0 or 0 not in ranges or 1 not in ranges:
            fail(f"supported ranges missing: {ranges}")
        # The same connection still works with a supported version.
        s.sendall(request(18, 0, 43))
        resp = read_frame(s)
        if resp is None or struct.unpack(">ih", resp[:6]) != (43, 0):
            fail("ApiVersions v0 after v127 not answered with error 0")
        s.close()
        print(f"ApiVersions v127 -> UNSUPPORTED_VERSION with {n} ranges; v0 then works")

        # 2. Malformed input closes only that connection.
        cases = {
            "frame over socket.request.max.bytes": struct.pack(">i", 10 * 1024 * 1024) + b"x" * 16,
            "negative frame size": struct.pack(">i", -5),
            "unknown api key": request(32000, 0, 1),
            "garbage Metadata body": request(3, 4, 1, body=b"\x7f\xff\xff\xff" * 3),
            "Produce with a huge array count": request(0, 7, 1, body=b"\xff\xff" + b"\x00\x01"
                                                        + b"\x00\x00\x75\x30" + b"\x7f\xff\xff\xff"),
            "negative string length": request(19, 3, 1, body=b"\x00\x00\x00\x01\x80\x00"),
        }
        for name, data in cases.items():
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(data)
            if not closed_by_broker(s):
                fail(f"{name}: connection not closed")
            s.close()
            print(f"{name}: connection closed")
        # A truncated frame: the peer goes away mid-frame.
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(struct.pack(">i", 100) + b"\x00\x12")
        s.close()

        # 3. The broker is alive and serves a real client.
        if broker.poll() is not None:
            fail(f"broker exited with {broker.returncode}")
        r = subprocess.run(["kcat", "-b", f"127.0.0.1:{port}", "-L", "-m", "10"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or "broker" not in r.stdout:
            fail(f"kcat -L after bad frames failed: {r.stderr}")
        print("broker alive; kcat -L works")
        print("PASS")
        return 0
    finally:
        broker.terminate()
        try:
            broker.wait(30)
        except subprocess.TimeoutExpired:
            broker.kill()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
