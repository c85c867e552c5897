"""Latency, memory, size and accuracy-after-export per format (installed as ``edge.bench``)."""
