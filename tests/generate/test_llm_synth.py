"""llm_synth's planning and choice on real SST-2 embeddings and hand-built candidates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from distill_core.generate.llm_synth import choose_candidates, plan_slots


def test_slots_show_each_clusters_most_representative_rows(slice_dir: Path, encoder) -> None:
    from distill_core.ingest import ingest_dataset, resolve_dataset

    corpus = ingest_dataset(resolve_dataset("sst2"), slice_dir).corpus
    train = corpus.filter(pc.equal(corpus.column("split"), "train"))
    x = encoder.encode(train.column("text").to_pylist(), 64)
    y = train.column("label_id").to_numpy()
    slots = plan_slots(x, y, per_class=3, shots=4, seed=0)
    assert [(s.label_id, s.slot) for s in slots] == [(0, 0), (0, 1), (0, 2),
                                                     (1, 0), (1, 1), (1, 2)]
    for s in slots:
        assert len(s.example_rows) == 4 and all(y[r] == s.label_id for r in s.example_rows)
        shown = np.linalg.norm(x[list(s.example_rows)] - s.centroid, axis=1)
        assert np.all(np.diff(shown) >= 0)  # nearest first
    assert plan_slots(x, y, 3, 4, seed=0)[0].example_rows == slots[0].example_rows
    assert len({s.seed for s in slots}) == 6  # each slot samples under its own seed


def test_choice_is_best_of_n_under_teacher_consistency_and_diversity() -> None:
    centroids = np.array([[1.0, 0.0], [0.0, 1.0]])
    angle = np.deg2rad([5, 20, 2, 40, 10])
    vectors = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    vectors[3:] = vectors[3:, ::-1]  # candidates 3 and 4 lie near slot 1's centroid
    slot_of = np.array([0, 0, 0, 1, 1])
    prob = np.array([0.9, 0.9, 0.5, 0.95, 0.99])
    choice = choose_candidates(slot_of, vectors, prob, centroids, tau=0.8)
    assert choice.chosen == [0, 4]
    assert choice.reasons == {2: "teacher_inconsistent", 1: "not_best_of_n",
                              3: "not_best_of_n"}
    # Slot 1's best candidate is almost slot 0's winner: dropped for diversity, the next wins.
    centroids = np.array([[1.0, 0.0], [np.cos(np.deg2rad(26)), np.sin(np.deg2rad(26))]])
    angle = np.deg2rad([0, 10, 60])
    vectors = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    choice = choose_candidates(np.array([0, 1, 1]), vectors, np.ones(3), centroids, tau=0.8)
    assert choice.chosen == [0, 2] and choice.reasons == {1: "near_duplicate_generation"}


def test_a_slot_without_a_qualifying_candidate_takes_the_nearest_runner_up() -> None:
    centroids = np.array([[1.0, 0.0], [0.0, 1.0]])
    angle = np.deg2rad([0, 30, 60, 85])
    vectors = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    # Slot 0 has three good candidates; slot 1's only candidate fails the teacher.
    choice = choose_candidates(np.array([0, 0, 0, 1]), vectors, np.array([0.9, 0.9, 0.9, 0.1]),
                               centroids, tau=0.5)
    assert choice.chosen == [0, 2]  # candidate 2 (60 degrees) is nearest slot 1's centroid
    assert choice.reasons == {1: "not_best_of_n", 3: "teacher_inconsistent"}
