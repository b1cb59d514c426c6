"""From model answers to candidates: parse, then choose the budget with reasons for the rest.

`answer_lines` turns each answer into its candidate lines (a `llm_synth` answer
holds up to `per_answer` examples, a `dilm` sample one); a line that is not a
usable example is a reject with its reason (the last line of an answer that ran
out of tokens is `truncated`), and so is a line the same
replicate already produced (`repeated_generation`), so example ids are unique
per replicate. `choose_generated` then picks per replicate: `llm_synth` the
best of n per slot (`choose_candidates`), `dilm` one candidate per k-means
cluster of each class's teacher-consistent candidates, nearest the centroid or,
with `grad_rank`, the one whose classifier-layer gradient best matches the real
class's. Every line ends as exactly one candidate or one reject.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from distill_core.artifacts.schemas import SELECTION_SCHEMA, rejects_table
from distill_core.config import GenerateSection
from distill_core.generate.dilm import parse_sample
from distill_core.generate.llm_synth import choose_candidates
from distill_core.generate.plan import PromptInfo, PromptPlan
from distill_core.generate.prompts import ParsedOutput, answer_list, parse_generation
from distill_core.ingest.normalize import example_id
from distill_core.methods.options import DilmOptions
from distill_core.seeds import derive_seed
from distill_core.synthesize.stage import CandidateSet

GENERATED_SCHEMA = pa.schema([
    ("example_id", pa.string()), ("replicate", pa.int32()), ("label", pa.string()),
    ("label_id", pa.int32()), ("text", pa.string()), ("text_pair", pa.string()),
    ("parent_ids", pa.list_(pa.string())), ("method", pa.string()), ("prompt_id", pa.string()),
    ("slot", pa.int32()), ("sample", pa.int32()), ("seed", pa.int64()), ("shard", pa.int32()),
    ("worker", pa.string()), ("new_tokens", pa.int32()), ("prompt", pa.string()),
    ("answer", pa.string()), ("centroid", pa.list_(pa.float32())),
    ("embedding", pa.list_(pa.float32())), ("teacher_prob", pa.list_(pa.float32())),
])
PARSED_SCHEMA = pa.schema([f for f in GENERATED_SCHEMA if f.name not in ("embedding",
                                                                         "teacher_prob")])


# (answer text, the prompt's info, label names) -> the answer's usable lines and rejects
AnswerParser = Callable[[str, PromptInfo, Sequence[str]], ParsedOutput]


def list_answer_parser(settings: GenerateSection) -> AnswerParser:
    """llm_synth: an answer is a "- " list of new examples (see `parse_generation`)."""
    return lambda text, info, names: parse_generation(
        answer_list(text), info.example_texts, settings.min_words, settings.max_words, names)


def sample_parser(settings: GenerateSection) -> AnswerParser:
    """dilm: a sample is one sentence, its first line."""
    return lambda text, info, names: parse_sample(text, settings.min_words, settings.max_words)


def answer_lines(answers: pa.Table, plan: PromptPlan, method: str, label_names: Sequence[str],
                 settings: GenerateSection, parse: AnswerParser, multi_line: bool
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(candidate line rows, reject rows) from every answer; see the module doc.

    `multi_line`: an answer holds several examples, so an answer that ran out of tokens
    loses only its last line (a one-line answer that ran out is cut whole)."""
    rows, rejects = [], []
    seen: set[tuple[int, str]] = set()
    prompts = dict(zip(plan.prompt_ids, plan.prompts, strict=True))
    for answer in answers.to_pylist():
        info = plan.info[answer["prompt_id"]]
        label = label_names[info.label_id]
        text, cut = answer["text"], None
        if answer["new_tokens"] >= settings.max_new_tokens:
            # The answer ran out of tokens: its last line (dilm: its only one) stops mid-way.
            head, _, tail = text.rstrip().rpartition("\n")
            if multi_line or not head.strip():
                text, cut = head, tail.strip()
        parsed = ParsedOutput() if not text.strip() and cut else parse(text, info, label_names)
        where = f"{answer['prompt_id']} sample {answer['sample']}"
        if cut:
            parsed.rejected.append((cut, "truncated"))
        for line, reason in parsed.rejected or ([] if parsed.kept else [("", "empty_text")]):
            rejects.append({"example_id": example_id(f"{where}\x1f{line}", label),
                            "replicate": info.replicate, "split": "generated",
                            "field": "text", "reason": reason, "detail": where, "raw": line})
        for line in parsed.kept:
            eid = example_id(line, label)
            if (info.replicate, eid) in seen:
                rejects.append({"example_id": eid, "replicate": info.replicate,
                                "split": "generated", "field": "text",
                                "reason": "repeated_generation", "detail": where, "raw": line})
                continue
            seen.add((info.replicate, eid))
            rows.append({"example_id": eid, "replicate": info.replicate, "label": label,
                         "label_id": info.label_id, "text": line, "text_pair": None,
                         "parent_ids": info.parent_ids, "method": method,
                         "prompt_id": answer["prompt_id"], "slot": info.slot,
                         "sample": answer["sample"], "seed": answer["seed"],
                         "shard": answer["shard"], "worker": answer["worker"],
                         "new_tokens": answer["new_tokens"],
                         "prompt": prompts[answer["prompt_id"]], "answer": answer["text"],
                         "centroid": info.centroid})
    return rows, rejects


def nearest_parents(vectors: np.ndarray, labels: np.ndarray, train_x: np.ndarray,
                    train_y: np.ndarray, train_ids: Sequence[str], k: int = 3) -> list[list[str]]:
    """For `dilm` rows (the generator learnt from the whole split): the k nearest real rows of
    the same class, as the lineage's best account of where a sentence came from."""
    parents = []
    for vector, label in zip(vectors, labels, strict=True):
        rows = np.flatnonzero(train_y == label)
        similarity = train_x[rows] @ vector
        top = rows[np.argsort(-similarity, kind="stable")[:k]]
        parents.append([train_ids[i] for i in top])
    return parents


def list_matrix(table: pa.Table, column: str, dtype: type) -> np.ndarray:
    """A list column as an [n, width] matrix ([0, 0] for an empty table)."""
    if table.num_rows == 0:
        return np.zeros((0, 0), dtype)
    return np.asarray(table.column(column).to_pylist(), dtype).reshape(table.num_rows, -1)


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity becomes a dot product)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class ClassPool:
    """One replicate's generated rows of one class, as a chooser sees them."""

    rows: np.ndarray  # indices into the generated table
    vectors: np.ndarray  # L2-normalised embeddings of those rows
    probs: np.ndarray  # the teacher's probabilities [m, C]
    label: int
    seed: int  # the replicate's run seed
    table: pa.Table  # the whole generated table (for method-specific columns)


# -> (chosen positions in the pool in rank order, their scores, reject reason per position)
ClassChooser = Callable[[ClassPool], tuple[list[int], list[float], dict[int, str]]]


def slot_chooser(settings: GenerateSection) -> ClassChooser:
    """llm_synth: the best of n per k-means slot (`choose_candidates`)."""

    def choose(pool: ClassPool) -> tuple[list[int], list[float], dict[int, str]]:
        slots = pool.table.column("slot").to_numpy()[pool.rows]
        slot_ids = sorted(set(slots.tolist()))
        centroids = np.asarray([pool.table.column("centroid")[int(pool.rows[slots == s][0])]
                                .as_py() for s in slot_ids], np.float32)
        slot_of = np.searchsorted(slot_ids, slots)
        choice = choose_candidates(slot_of, pool.vectors, pool.probs[:, pool.label], centroids,
                                   settings.teacher_tau, settings.max_similarity)
        centres = normalised(centroids)
        scores = [float(pool.vectors[i] @ centres[slot_of[i]]) for i in choice.chosen]
        return list(choice.chosen), scores, dict(choice.reasons)

    return choose


def cluster_chooser(settings: GenerateSection, options: DilmOptions, per_class: int,
                    class_gradients: dict[int, np.ndarray] | None) -> ClassChooser:
    """dilm: one candidate per k-means cluster of the teacher-consistent candidates."""

    def choose(pool: ClassPool) -> tuple[list[int], list[float], dict[int, str]]:
        return _dilm_choice(pool, per_class, settings.teacher_tau, options,
                            None if class_gradients is None
                            else class_gradients.get(pool.label))

    return choose


def _dilm_choice(candidates: ClassPool, per_class: int, tau: float, options: DilmOptions,
                 class_gradient: np.ndarray | None
                 ) -> tuple[list[int], list[float], dict[int, str]]:
    """One class of one replicate: (chosen rows in rank order, their scores, reject reasons)."""
    vectors, probs, label = candidates.vectors, candidates.probs, candidates.label
    seed = derive_seed(candidates.seed, label)
    reasons = {i: "teacher_inconsistent" for i in range(len(vectors))
               if probs[i, label] < tau}
    pool = np.asarray([i for i in range(len(vectors)) if i not in reasons], dtype=np.int64)
    if len(pool) <= per_class:
        return pool.tolist(), [float(probs[i, label]) for i in pool], reasons
    from sklearn.cluster import KMeans  # imported when used: not on a cached rerun

    model = KMeans(n_clusters=per_class, n_init=3, random_state=seed).fit(vectors[pool])
    chosen, scores = [], []
    for cluster, centre in enumerate(model.cluster_centers_):
        members = pool[model.labels_ == cluster]
        distance = np.linalg.norm(vectors[members] - centre, axis=1)
        ranked = members[np.argsort(distance, kind="stable")]
        winner, score = int(ranked[0]), float(-distance.min())
        if options.grad_rank and class_gradient is not None:
            contenders = ranked[:options.grad_rank_pool]
            onehot = np.eye(probs.shape[1])[label]
            grads = np.stack([np.outer(probs[i] - onehot, vectors[i]).ravel()
                              for i in contenders])
            target = class_gradient.ravel()
            match = (grads @ target) / np.maximum(
                np.linalg.norm(grads, axis=1) * np.linalg.norm(target), 1e-12)
            winner, score = int(contenders[int(np.argmax(match))]), float(match.max())
        chosen.append(winner)
        scores.append(score)
        reasons.update({int(i): "not_selected" for i in members if i != winner})
    return chosen, scores, reasons


def choose_generated(generated: pa.Table, method: str, per_class: int, seeds: Sequence[int],
                     run_id: str, choose_class: ClassChooser,
                     all_labels: Sequence[int] = ()) -> CandidateSet:
    """The budget per replicate and class from the generated rows; every other row rejected."""
    vectors = normalised(list_matrix(generated, "embedding", np.float32))
    probs = list_matrix(generated, "teacher_prob", np.float64)
    replicate = generated.column("replicate").to_numpy()
    label_ids = generated.column("label_id").to_numpy()
    chosen_rows: list[tuple[int, int, float]] = []  # (row, rank, score)
    reasons: dict[int, str] = {}
    for rep, seed in enumerate(seeds):
        for label in sorted(set(label_ids[replicate == rep].tolist())):
            rows = np.flatnonzero((replicate == rep) & (label_ids == label))
            picked, scores, why = choose_class(ClassPool(rows, vectors[rows], probs[rows],
                                                         int(label), seed, generated))
            chosen_rows += [(int(rows[i]), rank, score)
                            for rank, (i, score) in enumerate(zip(picked, scores, strict=True))]
            reasons.update({int(rows[i]): r for i, r in why.items()})
    ids = generated.column("example_id").to_pylist()
    picked_index = [r for r, _, _ in chosen_rows]
    chosen = generated.take(pa.array(picked_index, pa.int64()))
    n = chosen.num_rows
    candidates = pa.table({
        "example_id": chosen.column("example_id"), "replicate": chosen.column("replicate"),
        "text": chosen.column("text"), "text_pair": chosen.column("text_pair"),
        "label": chosen.column("label"), "label_id": chosen.column("label_id"),
        "parent_ids": chosen.column("parent_ids"), "method": chosen.column("method"),
        "run_id": pa.array([run_id] * n, pa.string()),
        "seed": pa.array([seeds[int(r)] for r in chosen.column("replicate").to_pylist()],
                         pa.int64()),
        "rank": pa.array([rank for _, rank, _ in chosen_rows], pa.int32()),
        "score": pa.array([score for _, _, score in chosen_rows], pa.float64()),
        "weight": pa.array(np.ones(n), pa.float64()),
        "soft_label": pa.nulls(n, pa.list_(pa.float32())),
    }, schema=SELECTION_SCHEMA)
    reject_rows = [{"example_id": ids[i], "replicate": int(replicate[i]), "split": "generated",
                    "reason": reason, "detail": f"{method} {generated.column('prompt_id')[i]}"}
                   for i, reason in sorted(reasons.items())]
    if len(picked_index) + len(reject_rows) != generated.num_rows:
        raise RuntimeError("generated rows not all accounted for: "
                           f"{len(picked_index)} chosen + {len(reject_rows)} rejected != "
                           f"{generated.num_rows}")
    shortfall: dict[int, dict[int, dict[str, int]]] = {}
    taken = Counter(zip(chosen.column("replicate").to_pylist(),
                        chosen.column("label_id").to_pylist(), strict=True))
    for rep in range(len(seeds)):
        for label in sorted(set(label_ids.tolist()) | set(all_labels)):
            if taken[(rep, label)] < per_class:
                shortfall.setdefault(rep, {})[int(label)] = {"available": taken[(rep, label)],
                                                             "budget": per_class}
    counts = {"rows_in": generated.num_rows, "rows_out": n, "rows_rejected": len(reject_rows),
              "rejects_by_reason": dict(Counter(r["reason"] for r in reject_rows)),
              "replicates": len(seeds)}
    return CandidateSet(candidates, rejects_table(reject_rows), counts, shortfall)
