#!/usr/bin/env bash
# Set up (if needed), lint, and run the whole test suite on real data slices.
# Tests read the shared datasets from ../shared/datasets (or $TEXTDISTILL_TEST_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# One OpenMP thread per process: two xdist workers share 2 cores, and torch's default of a
# thread per core in each worker oversubscribed them (benchmarks/bench_test_threads.py: 2.11x
# on the torch-heavy test files, side by side).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
.venv/bin/ruff check .
# Two workers, one test file each at a time (a file's module-scoped Ray or server fixtures stay
# in one process), the Ray files one after another on one worker and the longest files first
# (tests/conftest.py's scheduler); `scripts/test.sh -n 4 ...` overrides the count.
.venv/bin/python -m pytest -q --durations=10 -n 2 --dist loadfile "$@"
