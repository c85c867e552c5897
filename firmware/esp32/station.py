# The trail station: sample -> classify on the device -> ring buffer -> send in order (MQTT QoS1 or HTTP POST)
# -> OLED.
import json
import time

from ringbuf import Ring
from sensors import Anemometer, SensorError, read_dht
from transport import make_link

LABELS = ("Aman", "Berbahaya")


def load_config(path="config.json"):
    with open(path) as f:
        return json.load(f)


class Station:
    def __init__(self, cfg, machine, dht, network, tree, display=None, clock=None, ticks_us=None):
        self.cfg = cfg
        self.dev = cfg["device_id"]
        pins = cfg["pins"]
        self.dht = dht.DHT22(machine.Pin(pins["dht22"]))
        apin = machine.Pin(pins["anemometer"], machine.Pin.IN)
        a = cfg["anemometer"]
        self.anemo = Anemometer(apin, a["kmh_per_hz"], a.get("debounce_us", 2000), ticks_us)
        self.wlan = network.WLAN(network.STA_IF)
        self.tree = tree
        self.display = display
        self.clock = clock or time.time
        b = cfg["buffer"]
        self.ring = Ring(b["path"], b["slots"])
        self.link = make_link(cfg, self.dev)
        self.up = False
        self.fails = 0
        self.next_try = 0
        self.stats = {"sensor_errors": 0, "published": 0, "refused": 0, "connect_fails": 0}
        self.last = None
        self.last_error = None

    # ---------------------------------------------------------------- sampling
    def sample(self, seconds):
        wind = self.anemo.take(seconds)
        try:
            t, h = read_dht(self.dht, self.cfg["dht"].get("retries", 3))
        except SensorError as e:
            self.stats["sensor_errors"] += 1
            self.last_error = str(e)
            return None
        scores = self.tree.score([t, h, wind])
        label = 1 if scores[1] > scores[0] else 0
        seq = self.ring.append(self.clock(), t, h, wind, label)
        self.last = {"seq": seq, "temperature_c": t, "humidity_pct": h, "wind_kmh": wind, "label": LABELS[label]}
        return self.last

    # ---------------------------------------------------------------- transport
    def _wifi(self):
        if self.wlan.isconnected():
            return True
        self.wlan.active(True)
        for net in self.cfg["wifi"]:
            self.wlan.connect(net["ssid"], net["password"])
            if self.wlan.isconnected():
                return True
        return False

    def _drop(self):
        self.link.close()
        self.up = False

    def flush(self, now=None):
        """Send the backlog oldest first; each record is acknowledged in the ring only once the hub has it."""
        now = self.clock() if now is None else now
        if not self.up:
            if now < self.next_try:
                return 0
            try:
                if not self._wifi():
                    raise OSError("wifi down")
                self.link.open()
                self.up = True
                self.fails = 0
            except Exception as e:
                self.stats["connect_fails"] += 1
                self.fails += 1
                b = self.cfg["backoff_s"]
                self.next_try = now + min(b["max"], b["min"] * 2 ** min(self.fails - 1, 10))
                self.last_error = "connect: %s" % e
                self._drop()
                return 0
        sent = 0
        for seq in self.ring.pending():
            r = self.ring.read(seq)
            body = {"device": self.dev, "seq": seq, "ts": r["ts"], "temperature_c": r["temperature_c"],
                    "humidity_pct": r["humidity_pct"], "wind_kmh": r["wind_kmh"], "label": LABELS[r["label"]]}
            try:
                took = self.link.send(json.dumps(body).encode())
            except Exception as e:
                self.last_error = "send: %s" % e
                self._drop()
                break
            if not took:
                self.stats["refused"] += 1
            self.ring.ack(seq)
            sent += 1
        self.stats["published"] += sent
        return sent

    # ---------------------------------------------------------------- display + loop
    def show(self):
        if self.display is None:
            return
        d = self.display
        d.fill(0)
        r = self.last
        if r:
            d.text("T %.1fC RH %d%%" % (r["temperature_c"], r["humidity_pct"]), 0, 0)
            d.text("W %.1f km/h" % r["wind_kmh"], 0, 12)
            d.text("AMAN" if r["label"] == "Aman" else "BAHAYA", 0, 26)
        d.text("NET ok" if self.up else "NET --", 0, 40)
        d.text("buf %d drop %d" % (len(self.ring.pending()), self.ring.dropped), 0, 52)
        d.show()

    def step(self, seconds):
        r = self.sample(seconds)
        self.flush()
        self.show()
        return r
