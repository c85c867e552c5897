"""edge: small vision, sensor and voice models from training to a Pi, an ESP32 and a watch."""

__version__ = "0.1.0"
