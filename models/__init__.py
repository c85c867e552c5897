"""Architectures and training (installed as ``edge.models``; needs the ``train`` extra)."""
