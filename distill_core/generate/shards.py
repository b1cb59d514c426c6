"""Prompt shards: the unit of distributed generation, written one Parquet part each.

A shard's seed derives from the run seed and the shard id, and every prompt
in it samples under seeds derived from that, so regenerating a shard (after
a worker died) gives the same rows. Each shard is written atomically as
`part-<shard>.parquet` (temporary name, then rename): a shard is either
whole on disk or absent, so redoing it never duplicates or loses a row. The
folder (`<runs>/.cache/generate_parts/<key>/`) holds nothing but those parts
and, while a shard is written, a hidden `.part-*.tmp`, which Parquet readers skip.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.artifacts.parts import file_sha256, part_records
from distill_core.generate.models import CausalLM
from distill_core.generate.sampling import SamplingSettings, sample
from distill_core.seeds import derive_seed

GENERATION_SCHEMA = pa.schema([
    ("shard", pa.int32()), ("prompt_id", pa.string()), ("sample", pa.int32()),
    ("seed", pa.int64()), ("text", pa.string()), ("new_tokens", pa.int32()),
    ("worker", pa.string()),
])


@dataclass(frozen=True)
class PromptShard:
    shard: int
    prompt_ids: tuple[str, ...]
    prompts: tuple[str, ...]
    samples: int  # continuations per prompt


def shard_seeds(run_seed: int, shard: PromptShard, sample_index: int) -> list[int]:
    """One seed per prompt of `shard` for its `sample_index`-th sample: (run seed, shard,
    sample) then the prompt's position, so a redone shard samples exactly as before."""
    seed = derive_seed(run_seed, shard.shard, sample_index)
    return [derive_seed(seed, i) for i in range(len(shard.prompts))]


def make_shards(prompt_ids: Sequence[str], prompts: Sequence[str], samples: int,
                shard_size: int) -> list[PromptShard]:
    return [PromptShard(i // shard_size, tuple(prompt_ids[i:i + shard_size]),
                        tuple(prompts[i:i + shard_size]), samples)
            for i in range(0, len(prompts), shard_size)]


def generate_shard(lm: CausalLM, shard: PromptShard, run_seed: int,
                   settings: SamplingSettings, worker: str = "local") -> pa.Table:
    """Every sample of every prompt in `shard`, seeded by (run seed, shard, sample)."""
    rows = []
    for s in range(shard.samples):
        seeds = shard_seeds(run_seed, shard, s)
        for prompt_id, prompt_seed, generation in zip(
                shard.prompt_ids, seeds, sample(lm, shard.prompts, seeds, settings),
                strict=True):
            rows.append({"shard": shard.shard, "prompt_id": prompt_id, "sample": s,
                         "seed": prompt_seed, "text": generation.text,
                         "new_tokens": generation.new_tokens, "worker": worker})
    return pa.Table.from_pylist(rows, schema=GENERATION_SCHEMA)


def part_path(folder: str | Path, shard: int) -> Path:
    return Path(folder) / f"part-{shard:05d}.parquet"


def record_path(part: Path) -> Path:
    """The part's record: its size and sha256, written after it (a part without one, or
    whose bytes differ from it, is generated again)."""
    return part.with_name(f"{part.name}.sha256.json")


def _publish(target: Path, write: Callable[[Path], None]) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    write(tmp)
    os.replace(tmp, target)


def write_part(folder: str | Path, shard: int, table: pa.Table) -> Path:
    """Atomically publish one shard's rows (a rerun of the shard replaces, never appends),
    then its record."""
    target = part_path(folder, shard)
    target.parent.mkdir(parents=True, exist_ok=True)
    _publish(target, lambda tmp: pq.write_table(table, tmp))
    record = json.dumps(part_records(target.parent, [target.name])[target.name])
    _publish(record_path(target), lambda tmp: tmp.write_text(record, encoding="utf-8"))
    return target


def part_intact(part: Path) -> bool:
    """The part is there with the size and sha256 its record holds."""
    try:
        record = json.loads(record_path(part).read_text(encoding="utf-8"))
        return (isinstance(record, dict) and part.stat().st_size == record.get("bytes")
                and file_sha256(part) == record.get("sha256"))
    except (OSError, ValueError):
        return False


def pending_shards(folder: str | Path, shards: Sequence[PromptShard]) -> list[PromptShard]:
    """Shards with no intact part (a damaged or unrecorded part is deleted: made again)."""
    pending = []
    for shard in shards:
        part = part_path(folder, shard.shard)
        if not part_intact(part):
            part.unlink(missing_ok=True)
            record_path(part).unlink(missing_ok=True)
            pending.append(shard)
    return pending


def read_parts(folder: str | Path, shards: Sequence[PromptShard]) -> pa.Table:
    missing = pending_shards(folder, shards)
    if missing:
        raise RuntimeError(f"{len(missing)} generation shards have no intact part "
                           f"(first: {missing[0].shard}) in {folder}")
    return pa.concat_tables([pq.read_table(part_path(folder, s.shard)) for s in shards])


def generate_in_process(shards: Sequence[PromptShard], lm: CausalLM, run_seed: int,
                        settings: SamplingSettings, out_dir: str | Path,
                        progress: Callable[[int, int], None] | None = None) -> pa.Table:
    """Generate the shards not yet on disk, one part each, then read every part."""
    todo = pending_shards(out_dir, shards)
    for done, shard in enumerate(todo, start=1):
        write_part(out_dir, shard.shard, generate_shard(lm, shard, run_seed, settings))
        if progress is not None:
            progress(done, len(todo))
    return read_parts(out_dir, shards)
