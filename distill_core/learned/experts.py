"""Expert trajectories for trajectory matching: the learner fine-tuned on real data, saved once.

`train_experts` trains the learner (its trainable encoder weights and a head
from `head_seed`) with plain SGD on real batches and saves the weights every
`interval` steps as `ckpt_<t>.safetensors` in one folder (`checkpoints` + 1
files, the start included), each written to a temporary name and renamed, the
`manifest.json` last. The manifest's key covers the settings, the encoder's
weights and the real rows, so a second call with the same inputs returns the
saved files without training, and any change retrains.
Reference: Cazenavette et al., Dataset Distillation by Matching Training
Trajectories, CVPR 2022.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from distill_core.artifacts.parts import file_sha256, part_records
from distill_core.hashing import stable_hash
from distill_core.learned.functional import FunctionalLearner, Params
from distill_core.learned.real import RealData

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExpertConfig:
    """`checkpoints` saved after the start, `interval` SGD steps apart, at learning rate `lr`;
    `seed` draws the real batches, `head_seed` the head."""

    checkpoints: int = 10
    interval: int = 10
    lr: float = 1e-2
    seed: int = 0
    head_seed: int = 0
    batch_size: int = 32


def learner_fingerprint(learner: FunctionalLearner) -> str:
    """sha256 over the encoder's weights, the trainable names and the head shape."""
    digest = hashlib.sha256()
    for name, value in learner.encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().contiguous().cpu().numpy().tobytes())
    digest.update(json.dumps([learner.trainable, learner.n_classes, learner.pooling]).encode())
    return digest.hexdigest()


def real_data_fingerprint(real: RealData) -> str:
    """sha256 over what the experts train on: the rows' ids, their token ids and masks (so
    the truncation length and the tokenizer) and their label ids (so the label order)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(real.example_ids).encode())
    for tensor in (real.input_ids, real.attention_mask, real.labels):
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def expert_key(learner: FunctionalLearner, real: RealData, config: ExpertConfig) -> str:
    return stable_hash({"config": dataclasses.asdict(config),
                        "learner": learner_fingerprint(learner),
                        "rows": real_data_fingerprint(real)})


def _write(params: Params, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file({k: v.detach().cpu().contiguous() for k, v in params.items()}, str(tmp))
    os.replace(tmp, path)


def cached_experts(folder: Path, key: str) -> list[Path] | None:
    """The checkpoint files of a finished trajectory with this key whose sizes and sha256
    match its manifest, else None (then the trajectory is trained again)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return None
    try:
        saved = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get("files", []), list):
        return None  # not a record this version wrote: trained again
    files = [folder / name for name in saved.get("files", [])]
    records = saved.get("parts") or {}
    if saved.get("key") != key or not files:
        return None
    for path in files:  # reuse only checkpoints that still match what the manifest recorded
        record = records.get(path.name) or {}
        if (not path.is_file() or path.stat().st_size != record.get("bytes")
                or file_sha256(path) != record.get("sha256")):
            return None
    return files


def train_experts(learner: FunctionalLearner, real: RealData, folder: str | Path,
                  config: ExpertConfig) -> list[Path]:
    """The trajectory's checkpoint files in order (trained now, or found in `folder`)."""
    folder = Path(folder)
    key = expert_key(learner, real, config)
    if (found := cached_experts(folder, key)) is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    data = dataclasses.replace(real, seed=config.seed, batch_size=config.batch_size)
    params = learner.initial_params(config.head_seed)
    files = [folder / f"ckpt_{0:04d}.safetensors"]
    _write(params, files[0])
    step = 0
    for checkpoint in range(1, config.checkpoints + 1):
        for _ in range(config.interval):
            batch = data.batch(step)
            logits = learner(params, batch.attention_mask, input_ids=batch.input_ids).logits
            loss = torch.nn.functional.cross_entropy(logits, batch.labels)
            grads = torch.autograd.grad(loss, list(params.values()))
            params = {k: (v - config.lr * g).detach().requires_grad_(True)
                      for (k, v), g in zip(params.items(), grads, strict=True)}
            step += 1
        files.append(folder / f"ckpt_{checkpoint:04d}.safetensors")
        _write(params, files[-1])
    manifest = folder / MANIFEST
    tmp = manifest.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"key": key, "files": [f.name for f in files],
                               "parts": part_records(folder, [f.name for f in files]),
                               "config": dataclasses.asdict(config)}, indent=2))
    os.replace(tmp, manifest)
    return files


def load_checkpoint(path: str | Path) -> Params:
    return load_file(str(path))
