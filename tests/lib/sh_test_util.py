"""Small helpers shared by the Python test scripts that start brokers themselves (integration and
analytics tests; the compat scenarios have harness.py). Import with

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    from sh_test_util import fail, free_port, log, wait_port
"""

import socket
import time

_T0 = time.time()


def log(msg):
    """A line with the seconds since the script started, flushed at once (ctest shows it live)."""
    print(f"[{time.time() - _T0:6.1f}s] {msg}", flush=True)


def fail(msg):
    """Ends the test with exit status 1 and the reason on stdout."""
    print(f"FAIL: {msg}", flush=True)
    raise SystemExit(1)


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    """True once something accepts on 127.0.0.1:port; False if `proc` exits or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False
