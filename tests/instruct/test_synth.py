"""`llm_synth` on instruction data: parsing answers, and one run through the stages.

The decoder is the tests' tiny Llama, first taught the answer format for a few
seconds (pairs of real Alpaca rows written as `### Instruction:` / `### Response:`),
so its samples parse often enough for the choice to have something to choose.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distill_core.config import RunConfig
from distill_core.instruct.synth import ANSWER_PREFIX, pair_messages, parse_pair, plan_pairs


def test_parse_reads_one_pair_and_names_what_is_wrong() -> None:
    good = parse_pair("Name a colour.\n### Response:\nBlue.\n### Instruction:\nMore")
    assert (good.prompt, good.response, good.reason) == ("Name a colour.", "Blue.", None)
    plain = parse_pair("Add 2 and 3.\n\nInput line\nResponse: 5", ran_out=False)
    assert (plain.prompt, plain.response) == ("Add 2 and 3.\n\nInput line", "5")
    assert parse_pair("Just some text with no heading").reason == "unparseable_generation"
    assert parse_pair("\n### Response:\nAn answer to nothing").detail == "empty instruction"
    assert parse_pair("Name a city\n### Instruction:\nParis\n### Response:\nOk").detail == \
        "a heading in the instruction"
    assert parse_pair("A question?\n### Response:\n\n### Instruction:").reason == \
        "unparseable_generation"
    assert parse_pair("Be happy.\n### Response:\nbe happy!").reason == "echoed_instruction"
    # The answer used every token and the response never closed: cut mid-way.
    assert parse_pair("Describe rain.\n### Response:\nRain is", ran_out=True).reason == \
        "truncated"
    # ... unless a heading closed it before the tokens ran out.
    assert parse_pair("Describe rain.\n### Response:\nWet.\n### Instr", ran_out=True).reason \
        is None


@pytest.fixture(scope="module")
def short_records(shared_datasets: Path) -> list[dict]:
    """The first 24 real Alpaca records with no input and a response under 120 characters."""
    data = json.loads((shared_datasets / "alpaca_subset" / "alpaca_5000.json").read_text())
    return [r for r in data if not r["input"] and len(r["output"]) < 120][:24]


@pytest.fixture(scope="module")
def format_decoder(short_records, tmp_path_factory) -> Path:
    """A tiny Llama with a byte-level BPE tokenizer trained here on short real Alpaca pairs,
    then 80 steps on whole llm_synth prompts (two shots) each followed by a third pair in the
    answer format: enough for a good share of its samples to parse."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    pairs = [(r["instruction"], r["output"]) for r in short_records]
    texts = [pair_messages([pairs[i], pairs[(i + 1) % len(pairs)]])[0]["content"] + "\n"
             + ANSWER_PREFIX + "{}\n### Response:\n{}\n### Instruction:".format(
                 *pairs[(i + 2) % len(pairs)]) for i in range(len(pairs))]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
        pad_token_id=0, bos_token_id=1, eos_token_id=2))
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimiser = torch.optim.AdamW(model.parameters(), lr=5e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tests' models run (see conftest's one_torch_thread)
    for _ in range(80):
        model(**batch, labels=labels).loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("format-decoder")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _config(data: Path, decoder: Path, seeds: list[int]) -> RunConfig:
    return RunConfig.model_validate({
        "run": {"name": "instruct-synth", "seeds": seeds},
        "data": {"task": "instruction", "data_dir": str(data), "instruction": {
            "train": {"path": "alpaca.json", "instruction": "instruction", "input": "input",
                      "response": "output"},
            "holdout": {"fraction": 0.25, "seed": 0}}},
        "signals": {"model": "all-MiniLM-L6-v2", "precision": "fp32", "max_length": 64},
        "synthesize": {"method": "llm_synth", "budget": 4, "oversample": 1,
                       "llm_synth": {"shots": 2, "samples_per_slot": 4}},
        "generate": {"model": str(decoder), "max_new_tokens": 80, "temperature": 0.7,
                     "max_similarity": 0.9},
        "evaluate": {"baselines": ["random"]},
        "instruct": {"reference": {"model": str(decoder), "max_length": 96},
                     "sft": {"model": str(decoder), "steps": 1, "batch_size": 4,
                             "max_length": 96}},
    })


def test_llm_synth_writes_scored_pairs_from_prototypes_with_a_balanced_funnel(
        format_decoder: Path, short_records, tmp_path: Path, run_stages) -> None:
    from typer.testing import CliRunner

    from distill_core.audit import RunAudit
    from flows.cli import app

    data = tmp_path / "data"
    data.mkdir()
    (data / "alpaca.json").write_text(json.dumps(short_records), encoding="utf-8")
    cfg = _config(data, format_decoder, [0, 1])
    store, outcomes = run_stages(cfg, tmp_path / "runs")
    assert [o.stage for o in outcomes] == ["ingest", "signals", "generate", "synthesize",
                                           "filter", "evaluate"]  # no pool-wide reference
    audit = RunAudit(store.root)
    funnel = audit.funnel()
    assert all(f["balanced"] for f in funnel), funnel
    generate = store.manifest("generate")
    assert generate["counts"]["answers"] == 2 * 4 * 4  # seeds x slots x samples
    generated = store.read("generate").to_pylist()
    synthesized = store.read("synthesize").to_pylist()
    rejects = store.read("synthesize", rejects=True).to_pylist()
    assert generated and synthesized and rejects  # the taught decoder writes usable pairs
    # every usable pair ends a candidate or a reject with its reason, once
    assert sorted((r["replicate"], r["example_id"]) for r in generated) == sorted(
        [(r["replicate"], r["example_id"]) for r in synthesized]
        + [(r["replicate"], r["example_id"]) for r in rejects])
    assert {r["reason"] for r in rejects} <= {"near_duplicate_generation", "not_best_of_n",
                                              "unscored_generation"}
    plan_shots = _slot_shots(store, cfg)
    by_id = {(g["replicate"], g["example_id"]): g for g in generated}
    for row in synthesized:
        made = by_id[(row["replicate"], row["example_id"])]
        assert row["parent_ids"] == plan_shots[(row["replicate"], made["slot"])]
        assert row["method"] == "llm_synth" and row["label"] == "instruction"
        assert row["score"] == pytest.approx(made["conditioned_loss"])
        assert made["shot_similarity"] < 0.9
    filled = store.manifest("synthesize")["slots_filled"]
    for rep in (0, 1):  # one winner per slot, the lowest reference loss of its survivors
        slot_of = {r["example_id"]: by_id[(rep, r["example_id"])]["slot"]
                   for r in synthesized if r["replicate"] == rep}
        winners = {slot_of[r["example_id"]]: r["score"] for r in synthesized
                   if r["replicate"] == rep and r["rank"] < filled[rep]}
        assert len(winners) == filled[rep] >= 1
        beaten = [r for r in rejects if r["replicate"] == rep and r["reason"] == "not_best_of_n"]
        assert beaten  # samples_per_slot > 1: some survivor lost its slot
        for r in rejects:
            if r["replicate"] == rep and r["reason"] == "not_best_of_n":
                made = by_id[(rep, r["example_id"])]
                assert made["conditioned_loss"] >= winners[made["slot"]]
    distilled = store.read("filter").to_pylist()
    assert distilled and {r["method"] for r in distilled} == {"llm_synth"}
    lineage = audit.lineage(distilled[0]["example_id"])
    assert lineage["generated"] and {s["example_id"] for s in lineage["sources"]} == set(
        distilled[0]["parent_ids"])
    shown = CliRunner().invoke(app, ["audit", str(store.root), "--example",
                                     distilled[0]["example_id"]])
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())
    assert "reference loss" in flat and all(p in flat for p in distilled[0]["parent_ids"])
    exported = CliRunner().invoke(app, ["export", str(store.root), str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    card = (tmp_path / "export" / "README.md").read_text()
    assert "synthetic" in card and " 0 generated" not in card
    scores = store.read("evaluate").to_pylist()
    assert {s["setting"] for s in scores} == {"distilled", "random"}

    # the same seed samples and chooses the same pairs (a fresh run folder)
    again, _ = run_stages(cfg, tmp_path / "again", until="synthesize")
    assert again.read("synthesize").column("example_id").to_pylist() == [
        r["example_id"] for r in synthesized]


def _slot_shots(store, cfg: RunConfig) -> dict[tuple[int, int], list[str]]:
    """The shots each (replicate, slot) prompt showed, planned again from the run's inputs."""
    import numpy as np

    from distill_core.generate.candidates import normalised
    from distill_core.generate.models import load_tokenizer
    from distill_core.signals.embeddings import matrix

    corpus, embeddings = store.read("ingest"), store.read("signals")
    train = np.flatnonzero(np.asarray(corpus.column("split").to_pylist()) == "train")
    pool = corpus.take(train)
    plan = plan_pairs(pool.column("text").to_pylist(), pool.column("text_pair").to_pylist(),
                      pool.column("example_id").to_pylist(),
                      normalised(matrix(embeddings, "embedding")[train]), 4, 2, cfg.run.seeds,
                      4, load_tokenizer(cfg.generate.model))
    return {(i.replicate, i.slot): i.parent_ids for i in plan.info.values()}


def test_instruction_generation_refusals_are_one_line(tmp_path: Path) -> None:
    """dilm stays classification-only (the message offers llm_synth); a criterion that does
    not exist is named with its key."""
    for key, value, expected in (("synthesize", "{method: dilm}", "llm_synth"),
                                 ("instruct", "{synth: {criterion: perplexity}}",
                                  "instruct.synth.criterion")):
        config = tmp_path / "bad.yaml"
        config.write_text("data: {task: instruction, instruction: {preset: alpaca_subset}}\n"
                          f"{key}: {value}\n", encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "flows.cli", "validate", str(config)],
                              capture_output=True, text=True, timeout=120)
        output = (done.stdout + done.stderr).strip()
        assert done.returncode == 2, output
        assert expected in output and "Traceback" not in output, output
        assert len(output.splitlines()) == 1, output


def test_the_choice_is_in_the_run_id_and_per_answer_is_not() -> None:
    from distill_core.config import load_config

    config = str(Path(__file__).resolve().parents[2] / "configs" / "instruction-alpaca-cpu.yaml")

    def run_id(*overrides: str) -> str:
        return load_config(config, list(overrides)).run_id()

    synth = "synthesize.method=llm_synth"
    assert run_id(synth) != run_id(synth, "instruct.synth.criterion=ifd")
    assert run_id(synth) == run_id(synth, "synthesize.llm_synth.per_answer=7")  # one pair
    assert run_id(synth) != run_id(synth, "synthesize.llm_synth.samples_per_slot=5")
    assert run_id("synthesize.method=ifd") == run_id("synthesize.method=ifd",
                                                     "instruct.synth.criterion=ifd")
