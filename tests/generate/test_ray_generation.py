"""Generation on a Ray actor pool: same rows as in process; a worker killed mid-run leaves the
output complete with no duplicated or missing row."""

from __future__ import annotations

from pathlib import Path

from distill_core.config import GenerateSection
from distill_core.generate.actor import GenerationJob, generate_shards
from distill_core.generate.dilm import DecoderSource, GeneratorTraining, train_generator
from distill_core.generate.models import load_causal_lm
from distill_core.generate.sampling import SamplingSettings
from distill_core.generate.shards import generate_shard, make_shards
from distill_core.pipeline.executor import FaultHooks, Resources
from tasks.ray_executor import RayExecutor

SETTINGS = SamplingSettings(max_new_tokens=8, batch_size=4)


def test_a_killed_generation_worker_is_replaced_and_nothing_is_lost(
        local_ray, tiny_decoder: Path, tmp_path: Path) -> None:
    prompt_ids = [f"p{i}" for i in range(10)]
    prompts = [f"- a review number {i} that is" for i in range(10)]
    shards = make_shards(prompt_ids, prompts, samples=2, shard_size=3)
    lm = load_causal_lm(str(tiny_decoder))
    expected = {(r["prompt_id"], r["sample"]): r["text"] for s in shards
                for r in generate_shard(lm, s, 11, SETTINGS).to_pylist()}
    executor = RayExecutor(hooks=FaultHooks(kill_actor_after={"generate": 1},
                                            marker_dir=str(tmp_path / "markers")))
    job = GenerationJob(shards, str(tiny_decoder), GenerateSection(device="cpu"), SETTINGS, 11,
                        str(tmp_path / "parts"))
    table, workers = generate_shards(executor, job, Resources(cpus=0.5, workers=2))
    assert (tmp_path / "markers" / "generate-killed").exists()  # the fault fired
    keys = list(zip(table.column("prompt_id").to_pylist(), table.column("sample").to_pylist(),
                    strict=True))
    assert len(keys) == len(set(keys)) == 20  # every prompt x sample exactly once
    assert {k: t for k, t in zip(keys, table.column("text").to_pylist(), strict=True)} == expected
    assert sum(workers.values()) >= len(shards) - 1  # summaries of the shards done on the pool
    assert not list((tmp_path / "parts").glob(".*tmp"))


def test_the_dilm_generator_trains_as_a_ray_task(local_ray, tiny_decoder: Path,
                                                 tmp_path: Path) -> None:
    texts = ["a gorgeous , witty film", "a dull , lifeless mess", "warm and funny",
             "tedious and long"]
    trained = RayExecutor().run_task(
        train_generator, Resources(cpus=0.5), DecoderSource(str(tiny_decoder), device="cpu"),
        texts, ["positive", "negative", "positive", "negative"], str(tmp_path / "generator"),
        GeneratorTraining(steps=3, batch_size=2, lora_r=2))
    assert len(trained.losses) == 3 and trained.trainable_parameters > 0
    lm = load_causal_lm(trained.folder)  # a plain model folder: LoRA merged into the weights
    assert not any("lora" in name for name, _ in lm.model.named_parameters())
