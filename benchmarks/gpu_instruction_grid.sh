#!/usr/bin/env bash
# Issue 16's grid (bench_instruction.py) on one GPU node, as parallel processes.
#
# Phase 1 computes the reference decoder's signals (difficulty and LoRA gradients) once per
# dataset into a signal cache (loaded instead when the cache already holds them); phase 2 runs
# every cell from that cache: per seed, one process per dataset for the methods (Alpaca budgets
# 5 %, 1 %, 10 %; GSM8K 100 then 500 rows) and one per dataset for the full-data fit. A 135M
# decoder leaves a GPU mostly idle, waiting on kernel launches, so the processes share it.
# Each cell is appended to $RESULTS/cells.jsonl as it finishes.
#
# Measured on one H200 (2026-11-30, benchmarks/RESULTS.md): phase 1 took 144 s for both pools;
# with 9 processes sharing the GPU a LoRA step took 0.3-0.6 s, an Alpaca 5 % cell about 25 s
# and a GSM8K cell 70-130 s (exact match of 100 rows and the held-out loss included): the whole
# grid is about 2 hours of process time, more than one 15-minute lease; SEEDS, the budgets and
# EXTRA cut it down. Plain fp32 leaves the tensor cores idle: measure TF32 first
# (`bench_sft_precision.py --device cuda`, its bf16-matmul mode) and, if the loss moves far
# less than the methods differ, pass EXTRA=--fast-matmul (recorded in every cell).
#
#   SIGNAL_CACHE=dir RESULTS=dir [PY=python3] [DEADLINE=seconds] [EXTRA="--max-rows 24 ..."] \
#     bash benchmarks/gpu_instruction_grid.sh
#
# The prompt embeddings (kmeans, deita) should already be in SIGNAL_CACHE when the node has no
# sentence encoder: `bench_instruction.py --signals-only --methods kmeans --signal-cache DIR`.
# Data come from TEXTDISTILL_DATA_DIR, the decoder from `--model` (default smollm2).
set -uo pipefail
PY=${PY:-python3}
RESULTS=${RESULTS:?RESULTS: a folder for cells.jsonl, logs.tar and signals.tar}
CACHE=${SIGNAL_CACHE:?SIGNAL_CACHE: the signal cache folder}
DEADLINE=${DEADLINE:-480}   # seconds for both phases; cells still running then are stopped
EXTRA=${EXTRA:-}
SEEDS=${SEEDS:-0 1 2}
ALPACA_BUDGETS=${ALPACA_BUDGETS:-0.05 0.01 0.1}
GSM8K_BUDGETS=${GSM8K_BUDGETS:-100 500}
LOGS=$(mktemp -d)
BENCH="$PY benchmarks/bench_instruction.py --signal-cache $CACHE --eval-rows 0 \
  --cells-jsonl $RESULTS/cells.jsonl"
mkdir -p "$RESULTS" "$CACHE"
started=$(date +%s)
left() { local s=$(( DEADLINE - ($(date +%s) - started) )); echo $(( s > 1 ? s : 1 )); }

# shellcheck disable=SC2086
{
  timeout "$(left)" $BENCH --dataset alpaca --methods ifd less --signals-only --threads 4 \
    --gradient-rows 16 --eval-batch-size 32 $EXTRA >"$LOGS/signals-alpaca.log" 2>&1 &
  timeout "$(left)" $BENCH --dataset gsm8k --methods ifd less --signals-only --threads 4 \
    --gradient-rows 16 --eval-batch-size 32 $EXTRA >"$LOGS/signals-gsm8k.log" 2>&1 &
  wait
}
echo "signals: $(( $(date +%s) - started )) s"
tar -cf "$RESULTS/signals.tar" -C "$CACHE" --exclude 'embeddings-*' . \
  || echo "signals.tar: nothing to pack"

# Longest first: each seed's full-data fit has a process of its own, started before the rest.
# Methods run in this order within a process, so a deadline cuts the least informative last.
ALL="random ifd longest less deita kmeans loss"
GSM8K_EVAL=${GSM8K_EVAL:-500}   # a fixed seeded sample of the 1,319 test rows
# shellcheck disable=SC2086
for seed in $SEEDS; do
  timeout "$(left)" $BENCH --dataset alpaca --methods full --seeds $seed --threads 1 \
    --eval-batch-size 32 $EXTRA >"$LOGS/alpaca-full-$seed.log" 2>&1 &
  timeout "$(left)" $BENCH --dataset gsm8k --methods full --seeds $seed --threads 1 \
    --eval-batch-size 50 --eval-rows "$GSM8K_EVAL" --exact-match-rows 100 $EXTRA \
    >"$LOGS/gsm8k-full-$seed.log" 2>&1 &
done
for seed in $SEEDS; do
  timeout "$(left)" $BENCH --dataset alpaca --budgets $ALPACA_BUDGETS --methods $ALL \
    --seeds $seed --threads 1 --eval-batch-size 32 $EXTRA >"$LOGS/alpaca-$seed.log" 2>&1 &
  timeout "$(left)" $BENCH --dataset gsm8k --budgets $GSM8K_BUDGETS --methods $ALL \
    --seeds $seed --threads 1 --eval-batch-size 50 --eval-rows "$GSM8K_EVAL" \
    --exact-match-rows 100 $EXTRA >"$LOGS/gsm8k-$seed.log" 2>&1 &
done
wait
echo "cells: $(( $(date +%s) - started )) s, $(wc -l <"$RESULTS/cells.jsonl" 2>/dev/null || echo 0) cells"
tar -cf "$RESULTS/logs.tar" -C "$LOGS" .
