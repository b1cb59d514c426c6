"""The synthetic set of learned distillation: every tensor the outer loop optimises.

Per example: `embeds` [n, L, d] (position-free input embeddings fed as
`inputs_embeds`), a fixed attention `mask` [n, L], a hard class `labels` [n],
learnable soft-label logits [n, C], optional learnable attention-label logits
[n, layers, heads, L] (the target attention of the first token, Maekawa et al.
2023) and one learnable learning rate (stored as its log, so it stays
positive). Lineage: `parent_ids` (the real rows an example was initialised
from) and a stable `example_id`. Stored as a dict of tensors plus metadata, or
as an Arrow table with one row per example (fixed-size list columns).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from distill_core.errors import ArtifactError
from distill_core.hashing import stable_hash, stream_sha256

MASKED = -1e9  # finite, so that 0 * log p stays 0 and gradients stay finite
TABLE_META_KEY = b"textdistill.learned"


def synthetic_id(seed: int, label: int, index: int) -> str:
    """Stable id of the `index`-th synthetic example of class `label` in a run seeded `seed`."""
    return stable_hash({"kind": "learned", "seed": int(seed), "label": int(label),
                        "index": int(index)})[:16]


def _sidecar(path: Path) -> Path:
    return path.with_name(f"{path.name}.sha256")


def save_atomically(value: Any, path: str | Path) -> Path:
    """`torch.save(value)` to a temporary name beside `path`, then renamed, with the file's
    sha256 in `<path>.sha256` (renamed into place last): a crash never leaves half a file
    under `path`, and `load_verified` reads back only what the sidecar vouches for."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp_sidecar = path.with_name(f".{path.name}.sha256.tmp-{os.getpid()}")
    torch.save(value, tmp)
    with tmp.open("rb") as handle:
        tmp_sidecar.write_text(stream_sha256(handle), encoding="utf-8")
    os.replace(tmp, path)
    os.replace(tmp_sidecar, _sidecar(path))
    return path


def load_verified(path: str | Path) -> Any | None:
    """What `save_atomically` wrote at `path`; None when there is no file, no sidecar, or the
    file's sha256 differs from the sidecar's (changed or torn since it was saved)."""
    path = Path(path)
    sidecar = _sidecar(path)
    if not path.is_file() or not sidecar.is_file():
        return None
    with path.open("rb") as handle:
        if stream_sha256(handle) != sidecar.read_text(encoding="utf-8").strip():
            return None
    return torch.load(path, map_location="cpu", weights_only=False)


@dataclass
class SyntheticBatch:
    """The tensors the inner step trains on (a view of some rows of a `SyntheticSet`)."""

    embeds: torch.Tensor  # [b, L, d]
    mask: torch.Tensor  # [b, L]
    soft_labels: torch.Tensor  # [b, C]
    attention: torch.Tensor | None  # target distributions [b, layers, heads, L]
    labels: torch.Tensor  # [b]


class SyntheticSet(torch.nn.Module):
    """Learnable synthetic examples for the encoder learner (see the module docstring)."""

    def __init__(self, embeds: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                 label_logits: torch.Tensor, attention_logits: torch.Tensor | None,
                 lr: float, parent_ids: list[list[str]], example_ids: list[str],
                 meta: dict[str, Any] | None = None, log_lr: torch.Tensor | None = None
                 ) -> None:
        super().__init__()
        n = embeds.shape[0]
        if not (len(mask) == len(labels) == len(label_logits) == len(parent_ids)
                == len(example_ids) == n):
            raise ValueError("synthetic tensors and lineage must have one entry per example")
        device = embeds.device
        self.embeds = torch.nn.Parameter(embeds.float())
        self.register_buffer("mask", mask.long().to(device))
        self.register_buffer("labels", labels.long().to(device))
        self.label_logits = torch.nn.Parameter(label_logits.float().to(device))
        self.attention_logits = (None if attention_logits is None
                                 else torch.nn.Parameter(attention_logits.float().to(device)))
        value = torch.tensor(float(np.log(lr))) if log_lr is None else log_lr.float()
        self.log_lr = torch.nn.Parameter(value.reshape(()).to(device))
        self.parent_ids = [list(p) for p in parent_ids]
        self.example_ids = list(example_ids)
        self.meta = dict(meta or {})

    def __len__(self) -> int:
        return int(self.embeds.shape[0])

    @property
    def lr(self) -> torch.Tensor:
        return self.log_lr.exp()

    @property
    def n_classes(self) -> int:
        return int(self.label_logits.shape[1])

    def soft_labels(self) -> torch.Tensor:
        return torch.softmax(self.label_logits, dim=-1)

    def attention_targets(self) -> torch.Tensor | None:
        """Target first-token attention [n, layers, heads, L]: softmax over unmasked keys."""
        if self.attention_logits is None:
            return None
        keep = self.mask[:, None, None, :].bool()
        return torch.softmax(self.attention_logits.masked_fill(~keep, MASKED), dim=-1)

    def batch(self, rows: torch.Tensor | None = None) -> SyntheticBatch:
        """Rows `rows` (all when None) as the inner step's input; gradients flow back here."""
        index = torch.arange(len(self), device=self.embeds.device) if rows is None else rows
        attention = self.attention_targets()
        return SyntheticBatch(self.embeds[index], self.mask[index], self.soft_labels()[index],
                              None if attention is None else attention[index],
                              self.labels[index])

    def class_rows(self, label: int) -> torch.Tensor:
        return torch.nonzero(self.labels == label).flatten()

    # -- dict of tensors -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Detached copies of every tensor plus lineage and metadata (torch.save-able)."""
        return {
            "embeds": self.embeds.detach().clone(), "mask": self.mask.clone(),
            "labels": self.labels.clone(), "label_logits": self.label_logits.detach().clone(),
            "attention_logits": (None if self.attention_logits is None
                                 else self.attention_logits.detach().clone()),
            "log_lr": self.log_lr.detach().clone(), "parent_ids": self.parent_ids,
            "example_ids": self.example_ids, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyntheticSet:
        return cls(data["embeds"], data["mask"], data["labels"], data["label_logits"],
                   data["attention_logits"], 1.0, data["parent_ids"], data["example_ids"],
                   data["meta"], log_lr=data["log_lr"])

    def save(self, path: str | Path) -> Path:
        """torch.save of `to_dict()`, written to a temporary name then renamed."""
        return save_atomically(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> SyntheticSet:
        """A set `save` wrote, after checking it against its sha256 sidecar."""
        data = load_verified(path)
        if data is None:
            raise ArtifactError(f"{path}: missing, or changed since it was saved (sha256 "
                                "differs from its .sha256 sidecar); save the set again")
        return cls.from_dict(data)

    # -- Arrow table -----------------------------------------------------------------------
    def cpu_view(self) -> dict[str, np.ndarray]:
        """The tensors as numpy arrays on the CPU."""
        out = {"embeds": self.embeds, "mask": self.mask, "soft_label": self.soft_labels(),
               "label_logits": self.label_logits, "attention_logits": self.attention_logits}
        return {k: v.detach().cpu().numpy() for k, v in out.items() if v is not None}

    def to_table(self, label_names: list[str] | None = None) -> pa.Table:
        """One row per example: ids, label, lineage and the tensors as fixed-size lists."""
        n, length, dim = self.embeds.shape
        names = label_names or self.meta.get("label_names")
        labels = self.labels.tolist()
        cpu = self.cpu_view()

        def fixed(array: np.ndarray, value_type: pa.DataType) -> pa.FixedSizeListArray:
            flat = array.reshape(n, -1)
            return pa.FixedSizeListArray.from_arrays(
                pa.array(flat.reshape(-1), type=value_type), flat.shape[1])

        columns = {
            "example_id": pa.array(self.example_ids, pa.string()),
            "label": pa.array([names[i] if names else str(i) for i in labels], pa.string()),
            "label_id": pa.array(labels, pa.int32()),
            "parent_ids": pa.array(self.parent_ids, pa.list_(pa.string())),
            "embeds": fixed(cpu["embeds"], pa.float32()),
            "mask": fixed(cpu["mask"].astype(np.int8), pa.int8()),
            "soft_label": fixed(cpu["soft_label"], pa.float32()),
            "label_logits": fixed(cpu["label_logits"], pa.float32()),
        }
        shape: dict[str, Any] = {"seq_len": length, "dim": dim, "n_classes": self.n_classes,
                                 "log_lr": float(self.log_lr.detach()), "meta": self.meta}
        if self.attention_logits is not None:
            columns["attention_logits"] = fixed(cpu["attention_logits"], pa.float32())
            shape["attention_shape"] = list(self.attention_logits.shape[1:3])
        table = pa.table(columns)
        return table.replace_schema_metadata({TABLE_META_KEY: json.dumps(shape).encode()})

    @classmethod
    def from_table(cls, table: pa.Table) -> SyntheticSet:
        """The set written by `to_table` (exact float32 round trip)."""
        shape = json.loads(table.schema.metadata[TABLE_META_KEY])
        n = table.num_rows

        def unfixed(name: str, dtype: type) -> torch.Tensor:
            column = table.column(name).combine_chunks()
            return torch.from_numpy(column.flatten().to_numpy(zero_copy_only=False)
                                    .astype(dtype).reshape(n, -1))

        embeds = unfixed("embeds", np.float32).reshape(n, shape["seq_len"], shape["dim"])
        attention = None
        if "attention_logits" in table.column_names:
            layers, heads = shape["attention_shape"]
            attention = unfixed("attention_logits", np.float32).reshape(
                n, layers, heads, shape["seq_len"])
        return cls(embeds, unfixed("mask", np.int64), torch.tensor(
            table.column("label_id").to_pylist(), dtype=torch.long),
            unfixed("label_logits", np.float32), attention, 1.0,
            table.column("parent_ids").to_pylist(), table.column("example_id").to_pylist(),
            shape["meta"], log_lr=torch.tensor(shape["log_lr"], dtype=torch.float32))
