# DHT22 with retries and plausibility checks; a cup anemometer counted with a pin IRQ (debounced).
import time


class SensorError(Exception):
    pass


def read_dht(sensor, retries=3):
    """(temperature_c, humidity_pct) or SensorError after `retries` failed or implausible reads."""
    last = "no reading"
    for _ in range(retries):
        try:
            sensor.measure()
            t, h = sensor.temperature(), sensor.humidity()
        except OSError as e:
            last = "read failed: %s" % e
            time.sleep_ms(50)
            continue
        if t != t or h != h:  # NaN
            last = "NaN"
        elif not -40 <= t <= 80 or not 0 <= h <= 100:
            last = "implausible t=%s h=%s" % (t, h)
        else:
            return t, h
        time.sleep_ms(50)
    raise SensorError(last)


class Anemometer:
    def __init__(self, pin, kmh_per_hz, debounce_us=2000, ticks_us=None):
        self.kmh_per_hz = kmh_per_hz
        self.debounce_us = debounce_us
        self.ticks_us = ticks_us or time.ticks_us
        self.count = 0
        self.last = None
        self.pin = pin
        pin.irq(trigger=pin.IRQ_FALLING, handler=self._on_pulse)

    def _on_pulse(self, pin):
        now = self.ticks_us()
        if self.last is not None and time.ticks_diff(now, self.last) < self.debounce_us:
            return  # contact bounce
        self.last = now
        self.count += 1

    def take(self, seconds):
        """km/h over the last `seconds`, and reset the count."""
        n, self.count = self.count, 0
        return (n / seconds) * self.kmh_per_hz if seconds > 0 else 0.0
