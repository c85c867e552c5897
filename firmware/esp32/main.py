# Boot entry on the ESP32: read config.json, build the station from the real hardware modules, loop forever.
import time

import dht
import machine
import network

import trail_tree
from station import Station, load_config


def oled(cfg):
    if not cfg.get("oled"):
        return None
    try:
        import ssd1306

        p = cfg["pins"]
        i2c = machine.I2C(0, sda=machine.Pin(p["i2c_sda"]), scl=machine.Pin(p["i2c_scl"]))
        return ssd1306.SSD1306_I2C(128, 64, i2c)
    except Exception:
        return None  # no display is not a reason to stop measuring


def run():
    cfg = load_config()
    wdt = machine.WDT(timeout=cfg["watchdog_ms"]) if cfg.get("watchdog_ms") else None
    st = Station(cfg, machine, dht, network, trail_tree, oled(cfg))
    interval = cfg["sample_interval_s"]
    if cfg.get("deep_sleep"):
        # Pulses cannot be counted asleep: stay awake for a wind window, sample, send, then sleep.
        window = cfg.get("wind_window_s", 5)
        st.anemo.take(1)  # discard pulses from boot
        time.sleep(window)
        st.step(window)
        if wdt:
            wdt.feed()
        machine.deepsleep(interval * 1000)
    while True:
        t0 = time.ticks_ms()
        st.step(interval)  # wind = pulses counted since the previous step
        if wdt:
            wdt.feed()
        left = interval * 1000 - time.ticks_diff(time.ticks_ms(), t0)
        if left > 0:
            time.sleep_ms(left)

run()
