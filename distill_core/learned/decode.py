"""Three ways from synthetic embeddings back to text, each row keeping its lineage.

- `nearest_tokens`: per unmasked position, the vocabulary token whose word
  embedding has the highest cosine to the learned embedding; positions whose
  nearest token is a special token ([CLS], [SEP], [PAD]...) are dropped, the
  rest go through `tokenizer.decode`.
- `nearest_sentences`: per synthetic example, the real row of its class whose
  encoder embedding is nearest (cosine) to the synthetic example's own pooled
  encoder output; returns the real `example_id`.
- `matched_sentences`: per synthetic example, the real row of its class that, put in
  its place, gives the learner trained on the set (one step from a zero head with the
  learned lr and soft labels: the static meta-matching protocol) the lowest
  cross-entropy on the training pool: the distillation's own outer loss, so the text
  keeps what was learned rather than what the example started from (the nearest
  sentence is, measured, almost always the k-means prototype it was initialised from).
  Coordinate descent from the nearest sentences over a shortlist of each example's
  nearest real rows of its class.
- `decoder_regularised`: a beam search over the `top_k` nearest non-special
  tokens per position, scoring a prefix by Σ cosine + λ · log p_LM(prefix
  text) under a causal LM (SmolLM2 by default in the pipeline), so the text
  stays near the learned embeddings while reading fluently.
`decoded_table` turns any of them into rows with `parent_ids` = the rows the
synthetic example was initialised from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from distill_core.ingest.normalize import example_id
from distill_core.learned.synthetic import SyntheticSet


@dataclass
class Decoded:
    """One synthetic example as text: the token ids chosen, the text, and its score."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    score: float = 0.0
    source_id: str | None = None  # the real row, for nearest-sentence decoding


def _cosines(embeds: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """[L, V] cosine of each position's embedding to every vocabulary row."""
    a = torch.nn.functional.normalize(embeds.detach().float(), dim=-1)
    b = torch.nn.functional.normalize(table.detach().float(), dim=-1)
    return a @ b.T


def _special_ids(tokenizer: Any) -> torch.Tensor:
    return torch.as_tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)


def nearest_tokens(embeds: torch.Tensor, mask: torch.Tensor, word_embeddings: torch.Tensor,
                   tokenizer: Any) -> list[Decoded]:
    """Nearest vocabulary token per unmasked position (special tokens dropped)."""
    special = set(_special_ids(tokenizer).tolist())
    out = []
    for row, keep in zip(embeds, mask, strict=True):
        cos = _cosines(row[keep.bool()], word_embeddings)
        best = cos.max(-1)
        ids = [int(i) for i in best.indices if int(i) not in special]
        score = float(sum(float(v) for v, i in zip(best.values, best.indices, strict=True)
                          if int(i) not in special))
        out.append(Decoded(tokenizer.decode(ids), ids, score))
    return out


def nearest_sentences(synthetic_features: torch.Tensor, labels: torch.Tensor,
                      real_features: torch.Tensor, real_labels: torch.Tensor,
                      real_ids: Sequence[str], real_texts: Sequence[str]) -> list[Decoded]:
    """Per synthetic example, the most similar real row of the same class (cosine)."""
    a = torch.nn.functional.normalize(synthetic_features.detach().float(), dim=-1)
    b = torch.nn.functional.normalize(real_features.detach().float(), dim=-1)
    cos = a @ b.T
    same = labels[:, None] == real_labels[None, :]
    cos = cos.masked_fill(~same, -2.0)
    best = cos.max(-1)
    return [Decoded(real_texts[int(i)], [], float(v), real_ids[int(i)])
            for v, i in zip(best.values, best.indices, strict=True)]


def one_step_head(features: torch.Tensor, soft_labels: torch.Tensor, lr: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [C, d], bias [C]) after one gradient step of soft-label cross-entropy, mean over
    the m rows, from a zero head: at zero every row's prediction is uniform, so the step is
    lr / m · Σ (soft label − 1/C) ⊗ feature (and Σ (soft label − 1/C) for the bias), exactly
    what `inner_train` computes for this protocol (tests/learned/test_decode.py checks it)."""
    m, classes = soft_labels.shape
    coefficients = (soft_labels - 1.0 / classes) * (lr / m)  # [m, C]
    return coefficients.T @ features, coefficients.sum(0)


def matched_sentences(synthetic_features: torch.Tensor, labels: torch.Tensor,
                      soft_labels: torch.Tensor, lr: torch.Tensor,
                      real_features: torch.Tensor, real_labels: torch.Tensor,
                      real_ids: Sequence[str], real_texts: Sequence[str],
                      shortlist: int = 256, passes: int = 2, chunk: int = 64
                      ) -> list[Decoded]:
    """Per synthetic example, a real row of its class chosen to minimise the one-step
    learner's mean cross-entropy on every real row (see the module docstring); `score` is
    the loss the final set reaches. No row serves two examples (a repeat would be one row
    to the filter's dedup). Deterministic; ties keep the current row. Candidates are tried
    `chunk` at a time, fewer on a large pool (at most ~16M logits in memory)."""
    with torch.no_grad():
        features = real_features.detach().float()
        targets = real_labels.long()
        soft, rate = soft_labels.detach().float(), lr.detach().float()
        m, classes = soft.shape
        nearest = nearest_sentences(synthetic_features, labels, features, targets, real_ids,
                                    real_texts)
        index = {e: i for i, e in enumerate(real_ids)}
        chosen = [index[d.source_id] for d in nearest]
        a = torch.nn.functional.normalize(synthetic_features.detach().float(), dim=-1)
        b = torch.nn.functional.normalize(features, dim=-1)
        shortlists = []
        for i in range(m):
            cos = (b @ a[i]).masked_fill(targets != int(labels[i]), -2.0)
            size = min(shortlist, int((targets == int(labels[i])).sum()))
            shortlists.append(cos.topk(size).indices)
        coefficients = (soft - 1.0 / classes) * (rate / m)  # [m, C]: row i's share of the head

        def loss_of(logits: torch.Tensor) -> torch.Tensor:  # [..., N, C] -> [...]
            return -torch.log_softmax(logits, -1).gather(
                -1, targets.expand(*logits.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)

        weight, bias = one_step_head(features[chosen], soft, rate)
        logits = features @ weight.T + bias  # [N, C]
        chunk = max(1, min(chunk, 2**24 // max(1, len(features) * classes)))
        for _ in range(passes):
            moved = False
            for i in range(m):
                others = set(chosen[:i] + chosen[i + 1:])
                without = logits - (features @ features[chosen[i]])[:, None] * coefficients[i]
                best_row = chosen[i]
                best = float(loss_of(logits)) if best_row not in others else float("inf")
                for start in range(0, len(shortlists[i]), chunk):
                    rows = shortlists[i][start:start + chunk]
                    trial = (without[None] + (features[rows] @ features.T)[:, :, None]
                             * coefficients[i])  # [R, N, C]
                    losses = loss_of(trial)
                    losses[torch.as_tensor([int(r) in others for r in rows])] = float("inf")
                    j = int(losses.argmin())
                    if float(losses[j]) < best - 1e-7:
                        best_row, best = int(rows[j]), float(losses[j])
                if best_row != chosen[i]:
                    chosen[i], moved = best_row, True
                    logits = without + (features @ features[best_row])[:, None] * coefficients[i]
            if not moved:
                break
        final = float(loss_of(logits))
    return [Decoded(real_texts[r], [], final, real_ids[r]) for r in chosen]


def sequence_logprobs(lm: Any, lm_tokenizer: Any, texts: Sequence[str]) -> torch.Tensor:
    """Σ log p(token | prefix) of each text under a causal LM, after its BOS (else EOS, else
    CLS) token."""
    start = next(t for t in (lm_tokenizer.bos_token_id, lm_tokenizer.eos_token_id,
                             getattr(lm_tokenizer, "cls_token_id", None), 0) if t is not None)
    rows = [[start] + lm_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(len(r) for r in rows)
    pad = lm_tokenizer.pad_token_id if lm_tokenizer.pad_token_id is not None else start
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.as_tensor(r)
        attention[i, :len(r)] = 1
    device = next(lm.parameters()).device
    with torch.no_grad():
        logits = lm(input_ids=ids.to(device), attention_mask=attention.to(device)).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1).cpu()
    token = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (token * attention[:, 1:]).sum(-1)


def decoder_regularised(embeds: torch.Tensor, mask: torch.Tensor,
                        word_embeddings: torch.Tensor, tokenizer: Any, lm: Any, lm_tokenizer: Any,
                        weight: float = 0.1, top_k: int = 5, beam: int = 4) -> list[Decoded]:
    """Beam search per example over the `top_k` nearest tokens of each kept position.

    A position is kept when its nearest token overall is not special (as in
    `nearest_tokens`); a prefix scores Σ cosine + `weight` · log p_LM(decoded prefix).
    """
    special = _special_ids(tokenizer)
    out = []
    for row, keep in zip(embeds, mask, strict=True):
        cos = _cosines(row[keep.bool()], word_embeddings)
        kept = ~torch.isin(cos.argmax(-1), special)
        cos = cos[kept]
        cos[:, special] = -2.0
        top = cos.topk(min(top_k, cos.shape[1]), dim=-1)
        beams: list[tuple[list[int], float, float]] = [([], 0.0, 0.0)]  # ids, Σcos, score
        for values, indices in zip(top.values, top.indices, strict=True):
            options = [(ids + [int(i)], c + float(v)) for ids, c, _ in beams
                       for v, i in zip(values, indices, strict=True)]
            if weight:
                logp = sequence_logprobs(lm, lm_tokenizer,
                                         [tokenizer.decode(ids) for ids, _ in options])
                scored = [(ids, c, c + weight * float(lp))
                          for (ids, c), lp in zip(options, logp, strict=True)]
            else:
                scored = [(ids, c, c) for ids, c in options]
            order = np.argsort([-s for _, _, s in scored], kind="stable")[:beam]
            beams = [scored[i] for i in order]
        ids, _, score = beams[0]
        out.append(Decoded(tokenizer.decode(ids), ids, score))
    return out


def decoded_table(synthetic: SyntheticSet, decoded: Sequence[Decoded], decoding: str,
                  label_names: list[str] | None = None) -> pa.Table:
    """Rows of decoded text: content-hash `example_id`, label, `parent_ids` (the synthetic
    example's init rows), the synthetic example's id, the decoding and its score."""
    names = label_names or synthetic.meta.get("label_names")
    soft = synthetic.soft_labels().detach().tolist()
    rows = []
    for index, item in enumerate(decoded):
        label_id = int(synthetic.labels[index])
        label = names[label_id] if names else str(label_id)
        rows.append({"example_id": example_id(item.text, label), "text": item.text,
                     "label": label, "label_id": label_id,
                     "parent_ids": list(synthetic.parent_ids[index]),
                     "synthetic_id": synthetic.example_ids[index], "decoding": decoding,
                     "score": item.score, "nearest_id": item.source_id,
                     "soft_label": soft[index]})
    schema = pa.schema([("example_id", pa.string()), ("text", pa.string()),
                        ("label", pa.string()), ("label_id", pa.int32()),
                        ("parent_ids", pa.list_(pa.string())), ("synthetic_id", pa.string()),
                        ("decoding", pa.string()), ("score", pa.float64()),
                        ("nearest_id", pa.string()), ("soft_label", pa.list_(pa.float32()))])
    return pa.Table.from_pylist(rows, schema=schema)
