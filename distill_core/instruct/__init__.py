"""Instruction and reasoning data (prompt + response rows) for fine-tuning decoder LMs.

`rows` (schema, prompt composition, ids), `ingest` (Alpaca / GSM8K / any mapped
file into rows and rejects, with a seeded held-out split), `tokens` (rows into
ids with response-only labels), `losses` (per-row response loss), `sft` (the
`sft_lora` learner), `answers` (GSM8K final numbers), `signals` (reference-decoder
losses, IFD, projected LoRA gradients) and `methods` (rankings over the pool).
Heavy imports (torch, peft) happen where they are used, not here.
"""
