"""ingest: files (or a hub dataset) -> the corpus with stable ids, splits and a label map.

Training rows are deduplicated; the evaluation split is kept as given (repeats
included, counted as `eval_duplicates`), less its unreadable rows. The rows are
streamed into the run folder batch by batch (`stream_dataset`), never held whole. A folder
or glob source reuses the per-file results of an earlier run (`ingest/file_cache.py`): a
rerun over a folder that gained a day's file parses only that file; the manifest counts
`files_reused` / `rows_reused` against `files_parsed` / `rows_parsed`."""

from __future__ import annotations

from typing import Any

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore
from distill_core.config import RunConfig
from distill_core.errors import IngestError
from distill_core.ingest.file_cache import FileCache
from distill_core.ingest.ingest import (
    data_dir_from,
    resolve_dataset,
    resolve_sources,
    stream_dataset,
)
from distill_core.pipeline.stage import Stage, StageContext, StageOutput


def dataset_spec(cfg: RunConfig):
    """The dataset the config names (registered, or its own train and eval sources)."""
    return resolve_dataset(cfg.data.dataset, cfg.data.train, cfg.data.eval, cfg.data.label_names)


def _settings(cfg: RunConfig) -> dict[str, Any]:
    settings: dict[str, Any] = {"label_names": dataset_spec(cfg).label_names}
    if cfg.ingest.max_chars is not None:  # the default leaves fingerprints as they were
        settings["max_chars"] = cfg.ingest.max_chars
    return settings


def _sources(cfg: RunConfig, store: RunStore) -> dict[str, str]:
    """The source files' identities (content hashes) and columns: what the corpus is made of."""
    sources = [s.identity() | {"split": s.split, "columns": s.columns.model_dump()}
               for s in resolve_sources(dataset_spec(cfg), data_dir_from(cfg.data.data_dir))]
    return {"sources": str(sources)}


def _body(ctx: StageContext) -> StageOutput:
    """Stream the sources into the run folder batch by batch (corpus rows and rejects)."""
    ctx.report(0, None, "reading")
    writer = ctx.writer
    if writer is None:
        raise RuntimeError("ingest writes through the runner's StageWriter (ctx.writer)")
    # A folder or glob source reuses the files an earlier run parsed (runs folder's cache;
    # a local one only: entries are plain files checked by sha256 as they are read).
    cache = None if ctx.store.remote else FileCache(ctx.store.cache_root)  # type: ignore[arg-type]
    result = stream_dataset(dataset_spec(ctx.cfg), data_dir_from(ctx.cfg.data.data_dir), writer,
                            max_chars=ctx.cfg.ingest.max_chars, spill_dir=writer.tmp,
                            file_cache=cache)
    split_rows = {s: result.rows_by_split.get(s, 0) for s in ("train", "eval")}
    for split, rows in split_rows.items():
        if rows == 0:  # nothing to distil or to score: stop before any model work
            read = [f"{src['source']} ({src['rows_read']} rows read)" for src in result.sources
                    if src["split"] == split]
            raise IngestError(f"the {split} split has no usable rows: {', '.join(read)}; "
                              "`textdistill validate` lists every rejected row and why")
    counts = Counts(result.rows_in, result.rows_out, result.rejects_by_reason,
                    {"rows_by_split": split_rows})
    ctx.report(1, 1, f"{result.rows_out} rows")
    extra: dict[str, Any] = {"label_names": result.label_names,
                             "eval_duplicates": result.eval_duplicates}
    for key in ("files_reused", "files_parsed", "rows_reused", "rows_parsed"):
        if any(key in src for src in result.sources):
            extra[key] = sum(src.get(key, 0) for src in result.sources)
    dropped = [d for src in result.sources for d in src.get("cache_dropped", [])]
    if dropped:
        extra["cache_dropped"] = dropped
    return StageOutput(None, counts, extra=extra,
                       inputs={"sources": result.sources})


def _report(store: RunStore) -> list[str]:
    ingest = store.manifest("ingest") or {}
    lines = [f"- {source['split']}: `{source['source']}` ({source['rows_read']} rows read, "
             + (f"{len(source['files'])} files)" if "files" in source
                else f"sha256 {str(source.get('sha256', '-'))[:12]})")
             for source in ingest.get("inputs", {}).get("sources", [])]
    if "files_reused" in ingest:
        lines.append(f"- files reused from an earlier ingest: {ingest['files_reused']} "
                     f"({ingest.get('rows_reused', 0)} rows), parsed: "
                     f"{ingest.get('files_parsed', 0)} ({ingest.get('rows_parsed', 0)} rows)"
                     + (f"; cache entries dropped (did not verify): "
                        f"{len(ingest['cache_dropped'])}" if ingest.get("cache_dropped") else ""))
    if "eval_duplicates" in ingest:
        lines.append(f"- evaluation split kept as given: {ingest['eval_duplicates']} repeated "
                     "rows kept (never deduplicated; only unreadable rows are rejected)")
    return lines


INGEST = Stage(
    name="ingest", version=3,
    writes="corpus: example_id, split, text, text_pair, label, label_id, source, source_row "
           "(+ rejects with file, row, field, reason)",
    reads=lambda cfg: (), settings=_settings, body=_body, cached=True, identity=_sources,
    report=_report)
