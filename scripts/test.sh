#!/usr/bin/env bash
# Set up, then run the whole test suite.  pytest's "no tests collected" (exit 5) counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
. .venv/bin/activate
ruff check . || exit 1
python -m pytest -q --durations=15 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "edge: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$rc"
