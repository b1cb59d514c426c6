"""Each family lowers its matching loss on real SST-2 rows in a few outer steps."""

from __future__ import annotations

from distill_core.learned import (
    DistributionMatching,
    ExpertConfig,
    FunctionalLearner,
    GradientMatching,
    InnerConfig,
    MetaMatching,
    OuterConfig,
    TrajectoryMatching,
    deterministic,
    train_experts,
)

OUTER = OuterConfig(seed=0, lr_embeds=1e-4, lr_labels=1e-2, lr_attention=1e-2, lr_lr=1e-2,
                    init_pool=1)  # one fixed learner draw: the loss is a fixed function


def _fit(distiller, real, steps: int = 6) -> list[float]:
    seen: list[tuple[int, float]] = []
    with deterministic():
        distiller.fit(real, steps, callback=lambda step, loss: seen.append((step, loss)))
    assert [s for s, _ in seen] == list(range(1, steps + 1))
    assert [loss for _, loss in seen] == distiller.losses
    return distiller.losses


def test_meta_matching_lowers_real_loss(tiny_encoder, real, make_synthetic) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    synthetic = make_synthetic(learner)
    before = synthetic.embeds.detach().clone()
    losses = _fit(MetaMatching(learner, synthetic, OUTER, InnerConfig(steps=1)), real)
    assert losses[-1] < losses[0]
    assert (synthetic.embeds.detach() - before).abs().max() > 0
    assert synthetic.meta["outer_steps"] == 6 and synthetic.meta["family"] == "meta_matching"


def test_gradient_matching_lowers_gradient_distance(tiny_encoder, real, make_synthetic) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2, last_layers=1)
    assert all("layer.1." in n for n in learner.trainable) and learner.trainable
    losses = _fit(GradientMatching(learner, make_synthetic(learner), OUTER), real)
    assert losses[-1] < losses[0]


def test_distribution_matching_lowers_mean_discrepancy(tiny_encoder, real,
                                                       make_synthetic) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    losses = _fit(DistributionMatching(learner, make_synthetic(learner), OUTER), real)
    assert losses[-1] < losses[0]


def test_trajectory_matching_with_cached_experts(tiny_encoder, real, make_synthetic,
                                                 tmp_path, tokenizer, sst2_rows) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2, last_layers=1)
    config = ExpertConfig(checkpoints=3, interval=4, lr=0.5, batch_size=64)
    files = train_experts(learner, real, tmp_path / "experts", config)
    assert [f.name for f in files] == [f"ckpt_{i:04d}.safetensors" for i in range(4)]
    stamps = [f.stat().st_mtime_ns for f in files]
    assert train_experts(learner, real, tmp_path / "experts", config) == files
    assert [f.stat().st_mtime_ns for f in files] == stamps  # cached: not retrained
    files[1].write_bytes(files[1].read_bytes()[:-1] + b"\0")  # a changed checkpoint
    assert train_experts(learner, real, tmp_path / "experts", config) == files
    assert files[1].stat().st_mtime_ns != stamps[1]  # not trusted: the trajectory retrained
    # Experts belong to the rows as tokenised and labelled: another truncation or label
    # order is another key (a new trajectory beside the old one), never the cached one.
    import dataclasses

    from distill_core.learned.experts import expert_key
    from distill_core.learned.real import RealData

    shorter = RealData.from_texts(tokenizer, sst2_rows["texts"], sst2_rows["labels"],
                                  sst2_rows["ids"], max_length=16, batch_size=256, seed=0)
    swapped = dataclasses.replace(real, labels=1 - real.labels)
    keys = {expert_key(learner, data, config) for data in (real, shorter, swapped)}
    assert len(keys) == 3
    distiller = TrajectoryMatching(learner, make_synthetic(learner), OUTER,
                                   InnerConfig(steps=2), trajectories=[files], expert_span=1)
    losses = _fit(distiller, real)
    assert losses[-1] < losses[0]
