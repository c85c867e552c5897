"""Shared fixtures: small real exports made once per session (tiny input sizes keep CI fast)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.data import data_root

REPO = Path(__file__).resolve().parents[1]
HAS_DATA = (data_root() / "fer2013").is_dir()


def run_edge(*args: str, cwd: Path | None = None, env: dict | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``edge`` CLI in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def fer_artifacts(tmp_path_factory) -> Path:
    """FER MobileNetV2 at 32 px exported to every image format (random init, real calibration data)."""
    from edge.export.pipeline import export_family
    from edge.families import get_family
    from edge.formats import parse_formats

    out = tmp_path_factory.mktemp("artifacts")
    results = export_family(get_family("fer"), parse_formats("all", include_torch=True), out, imgsz=32,
                            calib_n=24, verify_n=8)
    bad = [(r.format, r.reason) for r in results if r.status == "failed"]
    assert not bad, bad
    return out


@pytest.fixture(scope="session")
def trail_run(tmp_path_factory) -> Path:
    """The trail tree trained on the real weather data, exported to C and MicroPython."""
    from edge.export.pipeline import export_family
    from edge.families import get_family
    from edge.formats import parse_formats
    from edge.models.train_tree import train_trail

    root = tmp_path_factory.mktemp("trail")
    train_trail(out=root / "runs")
    results = export_family(get_family("trail"), parse_formats("c,micropython"), root / "artifacts",
                            checkpoint=root / "runs" / "best.pkl")
    assert all(r.status == "ok" for r in results), [(r.format, r.reason) for r in results]
    return root


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A real mosquitto on a loopback port, stoppable and restartable (same port) to simulate outages."""

    def __init__(self, workdir: Path) -> None:
        import shutil

        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            pytest.fail("mosquitto is not installed (scripts/setup.sh installs it)")
        self.exe, self.port = exe, free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                             "max_queued_messages 200000\nmax_inflight_messages 1000\n", encoding="utf-8")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        import socket
        import time

        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        pytest.fail("mosquitto did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture()
def broker(tmp_path: Path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()
