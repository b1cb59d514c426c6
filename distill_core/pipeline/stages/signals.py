"""signals: one L2-normalised, mean-pooled embedding per corpus text (two for pairs), from a
transformer encoder or the static model distilled from one (`static:<encoder>`).

With `signals.row_cache` (the default) each distinct text's vector is looked up in the runs
folder's per-text cache (`signals/row_cache.py`, keyed by these settings); only the texts it
lacks go through the encoder, and they are added to it. The manifest counts distinct texts
reused and computed (`rows_reused`, `rows_computed`). The stage then works ingest part by
ingest part, writes one signals part for each, and keeps it in the per-part cache
(`signals/part_cache.py`): a rerun copies the parts of ingest parts it has seen (a grown
folder's unchanged prefix) instead of looking up every vector again (`part_cache` in the
manifest); with that cache the stage is not also copied whole into the cross-run stage
cache, and its identity is the ingest parts' digests, not the texts' hash.

The corpus is read and embedded batch by batch (`BATCH_ROWS` rows, `RAY_BATCH_ROWS` on Ray,
where each batch starts an actor pool) and each batch's rows are written as they come, so
memory follows the batch, not the corpus. Distinct texts are counted per batch: a text
repeated in two batches is embedded in the first and reused from the row cache in the second
(embedded twice with the cache off). The texts' hash (the stage's identity) is computed the
same way, batch by batch, from the columns' Arrow buffers (`StringsHasher`: no Python call
per row; the digests changed when it came in, so stages from before recompute once).

On an executor whose workers read Parquet themselves (Ray), the driver does not feed them
rows: `map_parquet` hands the pool the ingest parts its manifest names (Ray Data reads
them on the cluster), each worker embeds its block (consulting and extending the row cache
itself), and the driver writes the blocks as they come back in order, after checking each
block's `example_id`s against ingest's, row for row. The driver holds one block of vectors
and one of ids, never the corpus's texts. With the per-part cache the driver copies the
parts it has and hands the pool only the runs of parts it lacks (one pool per run), cutting
the blocks that come back at the ingest parts' ends.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore, part_file, read_part
from distill_core.config import ComputeSection, RunConfig
from distill_core.errors import ArtifactError
from distill_core.hashing import stable_hash
from distill_core.pipeline.batches import (
    RowStream,
    part_batches,
    stage_batches,
    stage_rows,
    verified_parts,
)
from distill_core.pipeline.executor import ActorSpec, BatchResult, Resources
from distill_core.pipeline.stage import PartReuse, Stage, StageContext, StageOutput
from distill_core.pipeline.static_model import cache_key, fit_settings, signals_static_dir
from distill_core.signals.actors import CorpusEmbedActor
from distill_core.signals.embeddings import (
    StringsHasher,
    TextsHasher,
    distinct_texts,
    embed_corpus,
    vectors_array,
)
from distill_core.signals.encoder import recorded_precision
from distill_core.signals.models import model_identity
from distill_core.signals.part_cache import PartCache
from distill_core.signals.readout import embed_actor_kwargs, embed_texts
from distill_core.signals.row_cache import RowCache, RowStats, cached_encode
from distill_core.signals.static_encoder import (
    STATIC_POOLING,
    is_static,
    static_identity,
)
from distill_core.signals.static_fit import fit_account


def _settings(cfg: RunConfig) -> dict[str, Any]:
    if is_static(cfg.signals.model):  # token vectors: no precision, no transformer pass
        settings = {"model": static_identity(cfg.signals.model),
                    "max_length": cfg.signals.max_length, "pooling": STATIC_POOLING,
                    "normalize": "l2"}
        if (fit := fit_settings(cfg)) is not None:  # its sample is the ingest parts' (identity)
            settings["static_fit"] = {**fit.as_dict(), "precision": recorded_precision(
                cfg.signals.precision, cfg.compute.backend)}
        return settings
    return {"model": model_identity(cfg.signals.model), "max_length": cfg.signals.max_length,
            "precision": recorded_precision(cfg.signals.precision, cfg.compute.backend),
            "pooling": "mean", "normalize": "l2"}


BATCH_ROWS = 65_536  # corpus rows embedded and written at a time
RAY_BATCH_ROWS = 200_000  # driver-fed pools: each batch is one pool's job (model load per batch)
PART_BLOCK_ROWS = 65_536  # workers reading the parts: most rows per block (and row-cache part)
BLOCKS_PER_WORKER = 4  # a small corpus is cut finer, so every worker of the pool gets some


def part_block_rows(rows: int, workers: int, batch_size: int) -> int:
    """Rows per block when workers read the parts: `PART_BLOCK_ROWS`, or fewer for a corpus
    too small to give each worker `BLOCKS_PER_WORKER` blocks (never below 8 encoder
    batches: each block is also one row-cache part)."""
    spread = -(-rows // max(workers * BLOCKS_PER_WORKER, 1))
    return min(PART_BLOCK_ROWS, max(spread, batch_size * 8))


def _texts(cfg: RunConfig, store: RunStore) -> dict[str, str]:
    """Embeddings depend on the texts, not on how ingest found them: keyed by their hash, and
    by the rows' example ids, which the artifact names (a relabelled corpus has the same texts
    under new ids; its vectors still come from the per-text row cache). With the row cache
    (the default, local runs folder) the identity is the ingest parts' sha256s instead (their
    bytes follow their rows), which costs no pass over the texts: the per-part cache is keyed
    by them, and a corpus with the same texts found another way misses the stage cache and
    copies or looks up its vectors. It does not depend on the backend (a finished run rerun
    on Ray is the same run)."""
    if uses_row_cache(cfg, store):
        return {"ingest_parts": stable_hash(_ingest_shas(store))}
    hasher, ids = TextsHasher(), StringsHasher()
    for batch in stage_batches(store, "ingest", ["example_id", "text", "text_pair"]):
        hasher.update(batch)
        ids.update(batch.column("example_id"))
    return {"texts": hasher.hexdigest(), "example_ids": ids.hexdigest()}


def uses_row_cache(cfg: RunConfig, store: RunStore) -> bool:
    """`signals.row_cache` on a local runs folder (the caches rename files in place, so not
    on an object store): the per-text row cache and, with it, the per-part cache (on Ray
    too: the driver copies the parts it has and hands the pool the others)."""
    return cfg.signals.row_cache and not store.remote


def has_pairs(store: RunStore) -> bool:
    """Whether any corpus row has a pair text (from the parts' footer statistics where they
    have them, else by reading the column)."""
    for path in verified_parts(store, "ingest"):
        meta = part_file(path).metadata
        index = meta.schema.names.index("text_pair")
        for group in range(meta.num_row_groups):
            column = meta.row_group(group).column(index)
            stats = column.statistics
            if stats is None or not stats.has_null_count:
                pairs = read_part(path, ["text_pair"]).column("text_pair")
                if pairs.null_count < len(pairs):
                    return True
                break
            if stats.null_count < column.num_values:
                return True
    return False


def encoder_resources(compute: ComputeSection) -> Resources:
    return Resources(cpus=compute.cpus_per_actor, gpus=compute.gpus_per_actor,
                     workers=compute.num_actors)


def _merge_rows(total: RowStats | None, batch: RowStats) -> RowStats:
    """The row-cache account of the batches so far: sums, the most parts one lookup read,
    the last part written."""
    if total is None:
        return batch
    total.rows_reused += batch.rows_reused
    total.rows_computed += batch.rows_computed
    total.parts_read = max(total.parts_read, batch.parts_read)
    if batch.part_written is not None:
        total.part_written = batch.part_written
    total.parts_written += batch.parts_written
    total.dropped += [d for d in batch.dropped if d not in total.dropped]
    total.not_saved = batch.not_saved or total.not_saved
    return total


def _merge_result(total: BatchResult | None, batch: BatchResult) -> BatchResult:
    """The encoder's account of the batches so far: rows per worker and seconds, summed."""
    if total is None:
        return batch
    for worker, rows in batch.workers.items():
        total.workers[worker] = total.workers.get(worker, 0) + rows
    total.timings["total_s"] = round(total.timings.get("total_s", 0.0)
                                     + batch.timings.get("total_s", 0.0), 3)
    if isinstance(batch.timings.get("precision"), dict):
        total.timings["precision"] = {**total.timings.get("precision", {}),  # type: ignore
                                      **batch.timings["precision"]}  # type: ignore[dict-item]
    return total


def _static_account(cfg: RunConfig, static_dir: str | None) -> dict[str, Any]:
    """For the manifest and the report: a fitted static table's sample and cosines."""
    if static_dir is None or fit_settings(cfg) is None:
        return {}
    return {"static_fit": {"folder": static_dir, **fit_account(static_dir)}}


def _cache_settings(cfg: RunConfig, store: RunStore) -> dict[str, Any]:
    """What the per-text and per-part caches are keyed by: the settings, and a fitted static
    table's identity (it depends on the corpus's sample, not on the config alone)."""
    return {**_settings(cfg), **{f"{k}_table": v for k, v in cache_key(cfg, store).items()}}


def _body(ctx: StageContext) -> StageOutput:
    assert ctx.writer is not None, "the runner hands every stage body a writer"
    static_dir = signals_static_dir(ctx.cfg, ctx.store, ctx.executor, ctx.resources)
    runs: dict[str, Any] = {}
    total_rows = stage_rows(ctx.store, "ingest")
    done = {"rows": 0, "distinct": 0, "parts_embedded": 0}

    def encode(texts):
        vectors, result = embed_texts(ctx.executor, ctx.cfg.signals, texts, ctx.resources,
                                      None, static_dir)
        runs["result"] = _merge_result(runs.get("result"), result)
        return vectors

    def encode_cached(texts):
        if "cache" not in runs:  # one cache object per stage: its key index is read once
            runs["cache"] = RowCache(ctx.store.cache_root, _cache_settings(ctx.cfg, ctx.store))
        vectors, stats = cached_encode(runs["cache"], texts, encode, ctx.store.run_id)
        runs["rows"] = _merge_rows(runs.get("rows"), stats)
        return vectors

    row_cache = uses_row_cache(ctx.cfg, ctx.store)
    pairs = has_pairs(ctx.store)
    if ctx.executor.reads_parts:
        return _body_from_parts(ctx, static_dir, row_cache, pairs, total_rows)
    step = RAY_BATCH_ROWS if ctx.executor.name == "ray" else BATCH_ROWS
    # Row cache on: each ingest part's signals rows are also kept whole (`part_cache.py`), and
    # a part seen before is copied, not looked up row by row and written again.
    parts = (PartCache(ctx.store.cache_root, _cache_settings(ctx.cfg, ctx.store),  # type: ignore[arg-type]
                       pairs)
             if uses_row_cache(ctx.cfg, ctx.store) else None)
    ingest = verified_parts(ctx.store, "ingest")
    shas = _ingest_shas(ctx.store) if parts is not None else [""] * len(ingest)
    for path, ingest_sha in zip(ingest, shas, strict=True):
        if parts is not None and _adopted(ctx, parts, ingest_sha, path):
            done["rows"] += part_file(path).metadata.num_rows
            ctx.report(done["rows"], total_rows)
            continue
        for batch in part_batches(path, ["example_id", "split", "text", "text_pair"], step):
            if batch.num_rows == 0:
                continue
            ctx.writer.write(embed_corpus(batch, encode_cached if row_cache else encode, pairs))
            done["rows"] += batch.num_rows
            done["distinct"] += len(distinct_texts(batch))
            ctx.report(done["rows"], total_rows)
        _part_done(ctx, parts, ingest_sha, part_file(path).metadata.num_rows)
        done["parts_embedded"] += 1
    extra: dict[str, Any] = {"backend": ctx.executor.name, "batch_rows": step,
                             **_row_account(runs.get("rows"), done["distinct"]),
                             **_static_account(ctx.cfg, static_dir)}
    reused_all = False
    if parts is not None:
        extra["part_cache"] = parts.account()
        reused_all = parts.reused > 0 and done["parts_embedded"] == 0
    if "result" in runs:  # the encoder ran (not when every text came from the row cache)
        extra.update(_encoder_account(runs["result"].workers, runs["result"].timings))
    return StageOutput(None, Counts.one_to_one(done["rows"]), extra=extra,
                       from_cache=reused_all)


def _adopted(ctx: StageContext, parts: PartCache, ingest_sha: str, ingest_part: Path) -> bool:
    """Whether the signals rows of this ingest part came from the part cache (copied into the
    stage and checked against the entry's record); an entry that does not check out is
    dropped, with the reason in the manifest, and the part is embedded instead."""
    assert ctx.writer is not None
    found = parts.entry(ingest_sha)
    if found is None:
        return False
    cached, record = found
    rows = part_file(ingest_part).metadata.num_rows
    problem = (f"it records {record.get('rows')} rows, the ingest part has {rows}"
               if record.get("rows") != rows else ctx.writer.adopt(cached, record))
    if problem is not None:
        parts.drop(ingest_sha, problem)
        return False
    parts.reused += 1
    return True


def _row_account(stats: RowStats | None, distinct: int) -> dict[str, Any]:
    """The manifest's account of distinct texts reused from the row cache and embedded
    (`stats` None: the cache was off, every distinct text was embedded)."""
    if stats is None:
        return {"rows_reused": 0, "rows_computed": distinct, "row_cache": {"enabled": False}}
    return {"rows_reused": stats.rows_reused, "rows_computed": stats.rows_computed,
            "row_cache": stats.to_dict()}


def _encoder_account(workers: dict[str, int], timings: dict[str, Any]) -> dict[str, Any]:
    """The manifest's account of the encoder: texts per worker, timings, throughput."""
    seconds = timings.get("total_s", 0.0)
    return {"workers": workers, "backend_timings": timings,
            "texts_per_second": round(sum(workers.values()) / max(seconds, 1e-9), 1)}


def _checked_block(ids: RowStream, block: dict[str, Any]) -> pa.Table:
    """The ingest rows (example_id, split) a worker's block of output stands for, after
    checking that the block lists the same `example_id`s in the same order."""
    got = block["example_id"]
    rows = ids.take(len(got))
    if rows.num_rows != len(got):
        raise ArtifactError(f"signals: the workers returned more rows than ingest has "
                            f"({len(got)} in a block, {rows.num_rows} left); rerun the command")
    want = rows.column("example_id")
    if not pa.array(got.tolist(), type=want.type).equals(want.combine_chunks()):
        raise ArtifactError("signals: a block of the workers' output is not in ingest's row "
                            "order (example_id differs); rerun the command")
    return rows


@dataclass
class _WorkerAccount:
    """What the pool's blocks reported: texts embedded (per worker), distinct texts seen,
    the row-cache account and the precision each worker ran."""

    embedded: int = 0
    distinct: int = 0
    totals: RowStats | None = None
    workers: dict[str, int] = field(default_factory=dict)
    precision: dict[str, str] = field(default_factory=dict)

    def add(self, notes: Any) -> None:
        for note in notes:
            if not note:
                continue
            account = json.loads(note)
            self.embedded += account["embedded"]
            if account["embedded"]:
                self.workers[account["where"]] = (self.workers.get(account["where"], 0)
                                                  + account["embedded"])
            if "precision" in account:
                where, ran = account["precision"].rsplit("=", 1)
                self.precision[where] = ran
            if "rows" in account:
                stats = RowStats(**account["rows"])
                self.distinct += stats.rows_reused + stats.rows_computed
                self.totals = _merge_rows(self.totals, stats)
            else:
                self.distinct += account["embedded"]


def _body_from_parts(ctx: StageContext, static_dir: str | None, row_cache: bool, pairs: bool,
                     total_rows: int) -> StageOutput:
    """The stage on an executor whose workers read ingest's parts (see the module doc). With
    the per-part cache, the parts it has are copied in order and the others handed to the
    pool in runs of consecutive parts (one pool per run), the output cut at their ends."""
    assert ctx.writer is not None
    cfg = ctx.cfg
    actor = ActorSpec(CorpusEmbedActor, {
        "embed": embed_actor_kwargs(cfg.signals, static_dir), "pairs": pairs,
        "cache_root": str(ctx.store.cache_root) if row_cache else None,
        "settings": _cache_settings(cfg, ctx.store) if row_cache else None,
        "run_id": ctx.store.run_id},
        "signals")
    ids = RowStream(ctx.store, "ingest", ["example_id", "split"])
    block_rows = part_block_rows(total_rows, ctx.resources.workers, cfg.signals.batch_size)
    parts = (PartCache(ctx.store.cache_root, _cache_settings(cfg, ctx.store),  # type: ignore[arg-type]
                       pairs)
             if uses_row_cache(cfg, ctx.store) else None)
    ingest = verified_parts(ctx.store, "ingest")
    shas = _ingest_shas(ctx.store) if parts is not None else [""] * len(ingest)
    sizes = [part_file(path).metadata.num_rows for path in ingest]
    start = time.perf_counter()
    done = {"rows": 0, "parts_embedded": 0}
    seen = _WorkerAccount()

    def embed(run: list[int]) -> None:
        """The pool over ingest parts `run` (consecutive), written part by part."""
        if not run:
            return
        queue = list(run)
        left = sizes[queue[0]]
        for result in ctx.executor.map_parquet(actor, [ingest[i] for i in run],
                                               ["example_id", "split", "text", "text_pair"],
                                               ctx.resources, block_rows):
            block = result.columns
            rows = _checked_block(ids, block)
            columns = {"example_id": rows.column("example_id"), "split": rows.column("split"),
                       "embedding": vectors_array(block["embedding"])}
            if pairs:
                columns["embedding_pair"] = vectors_array(block["embedding_pair"])
            table = pa.table(columns)
            offset = 0
            while offset < table.num_rows:
                take = min(left, table.num_rows - offset)
                ctx.writer.write(table.slice(offset, take))
                offset, left = offset + take, left - take
                if left == 0:  # the end of an ingest part: its signals part is whole
                    _part_done(ctx, parts, shas[queue[0]], sizes[queue[0]])
                    done["parts_embedded"] += 1
                    queue.pop(0)
                    left = sizes[queue[0]] if queue else 0
            seen.add(block["_account"])
            done["rows"] += rows.num_rows
            ctx.report(done["rows"], total_rows)
        if queue:
            raise ArtifactError(f"signals: the workers returned fewer rows than ingest's "
                                f"parts hold ({done['rows']} of {total_rows}); rerun the command")

    run: list[int] = []
    for i, path in enumerate(ingest):
        if parts is not None and parts.entry(shas[i]) is not None:
            embed(run)
            run = []
            if _adopted(ctx, parts, shas[i], path):
                ids.take(sizes[i])
                done["rows"] += sizes[i]
                ctx.report(done["rows"], total_rows)
                continue
        run.append(i)
    embed(run)
    if not ids.exhausted():
        raise ArtifactError(f"signals: the workers returned {done['rows']} rows, ingest has "
                            f"{total_rows}; rerun the command")
    seconds = time.perf_counter() - start
    extra: dict[str, Any] = {"backend": ctx.executor.name, "batch_rows": block_rows,
                             "read_by": "workers", **_row_account(seen.totals, seen.distinct),
                             **_static_account(cfg, static_dir)}
    if seen.embedded:  # `workers` counts the texts each embedded: they sum to `embedded`
        timings: dict[str, Any] = {"total_s": round(seconds, 3)}
        if seen.precision:
            timings["precision"] = seen.precision
        extra.update(_encoder_account(seen.workers, timings))
    reused_all = False
    if parts is not None:
        extra["part_cache"] = parts.account()
        reused_all = parts.reused > 0 and done["parts_embedded"] == 0
    return StageOutput(None, Counts.one_to_one(done["rows"]), extra=extra,
                       from_cache=reused_all)


def _part_done(ctx: StageContext, parts: PartCache | None, ingest_sha: str, rows: int) -> None:
    """Close the signals part of one ingest part and keep it in the per-part cache."""
    assert ctx.writer is not None
    written = ctx.writer.end_part()
    if parts is not None and len(written) == 1:  # one signals part for the ingest part
        parts.save(ingest_sha, written[0], rows)  # type: ignore[arg-type]


def _ingest_shas(store: RunStore) -> list[str]:
    """The sha256 of each ingest data part, in the order `verified_parts` lists them."""
    records = (store.manifest("ingest") or {}).get("parts", {})
    return [records[name]["sha256"] for name in sorted(records) if name.startswith("data/")]


def _part_reuse(cfg: RunConfig, store: RunStore) -> PartReuse | None:
    """For `plan`: how many ingest parts' signals the per-part cache holds (None: not used)."""
    if not uses_row_cache(cfg, store):
        return None
    parts = PartCache(store.cache_root, _cache_settings(cfg, store), has_pairs(store))
    shas = _ingest_shas(store)
    return PartReuse(sum(parts.holds(sha) for sha in shas), len(shas), str(parts.folder))


def _report(store: RunStore) -> list[str]:
    manifest = store.manifest("signals") or {}
    lines: list[str] = []
    if fit := manifest.get("static_fit"):
        lines.append(f"- static table fitted to its encoder on the corpus's first "
                     f"{fit['texts']:,} training texts (sample sha256 "
                     f"{fit['sample_sha256'][:12]}): mean cosine to the encoder's vectors "
                     f"{fit['cosine_mapped']:.3f} mapped, {fit['cosine_fitted']:.3f} fitted "
                     f"(`{fit['folder']}`)")
    if "rows_computed" not in manifest:
        return lines
    rows = manifest.get("row_cache", {})
    restored = " (stage restored whole from the cache: counts of the run that computed it)" \
        if manifest.get("cache", {}).get("hit") else ""
    if not rows.get("key"):
        return [*lines, f"- embeddings: {manifest['rows_computed']} distinct texts embedded, "
                f"row cache off{restored}"]
    lines.append(f"- row cache: {manifest['rows_reused']} distinct texts reused, "
                 f"{manifest['rows_computed']} embedded (`{rows.get('folder')}`, "
                 f"{rows.get('parts_read', 0)} parts read){restored}")
    lines += [f"- row cache: dropped a damaged part, its texts embedded again: {why}"
              for why in rows.get("dropped", [])]
    if rows.get("not_saved"):
        lines.append(f"- row cache: new vectors not saved ({rows['not_saved']})")
    return lines


SIGNALS = Stage(
    name="signals", version=2,
    writes="embeddings: example_id, split, embedding[, embedding_pair] (float32, L2-normalised)",
    reads=lambda cfg: ("ingest",), settings=_settings, body=_body, cached=True,
    copy_to_cache=lambda cfg, store: not uses_row_cache(cfg, store),
    resources=encoder_resources, identity=_texts, retries=2, report=_report,
    part_reuse=_part_reuse)
