"""What device a benchmark ran on: CPU, cores, arch, OS, library versions."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from pathlib import Path

LIBS = ("numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime", "ncnn", "torch", "opencv-python-headless")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
        model = Path("/proc/device-tree/model")
        if model.exists():  # Raspberry Pi and other ARM boards
            return model.read_text().strip("\x00\n ")
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    want = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma", "neon", "asimd", "asimddp", "i8mm"}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("flags", "features")):
                return sorted(want & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def fingerprint() -> dict:
    libs = {}
    for name in LIBS:
        try:
            libs[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpu_flags": cpu_flags(),
        "libraries": libs,
    }
