"""Loopback helpers shared by the benchmarks and the tests: a free port and a real mosquitto."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from edge.errors import EdgeError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A real mosquitto on a loopback port, stoppable and restartable (same port) to simulate outages."""

    def __init__(self, workdir: Path, max_queued: int = 200000) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise EdgeError("mosquitto is not installed (scripts/setup.sh installs it)")
        self.exe, self.port = exe, free_port()
        self.conf = Path(workdir) / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                             f"max_queued_messages {max_queued}\nmax_inflight_messages 1000\n", encoding="utf-8")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise EdgeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, b = n >> 7, n & 0x7F
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_qos1(port: int, topic: str, payloads: list[bytes], client_id: str, window: int = 1000) -> float:
    """A lean pipelined MQTT 3.1.1 QoS 1 publisher (up to ``window`` unacknowledged); seconds until every PUBACK
    is in. A paho client spends ~200 us of Python per publish, which would make the benchmark measure itself."""
    import struct
    import threading

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cid = client_id.encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    sock.sendall(b"\x10" + _varint(len(var)) + var)
    if sock.recv(4) != b"\x20\x02\x00\x00":
        raise EdgeError("the broker refused the benchmark publisher")
    slots = threading.Semaphore(window)
    done = threading.Event()
    n = len(payloads)

    def read_acks() -> None:
        got, buf = 0, b""
        while got < n:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buf += chunk
            k = len(buf) // 4
            got += k
            buf = buf[4 * k:]
            for _ in range(k):
                slots.release()
        done.set()

    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    t_topic = struct.pack("!H", len(topic)) + topic.encode()
    t0 = time.perf_counter()
    out = bytearray()
    for i, p in enumerate(payloads):
        if not slots.acquire(blocking=False):
            sock.sendall(out)
            out.clear()
            slots.acquire()
        out += b"\x32" + _varint(len(t_topic) + 2 + len(p)) + t_topic + struct.pack("!H", i % 65535 + 1) + p
        if len(out) > 65536:
            sock.sendall(out)
            out.clear()
    sock.sendall(out)
    if not done.wait(300):
        raise EdgeError("the broker did not acknowledge every benchmark message")
    took = time.perf_counter() - t0
    sock.sendall(b"\xe0\x00")
    sock.close()
    return took
