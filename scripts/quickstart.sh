#!/usr/bin/env bash
# Set up (if needed) and run the quickstart distillation: GLUE SST-2, 10 per class, auto.
# Online, SST-2 comes from the Hugging Face hub; offline, set TEXTDISTILL_DATA_DIR to a
# folder holding sst2_glue/train.tsv and sst2_glue/dev.tsv. Extra arguments go to `run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/textdistill run configs/quickstart.yaml "$@"
