"""Fixtures for learned distillation: a tiny BERT built from a config with MiniLM's tokenizer,
and real SST-2 rows read through the ingest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from distill_core.signals.models import resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))


@pytest.fixture()
def tiny_encoder(tokenizer):
    """A fresh 2-layer, 2-head, 32-wide BERT (seeded) each time it is asked for."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    return BertModel(config, add_pooling_layer=False)


@pytest.fixture(scope="session")
def sst2_rows(slice_dir: Path) -> dict:
    """The first 200 SST-2 training rows: texts, label ids, example ids."""
    from distill_core.ingest import ingest_dataset, resolve_dataset

    corpus = ingest_dataset(resolve_dataset("sst2"), slice_dir).corpus
    train = corpus.filter(np.array([s == "train" for s in corpus.column("split").to_pylist()]))
    train = train.slice(0, 200)
    return {"texts": train.column("text").to_pylist(),
            "labels": np.asarray(train.column("label_id").to_pylist()),
            "ids": train.column("example_id").to_pylist()}


@pytest.fixture()
def real(tokenizer, sst2_rows):
    """The rows tokenised to 32 tokens; a batch is every row, so each loss is deterministic."""
    from distill_core.learned.real import RealData

    return RealData.from_texts(tokenizer, sst2_rows["texts"], sst2_rows["labels"],
                               sst2_rows["ids"], max_length=32, batch_size=256, seed=0)


@pytest.fixture()
def make_synthetic(tokenizer, sst2_rows, real):
    """A factory: k-means-prototype synthetic set for a learner (features = its pooled output)."""
    from distill_core.learned import prototypes

    def make(learner, per_class: int = 2, attention: bool = True, seed: int = 0, lr: float = 0.1,
             seq_len: int = 16):
        features = learner.pooled(real.attention_mask, input_ids=real.input_ids).numpy()
        return prototypes.from_real(
            features, sst2_rows["labels"], sst2_rows["texts"], sst2_rows["ids"], tokenizer,
            learner.word_embeddings, n_classes=2, per_class=per_class, seq_len=seq_len, seed=seed,
            lr=lr, attention_shape=learner.attention_shape if attention else None,
            meta={"label_names": ["negative", "positive"]})

    return make


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads are many times slower here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
