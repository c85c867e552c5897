"""Export to edge formats with parity checks (installed as ``edge.export``; needs the ``export`` extra)."""
