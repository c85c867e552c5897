#!/usr/bin/env bash
# The main job: set up, then export the five families to every edge format, verify each against its
# reference, and benchmark them on this device (bench_results/bench.{json,md,png}).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
edge pipeline "$@"
