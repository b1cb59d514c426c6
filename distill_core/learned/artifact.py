"""The `learn` stage's artifact: one row per synthetic example, tensors and decoded text together.

Each row carries the decoded text as a candidate row (content-hash
`example_id`, label, `parent_ids` = the real rows the example was initialised
from, the encoder's `embedding` of the text and the teacher's `teacher_prob`,
like a generated row), its stable `synthetic_id`, and the learned tensors as
fixed-size list columns: `embeds` [L·d], `mask` [L], `label_logits` and
`soft_label` [C], `attention_logits` [layers·heads·L] when learned, and the
learned `log_lr` / `lr`. The shapes sit in the schema metadata; each
replicate's metadata (family, steps, seeds) in the stage manifest's
`replicates`. `learned_sets` reads the tensors back as `SyntheticSet`s, exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.learned.decode import Decoded, decoded_table
from distill_core.learned.synthetic import TABLE_META_KEY, SyntheticSet

TENSOR_COLUMNS = ("embeds", "mask", "label_logits", "attention_logits")
STAGE = "learn"


def shape_of(synthetic: SyntheticSet) -> dict[str, Any]:
    """What every replicate shares: sequence length, width, classes, attention shape."""
    shape: dict[str, Any] = {"seq_len": int(synthetic.embeds.shape[1]),
                             "dim": int(synthetic.embeds.shape[2]),
                             "n_classes": synthetic.n_classes}
    if synthetic.attention_logits is not None:
        shape["attention_shape"] = list(synthetic.attention_logits.shape[1:3])
    return shape


def learned_table(synthetic: SyntheticSet, decoded: Sequence[Decoded], decoding: str,
                  replicate: int, seed: int, method: str, run_id: str, label_names: list[str],
                  embedding: np.ndarray, teacher_prob: np.ndarray) -> pa.Table:
    """One replicate's rows (see the module docstring)."""
    rows = decoded_table(synthetic, decoded, decoding, label_names)
    tensors = synthetic.to_table(label_names)
    n = rows.num_rows
    log_lr = float(synthetic.log_lr.detach())
    columns: dict[str, Any] = {
        "example_id": rows.column("example_id"),
        "replicate": pa.array([replicate] * n, pa.int32()),
        "seed": pa.array([seed] * n, pa.int64()),
        "synthetic_id": rows.column("synthetic_id"),
        "text": rows.column("text"), "text_pair": pa.nulls(n, pa.string()),
        "label": rows.column("label"), "label_id": rows.column("label_id"),
        "parent_ids": rows.column("parent_ids"),
        "method": pa.array([method] * n, pa.string()),
        "run_id": pa.array([run_id] * n, pa.string()),
        "decoding": rows.column("decoding"), "decode_score": rows.column("score"),
        "nearest_id": rows.column("nearest_id"),
        "soft_label": rows.column("soft_label"),
        "embedding": pa.array(list(np.asarray(embedding, np.float32)), pa.list_(pa.float32())),
        "teacher_prob": pa.array(list(np.asarray(teacher_prob, np.float32)),
                                 pa.list_(pa.float32())),
        "log_lr": pa.array([log_lr] * n, pa.float32()),
        "lr": pa.array([float(np.exp(log_lr))] * n, pa.float64()),
    }
    for name in TENSOR_COLUMNS:
        if name in tensors.column_names:
            columns[name] = tensors.column(name)
    table = pa.table(columns)
    return table.replace_schema_metadata(
        {TABLE_META_KEY: json.dumps(shape_of(synthetic)).encode()})


def learned_sets(table: pa.Table, replicates: list[dict[str, Any]]) -> dict[int, SyntheticSet]:
    """The synthetic set of each replicate, from the `learn` table and the manifest's
    `replicates` (their metadata)."""
    shape = json.loads(table.schema.metadata[TABLE_META_KEY])
    out = {}
    for replicate, info in enumerate(replicates):
        rows = table.filter(pc.equal(table.column("replicate"), replicate))
        if rows.num_rows == 0:
            continue
        log_lr = float(rows.column("log_lr")[0].as_py())
        columns = {"example_id": rows.column("synthetic_id"), "label": rows.column("label"),
                   "label_id": rows.column("label_id"), "parent_ids": rows.column("parent_ids")}
        columns.update({name: rows.column(name) for name in TENSOR_COLUMNS
                        if name in rows.column_names})
        meta = {**shape, "log_lr": log_lr, "meta": info.get("meta", {})}
        out[replicate] = SyntheticSet.from_table(pa.table(columns).replace_schema_metadata(
            {TABLE_META_KEY: json.dumps(meta).encode()}))
    return out


def read_learned(store: Any) -> dict[int, SyntheticSet] | None:
    """The run's synthetic sets per replicate (None when the run has no `learn` stage)."""
    manifest = store.manifest(STAGE)
    if manifest is None:
        return None
    return learned_sets(store.read(STAGE), manifest.get("replicates") or [])
