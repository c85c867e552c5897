# Shared state of the fake hardware, driven by the test through a JSON file (hw.json in the working dir).
import json

STATE = {"temp": 25.0, "hum": 80.0, "wifi": True, "dht_fail": 0}


def load():
    try:
        with open("hw.json") as f:
            STATE.update(json.load(f))
    except OSError:
        pass
    return STATE
