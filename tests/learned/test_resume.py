"""A run saved at outer step s and resumed by a new object ends with the same tensors."""

from __future__ import annotations

import torch

from distill_core.learned import (
    FunctionalLearner,
    InnerConfig,
    MetaMatching,
    OuterConfig,
    deterministic,
)


def test_resume_from_saved_step_matches_uninterrupted_run(tiny_encoder, real, make_synthetic,
                                                          tmp_path) -> None:
    inner = InnerConfig(steps=1, attention_weight=1.0)
    checkpoint = tmp_path / "state.pt"
    outer = OuterConfig(seed=5, lr_embeds=1e-2, save_every=2, checkpoint=str(checkpoint))
    real.batch_size = 64  # a different real batch and head at every step

    def distiller():
        learner = FunctionalLearner(tiny_encoder, n_classes=2)
        return MetaMatching(learner, make_synthetic(learner), outer, inner)

    with deterministic():
        whole = distiller()
        whole.fit(real, 5)
        checkpoint.unlink()
        first = distiller()
        first.fit(real, 3)  # saved at step 2; step 3 is lost as if the process were killed
        resumed = distiller()
        assert resumed.resume(checkpoint) and resumed.step == 2
        assert resumed.losses == first.losses[:2]
        resumed.fit(real, 5)
    assert resumed.losses == whole.losses
    for name, tensor in whole.synthetic.state_dict().items():
        assert torch.equal(tensor, resumed.synthetic.state_dict()[name]), name
    assert not list(tmp_path.glob(".*tmp*"))
    with checkpoint.open("r+b") as handle:  # a changed state file is not resumed from
        handle.seek(-1, 2)
        handle.write(b"\1")
    assert not distiller().resume(checkpoint)
