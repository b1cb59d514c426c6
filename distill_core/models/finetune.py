"""Fine-tune a pretrained encoder with a fresh classifier head, and read it out.

The published protocol of the text-distillation literature (DiLM, CondenseLM):
AdamW, lr 1e-4, batch 64, 200 steps, cosine schedule with warm-up ratio 0.5,
weight decay 0.01, a fresh linear head on the mean-pooled encoder output.
Pairs use the tokenizer's pair input. Targets can be hard labels or soft
distributions (cross-entropy to the distribution), with optional per-example
weights. Used as a teacher here and as a learner by the evaluation harness.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distill_core.artifacts.parts import temp_suffix
from distill_core.artifacts.sealed import seal, seal_problem
from distill_core.artifacts.stage_writer import drop_folder
from distill_core.errors import ArtifactError
from distill_core.hub import require_hub
from distill_core.signals.models import (
    model_load_error,
    require_local_folder,
    resolve_model_path,
)


@dataclass
class FinetuneSettings:
    steps: int = 200
    batch_size: int = 64
    lr: float = 1e-4
    warmup_ratio: float = 0.5
    weight_decay: float = 0.01
    max_length: int = 128
    seed: int = 0


@dataclass
class FinetunedClassifier:
    """The fine-tuned encoder, its head and tokenizer, and the training losses per step."""

    model: object
    tokenizer: object
    device: str
    losses: list[float] = field(default_factory=list)

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Logits [n, C] and the head's input features (mean-pooled) [n, d]."""
        import torch

        self.model.eval()
        order = np.argsort([len(t) for t in texts], kind="stable")
        logits_out = features_out = None
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                index = order[start:start + batch_size]
                batch = _encode(self.tokenizer, [texts[i] for i in index],
                                None if pairs is None else [pairs[i] for i in index],
                                self.model.max_length, self.device)
                logits, pooled = self.model(batch)
                if logits_out is None:
                    logits_out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
                    features_out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
                logits_out[index] = logits.float().cpu().numpy()
                features_out[index] = pooled.float().cpu().numpy()
        assert logits_out is not None and features_out is not None
        return logits_out, features_out


    def save(self, folder: str | Path) -> Path:
        """Encoder and tokenizer (safetensors) plus the head, so workers can load it."""
        import json

        from safetensors.torch import save_file

        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{folder.name}.{temp_suffix('tmp')}")
        try:  # written aside, sealed, then renamed: a reader sees all of it or nothing
            self.model.encoder.save_pretrained(tmp / "encoder", safe_serialization=True)
            self.tokenizer.save_pretrained(tmp / "encoder")
            head = {k: v.detach().cpu().contiguous()
                    for k, v in self.model.head.state_dict().items()}
            save_file(head, str(tmp / "head.safetensors"))
            (tmp / "classifier.json").write_text(json.dumps(
                {"n_classes": int(self.model.head.out_features),
                 "max_length": int(self.model.max_length)}))
            seal(tmp)
            if folder.exists() and seal_problem(folder) is not None:  # damaged or unsealed
                drop_folder(folder)
            try:
                tmp.rename(folder)
            except OSError:  # another process saved the same teacher first: keep that one
                if seal_problem(folder) is not None:
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder


def load_finetuned(folder: str | Path, device: str | None = None) -> FinetunedClassifier:
    """A classifier saved by `FinetunedClassifier.save` (safetensors only, no remote code)."""
    import json

    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    folder = Path(folder)
    if (problem := seal_problem(folder)) is not None:
        raise ArtifactError(f"the fine-tuned teacher cannot be used: {problem}; delete the "
                            "run's teacher folder (and its entry under the runs folder's "
                            ".cache/teacher) so the next run trains it again")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    meta = json.loads((folder / "classifier.json").read_text())
    encoder = AutoModel.from_pretrained(folder / "encoder", use_safetensors=True)
    model = _classifier_module(encoder.float(), int(encoder.config.hidden_size),
                               meta["n_classes"], meta["max_length"])
    model.head.load_state_dict(load_file(str(folder / "head.safetensors")))
    tokenizer = AutoTokenizer.from_pretrained(folder / "encoder")
    return FinetunedClassifier(model=model.to(device).eval(), tokenizer=tokenizer, device=device)


def _encode(tokenizer, texts, pairs, max_length: int, device: str) -> dict:
    batch = tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=True,
                      max_length=max_length, padding=True, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


def _classifier_module(encoder, hidden: int, n_classes: int, max_length: int):
    import torch

    class EncoderClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(hidden, n_classes)
            self.max_length = max_length

        def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
            hidden_states = self.encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden_states.dtype)
            pooled = (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return self.head(pooled), pooled

    return EncoderClassifier()


def load_pretrained(model_name: str, trust_remote_code: bool = False):
    """(encoder, tokenizer) of a pretrained encoder by hub name or local folder."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(model_name)
    require_local_folder(model_name)
    if not Path(path).is_dir():
        require_hub(f"model {model_name!r}", "Offline, use a local model folder.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        encoder = AutoModel.from_pretrained(path, use_safetensors=True,
                                            trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        if (error := model_load_error(model_name, path, exc)) is None:
            raise
        raise error from exc
    return encoder, tokenizer


@dataclass
class LabelledTexts:
    """What a classifier trains on: texts (and pair texts), targets (label ids [n], or soft
    targets [n, C]) and optional per-example weights."""

    texts: Sequence[str]
    pairs: Sequence[str] | None
    targets: np.ndarray
    weights: np.ndarray | None = None


def finetune_classifier(model_name: str, data: LabelledTexts, n_classes: int,
                        settings: FinetuneSettings, trust_remote_code: bool = False,
                        device: str | None = None,
                        progress: Callable[[int, int], None] | None = None
                        ) -> FinetunedClassifier:
    """Fine-tune `model_name` on `data` with a fresh head."""
    import torch

    torch.manual_seed(settings.seed)
    encoder, tokenizer = load_pretrained(model_name, trust_remote_code)
    return train_classifier(encoder, tokenizer, data, n_classes, settings, device, progress)


def train_classifier(encoder, tokenizer, data: LabelledTexts, n_classes: int,
                     settings: FinetuneSettings, device: str | None = None,
                     progress: Callable[[int, int], None] | None = None
                     ) -> FinetunedClassifier:
    """Train `encoder` with a fresh linear head under `settings` (the published protocol).

    Hard targets use cross-entropy; soft targets [n, C] the cross-entropy to the
    distribution (KL to the soft labels plus a constant), both weighted per example.
    """
    import torch
    from transformers import get_cosine_schedule_with_warmup

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    texts, pairs, targets, sample_weight = data.texts, data.pairs, data.targets, data.weights
    torch.manual_seed(settings.seed)
    model = _classifier_module(encoder.float(), int(encoder.config.hidden_size), n_classes,
                               settings.max_length).to(device)
    soft = targets.ndim == 2
    target_tensor = torch.as_tensor(np.asarray(targets, dtype=np.float32 if soft else np.int64))
    weights = torch.as_tensor(np.ones(len(texts)) if sample_weight is None
                              else np.array(sample_weight, dtype=np.float32), dtype=torch.float32)
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias")
             and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)
    schedule = get_cosine_schedule_with_warmup(
        optimizer, int(settings.warmup_ratio * settings.steps), settings.steps)
    rng = np.random.default_rng(settings.seed)
    result = FinetunedClassifier(model=model, tokenizer=tokenizer, device=device)
    model.train()
    order = rng.permutation(len(texts))
    cursor = 0
    for step in range(settings.steps):
        if cursor + settings.batch_size > len(order):
            order, cursor = rng.permutation(len(texts)), 0
        index = order[cursor:cursor + settings.batch_size]
        cursor += settings.batch_size
        batch = _encode(tokenizer, [texts[i] for i in index],
                        None if pairs is None else [pairs[i] for i in index],
                        settings.max_length, device)
        logits, _ = model(batch)
        y = target_tensor[index].to(device)
        per_example = (-(y * torch.log_softmax(logits, dim=1)).sum(1) if soft
                       else torch.nn.functional.cross_entropy(logits, y, reduction="none"))
        w = weights[index].to(device)
        loss = (per_example * w).sum() / w.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        result.losses.append(float(loss.detach()))
        if progress is not None:
            progress(step + 1, settings.steps)
    return result
