"""`llm_synth`: prototype-conditioned synthesis, minus the model call.

Plan: per class, k-means on the class's embeddings with k = budget slots; each
slot's prompt shows the `shots` real examples nearest its centroid (the most
representative ones), whose ids become the generated rows' `parent_ids`.
Choose: every parsed candidate of a slot is embedded and read by the teacher;
candidates whose teacher probability of the intended label is below τ are
dropped (`teacher_inconsistent`), one cosine-closer than `max_similarity` to an
already chosen row is dropped (`near_duplicate_generation`), and of the rest
the one nearest the slot's centroid wins (best of n); the others are
`not_best_of_n`. A slot left with no qualifying candidate takes the nearest
qualifying runner-up of another slot of its class. Every candidate ends chosen
or rejected with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distill_core.seeds import derive_seed


@dataclass(frozen=True)
class PromptSlot:
    label_id: int
    slot: int
    centroid: np.ndarray
    example_rows: tuple[int, ...]  # rows of the training split shown in the prompt
    seed: int


def plan_slots(features: np.ndarray, label_ids: np.ndarray, per_class: int, shots: int,
               seed: int) -> list[PromptSlot]:
    """`per_class` prompt slots per class, each with its `shots` most representative rows."""
    from sklearn.cluster import KMeans  # imported when used: not on a cached rerun

    slots = []
    for label in np.unique(label_ids):
        rows = np.flatnonzero(label_ids == label)
        x = features[rows]
        k = min(per_class, len(rows))
        class_seed = derive_seed(seed, int(label))
        model = KMeans(n_clusters=k, n_init=3, random_state=class_seed).fit(x)
        for slot, centroid in enumerate(model.cluster_centers_):
            members = np.flatnonzero(model.labels_ == slot)
            distance = np.linalg.norm(x[members] - centroid, axis=1)
            nearest = members[np.argsort(distance, kind="stable")[:shots]]
            slots.append(PromptSlot(int(label), slot, centroid.astype(np.float32),
                                    tuple(int(rows[i]) for i in nearest),
                                    derive_seed(seed, int(label), slot)))
    return slots


@dataclass
class CandidateChoice:
    chosen: list[int]  # candidate indices, one per slot that has a survivor
    reasons: dict[int, str]  # candidate index -> reject reason


def choose_candidates(slot_of: np.ndarray, vectors: np.ndarray, label_prob: np.ndarray,
                      centroids: np.ndarray, tau: float, max_similarity: float = 0.95
                      ) -> CandidateChoice:
    """Best of n per slot under teacher consistency and diversity (see the module doc).

    slot_of[i]: the slot of candidate i; vectors: L2-normalised candidate embeddings;
    label_prob[i]: the teacher's probability of the slot's label; centroids[s]: slot s.
    A slot none of whose candidates qualifies is filled from the class's other slots'
    runners-up, the qualifying one nearest its centroid, so the budget is met where the
    class has enough good candidates.
    """
    reasons: dict[int, str] = {}
    chosen: list[int] = []
    centres = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)

    def too_close(i: int) -> bool:
        return bool(chosen) and float(np.max(vectors[chosen] @ vectors[i])) >= max_similarity

    empty = []
    for slot in range(len(centroids)):
        members = np.flatnonzero(slot_of == slot)
        ranked = members[np.argsort(-(vectors[members] @ centres[slot]), kind="stable")]
        winner = None
        for i in ranked:
            if label_prob[i] < tau:
                reasons[int(i)] = "teacher_inconsistent"
            elif winner is not None:
                reasons[int(i)] = "not_best_of_n"
            elif too_close(int(i)):
                reasons[int(i)] = "near_duplicate_generation"
            else:
                winner = int(i)
        if winner is None:
            empty.append(slot)
        else:
            chosen.append(winner)
    for slot in empty:
        spare = [i for i, r in reasons.items() if r == "not_best_of_n" and not too_close(i)]
        if spare:
            best = max(spare, key=lambda i: float(vectors[i] @ centres[slot]))
            del reasons[best]
            chosen.append(best)
    return CandidateChoice(chosen, reasons)
