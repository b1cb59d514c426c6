"""Back to text: nearest tokens, nearest real sentence, decoder-regularised beam search."""

from __future__ import annotations

import pytest
import torch

from distill_core.learned import FunctionalLearner
from distill_core.learned.decode import (
    decoded_table,
    decoder_regularised,
    nearest_sentences,
    nearest_tokens,
)


def _sentence(tokenizer, table: torch.Tensor, text: str, length: int = 10):
    encoded = tokenizer([text], padding="max_length", max_length=length, return_tensors="pt")
    return table[encoded["input_ids"]].clone(), encoded["attention_mask"]


def _rigged_lm(tokenizer, favourite: int):
    """A tiny GPT-2 (BERT vocabulary) whose every next-token distribution puts ~all mass on
    `favourite`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=16, n_layer=1,
                                    n_head=2, n_positions=64, tie_word_embeddings=False)).eval()
    with torch.no_grad():
        lm.transformer.ln_f.weight.zero_()
        lm.transformer.ln_f.bias.zero_()
        lm.transformer.ln_f.bias[0] = 1.0
        lm.lm_head.weight.zero_()
        lm.lm_head.weight[favourite, 0] = 50.0
    return lm


def test_nearest_token_of_a_token_embedding_is_that_token(tokenizer) -> None:
    table = torch.randn(tokenizer.vocab_size, 64, generator=torch.Generator().manual_seed(0))
    embeds, mask = _sentence(tokenizer, table, "a gripping , funny movie")
    embeds[0, 2] *= 3.0  # cosine ignores scale
    [decoded] = nearest_tokens(embeds, mask, table, tokenizer)
    assert decoded.text == "a gripping, funny movie"
    assert decoded.token_ids == tokenizer("a gripping , funny movie",
                                          add_special_tokens=False)["input_ids"]


def test_nearest_sentence_of_untouched_synthetic_is_its_init_row(
        tiny_encoder, real, sst2_rows, make_synthetic) -> None:
    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    synthetic = make_synthetic(learner, per_class=3, seq_len=32)  # the real rows' length
    real_features = learner.pooled(real.attention_mask, input_ids=real.input_ids)
    syn_features = learner.pooled(synthetic.mask, inputs_embeds=synthetic.embeds.detach())
    decoded = nearest_sentences(syn_features, synthetic.labels, real_features, real.labels,
                                real.example_ids, real.texts)
    assert [d.source_id for d in decoded] == [p[0] for p in synthetic.parent_ids]
    assert all(d.score > 0.9999 for d in decoded)
    table = decoded_table(synthetic, decoded, "nearest_sentence")
    assert table.column("parent_ids").to_pylist() == synthetic.parent_ids
    assert table.column("example_id").to_pylist() == [p[0] for p in synthetic.parent_ids]
    assert table.column("synthetic_id").to_pylist() == synthetic.example_ids


def test_decoder_regularised_trades_closeness_for_the_lm(tokenizer) -> None:
    table = torch.randn(tokenizer.vocab_size, 256, generator=torch.Generator().manual_seed(1))
    dull, great = tokenizer.convert_tokens_to_ids(["dull", "great"])
    embeds, mask = _sentence(tokenizer, table, "a dull film")
    embeds[0, 2] = 0.55 * table[dull] + 0.45 * table[great]
    lm = _rigged_lm(tokenizer, great)
    [nearest] = nearest_tokens(embeds, mask, table, tokenizer)
    assert nearest.text == "a dull film"
    [plain] = decoder_regularised(embeds, mask, table, tokenizer, lm, tokenizer, weight=0.0)
    assert plain.text == nearest.text and plain.token_ids == nearest.token_ids
    [fluent] = decoder_regularised(embeds, mask, table, tokenizer, lm, tokenizer, weight=1.0,
                                   top_k=5, beam=3)
    assert fluent.text == "a great film"


def test_one_step_head_is_the_inner_step_and_matching_lowers_the_pool_loss(
        tiny_encoder, real, make_synthetic) -> None:
    from distill_core.learned.decode import matched_sentences, one_step_head
    from distill_core.learned.inner import InnerConfig, inner_train

    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    synthetic = make_synthetic(learner, per_class=3, attention=False, lr=2.0, seq_len=32)
    with torch.no_grad():
        synthetic.label_logits.add_(torch.randn(synthetic.label_logits.shape,
                                               generator=torch.Generator().manual_seed(3)))
    syn_features = learner.pooled(synthetic.mask, inputs_embeds=synthetic.embeds.detach(),
                                  normalize=False)  # the head's inputs
    params = learner.initial_params(0, "zero")
    head = {k: params[k] for k in ("head.weight", "head.bias")}
    trained = inner_train(learner, head, synthetic.batch(), synthetic.lr, InnerConfig(),
                          create_graph=False)
    weight, bias = one_step_head(syn_features.detach(), synthetic.soft_labels().detach(),
                                 synthetic.lr.detach())
    assert torch.allclose(weight, trained["head.weight"], atol=1e-5)
    assert torch.allclose(bias, trained["head.bias"], atol=1e-6)

    real_features = learner.pooled(real.attention_mask, input_ids=real.input_ids,
                                   normalize=False)

    def pool_loss(ids: list[str]) -> float:
        rows = [real.example_ids.index(e) for e in ids]
        w, b = one_step_head(real_features[rows], synthetic.soft_labels().detach(),
                             synthetic.lr.detach())
        return float(torch.nn.functional.cross_entropy(real_features @ w.T + b, real.labels))

    args = (syn_features, synthetic.labels, real_features, real.labels, real.example_ids,
            real.texts)
    nearest = [d.source_id for d in nearest_sentences(*args)]
    matched = matched_sentences(syn_features, synthetic.labels, synthetic.soft_labels(),
                                synthetic.lr, real_features, real.labels, real.example_ids,
                                real.texts, shortlist=64)
    ids = [d.source_id for d in matched]
    assert pool_loss(ids) == pytest.approx(matched[0].score, abs=1e-5)
    assert pool_loss(ids) < pool_loss(nearest) - 1e-3  # it moved, and for the better
    label_of = dict(zip(real.example_ids, real.labels.tolist(), strict=True))
    assert [label_of[e] for e in ids] == synthetic.labels.tolist()  # each keeps its class
    again = matched_sentences(syn_features, synthetic.labels, synthetic.soft_labels(),
                              synthetic.lr, real_features, real.labels, real.example_ids,
                              real.texts, shortlist=64)
    assert [d.source_id for d in again] == ids


def test_matched_decoding_is_the_default_only_where_its_protocol_holds() -> None:
    from distill_core.config import load_config
    from distill_core.errors import ConfigError

    def decode(*overrides: str) -> str:
        cfg = load_config(None, ["synthesize.method=learned_meta", *overrides])
        return cfg.synthesize.learned_meta.decode

    assert decode() == "matched_sentence"
    key = "synthesize.learned_meta"
    assert decode(f"{key}.attention_labels=true") == "nearest_sentence"  # unset: falls back
    assert decode(f"{key}.inner_steps=3") == "nearest_sentence"
    with pytest.raises(ConfigError, match="matched_sentence scores rows with the one-step"):
        decode(f"{key}.inner_steps=3", f"{key}.decode=matched_sentence")  # asked: refused


def test_matched_decoding_never_gives_one_row_to_two_examples(tiny_encoder, real,
                                                             make_synthetic) -> None:
    from distill_core.learned.decode import matched_sentences

    learner = FunctionalLearner(tiny_encoder, n_classes=2)
    synthetic = make_synthetic(learner, per_class=3, attention=False, lr=2.0, seq_len=32)
    with torch.no_grad():
        synthetic.embeds[1] = synthetic.embeds[0]  # two examples of a class, one point
        synthetic.mask[1] = synthetic.mask[0]
    features = learner.pooled(synthetic.mask, inputs_embeds=synthetic.embeds.detach(),
                              normalize=False)
    real_features = learner.pooled(real.attention_mask, input_ids=real.input_ids,
                                   normalize=False)
    args = (features, synthetic.labels, real_features, real.labels, real.example_ids,
            real.texts)
    nearest = [d.source_id for d in nearest_sentences(*args)]
    assert nearest[0] == nearest[1]  # the plain nearest sentence repeats a row
    matched = [d.source_id for d in matched_sentences(
        features, synthetic.labels, synthetic.soft_labels(), synthetic.lr, real_features,
        real.labels, real.example_ids, real.texts, shortlist=16, chunk=5)]
    assert len(set(matched)) == len(matched) == 6
