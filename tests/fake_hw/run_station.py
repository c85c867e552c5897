# Harness run by the MicroPython unix port: build the station on fake hardware, run N steps, print JSON stats.
# usage: micropython run_station.py STEPS PULSES_PER_STEP
import json
import sys

import dht
import machine
import network
import ssd1306
import trail_tree
from station import Station, load_config

steps, pulses = int(sys.argv[1]), int(sys.argv[2])
cfg = load_config()
clock_us = [0]


def ticks():
    clock_us[0] += 10000  # 10 ms between pulses: above the debounce
    return clock_us[0]


t = [1700000000]


def clock():
    return t[0]


st = Station(cfg, machine, dht, network, trail_tree, ssd1306.SSD1306_I2C(128, 64, None), clock, ticks)
labels = []
for _ in range(steps):
    machine.pulse(cfg["pins"]["anemometer"], pulses)
    t[0] += cfg["sample_interval_s"]
    r = st.step(cfg["sample_interval_s"])
    labels.append(r["label"] if r else None)
print(json.dumps({"stats": st.stats, "pending": len(st.ring.pending()), "acked": st.ring.acked,
                  "dropped": st.ring.dropped, "corrupt": st.ring.corrupt, "labels": labels,
                  "screen": ssd1306.FRAMES[-1] if ssd1306.FRAMES else [], "error": st.last_error}))
