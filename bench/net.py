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
