"""The synthetic set: k-means-prototype initialisation with lineage, and exact storage."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from distill_core.learned import FunctionalLearner, SyntheticSet, prototypes
from distill_core.seeds import derive_seed
from distill_core.synthesize.base import ClassData
from distill_core.synthesize.kmeans_prototypes import kmeans_prototypes


def test_init_from_kmeans_prototypes_keeps_lineage_and_is_the_real_row(
        tiny_encoder, tokenizer, sst2_rows, real, make_synthetic) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    synthetic = make_synthetic(learner, per_class=3)
    features = learner.pooled(real.attention_mask, input_ids=real.input_ids).numpy()
    labels = sst2_rows["labels"]
    expected = []
    for label in (0, 1):
        rows = np.flatnonzero(labels == label)
        picked = kmeans_prototypes(ClassData(features[rows]), 3, derive_seed(0, label)).indices
        expected += [[sst2_rows["ids"][i]] for i in rows[picked]]
    assert synthetic.parent_ids == expected
    assert synthetic.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(set(synthetic.example_ids)) == 6
    assert synthetic.soft_labels().argmax(-1).tolist() == [0, 0, 0, 1, 1, 1]
    assert synthetic.attention_logits.shape == (6, 2, 2, 16)
    assert abs(float(synthetic.lr.detach()) - 0.1) < 1e-6
    # an untouched synthetic example is its real row to the encoder (positions added inside)
    first = sst2_rows["ids"].index(expected[0][0])
    encoded = tokenizer([sst2_rows["texts"][first]], padding="max_length", truncation=True,
                        max_length=16, return_tensors="pt")
    params = learner.fresh_head(0)
    by_ids = learner(params, encoded["attention_mask"], input_ids=encoded["input_ids"]).pooled
    by_embeds = learner(params, synthetic.mask[:1], inputs_embeds=synthetic.embeds[:1]).pooled
    torch.testing.assert_close(by_embeds, by_ids)


def _assert_same(a: SyntheticSet, b: SyntheticSet) -> None:
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert a.parent_ids == b.parent_ids and a.example_ids == b.example_ids
    assert a.meta == b.meta


def test_table_and_dict_round_trips_are_exact(tiny_encoder, make_synthetic, tmp_path) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    synthetic = make_synthetic(learner)
    with torch.no_grad():  # values a table must keep bit for bit
        synthetic.embeds.add_(torch.randn_like(synthetic.embeds) * 1e-3)
        synthetic.attention_logits.normal_()
        synthetic.log_lr.fill_(-2.345678)
    table = synthetic.to_table()
    assert table.num_rows == 4
    assert table.schema.field("embeds").type == pa.list_(pa.float32(), 16 * 32)
    assert table.schema.field("attention_logits").type == pa.list_(pa.float32(), 2 * 2 * 16)
    assert table.column("label").to_pylist() == ["negative", "negative", "positive", "positive"]
    pq.write_table(table, tmp_path / "part-0.parquet")
    _assert_same(synthetic, SyntheticSet.from_table(pq.read_table(tmp_path / "part-0.parquet")))
    _assert_same(synthetic, SyntheticSet.load(synthetic.save(tmp_path / "set.pt")))
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob(".*tmp*"))


def test_noise_init_has_no_lineage_and_the_table_scale(tiny_encoder) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    noise = prototypes.from_noise(learner.word_embeddings, 2, 3, 8, seed=1, lr=0.01)
    assert noise.embeds.shape == (6, 8, 32) and noise.parent_ids == [[]] * 6
    assert noise.attention_logits is None and bool(noise.mask.all())
    ratio = float(noise.embeds.detach().std() / learner.word_embeddings.std())
    assert 0.9 < ratio < 1.1
    again = prototypes.from_noise(learner.word_embeddings, 2, 3, 8, seed=1, lr=0.01)
    assert torch.equal(noise.embeds, again.embeds)
