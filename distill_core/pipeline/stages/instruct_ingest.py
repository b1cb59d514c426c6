"""ingest, instruction data: prompt/response files -> the corpus (+ rejects), evaluation split.

The rows come from `instruct.ingest` (Alpaca JSON, GSM8K JSONL, any mapped
CSV/TSV/JSONL/Parquet; every unusable row a reject with its reason) and are
stored in the corpus's own columns, so every later stage, filter and audit reads
them as it reads a text pair: `text` is the prompt (instruction, then the input
after a blank line), `text_pair` the response, `label` the constant
`instruction` (label id 0: one class); `instruction` and `input` keep the parts.
The evaluation split is the configured file, or a seeded holdout of the training
file recorded in the manifest (`holdout`: seed, fraction, rows, ids' sha256).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from distill_core.artifacts.counts import Counts
from distill_core.artifacts.store import RunStore, file_sha256
from distill_core.config import RunConfig
from distill_core.errors import IngestError
from distill_core.ingest.ingest import HEADER_FORMATS, data_dir_from
from distill_core.ingest.readers import read_file
from distill_core.instruct.ingest import InstructionSource, _resolve, ingest_instructions
from distill_core.instruct.rows import ID_LABEL
from distill_core.pipeline.stage import Stage, StageContext, StageOutput


def _sources(cfg: RunConfig) -> tuple[InstructionSource, InstructionSource | None, Any]:
    """(train, eval, holdout), `ingest.max_chars` filling a source's unset limit."""
    assert cfg.data.instruction is not None  # the config checks it for task instruction
    train, evaluation, holdout = cfg.data.instruction.resolved()

    def limited(source: InstructionSource | None) -> InstructionSource | None:
        if source is None or source.max_chars is not None or cfg.ingest.max_chars is None:
            return source
        return source.model_copy(update={"max_chars": cfg.ingest.max_chars})

    return limited(train), limited(evaluation), holdout  # type: ignore[return-value]


def _settings(cfg: RunConfig) -> dict[str, Any]:
    train, evaluation, holdout = _sources(cfg)
    return {"train": train.model_dump(mode="json"),
            "eval": None if evaluation is None else evaluation.model_dump(mode="json"),
            "holdout": None if holdout is None else holdout.model_dump(mode="json")}


def _existing(source: InstructionSource, data_dir: Path | None) -> Path:
    path = _resolve(source.path, data_dir)
    if not path.is_file():
        raise IngestError(f"instruction data file {path} does not exist; check "
                          "data.instruction and data.data_dir")
    return path


def _identity(cfg: RunConfig, store: RunStore) -> dict[str, str]:
    """The source files' content hashes: what the corpus is made of."""
    data_dir = data_dir_from(cfg.data.data_dir)
    train, evaluation, _ = _sources(cfg)
    hashes = []
    for source in (train, evaluation):
        if source is not None:
            path = _existing(source, data_dir)
            hashes.append({"path": str(path), "sha256": file_sha256(path)})
    return {"sources": str(hashes)}


def check_headers(cfg: RunConfig) -> None:
    """Read the first record of each instruction file, so that a missing file or a column
    that its header does not have fails now (`textdistill plan`), as the run would."""
    data_dir = data_dir_from(cfg.data.data_dir)
    train, evaluation, _ = _sources(cfg)
    for source in (train, evaluation):
        if source is not None:
            path = _existing(source, data_dir)
            options = source.file_source(path)
            if options.format in HEADER_FORMATS:  # JSON: columns known per row (see there)
                next(iter(read_file(path, options)), None)


def corpus_table(rows: pa.Table) -> pa.Table:
    """Instruction rows in the corpus's columns (see the module docstring)."""
    n = rows.num_rows
    return pa.table({
        "example_id": rows.column("example_id"), "split": rows.column("split"),
        "text": rows.column("prompt"), "text_pair": rows.column("response"),
        "label": pa.array([ID_LABEL] * n, pa.string()),
        "label_id": pa.array([0] * n, pa.int32()),
        "source": rows.column("source"), "source_row": rows.column("source_row"),
        "instruction": rows.column("instruction"), "input": rows.column("input")})


def _body(ctx: StageContext) -> StageOutput:
    ctx.report(0, None, "reading")
    train, evaluation, holdout = _sources(ctx.cfg)
    result = ingest_instructions(train, evaluation, holdout, data_dir_from(ctx.cfg.data.data_dir))
    corpus = corpus_table(result.corpus)
    splits = corpus.column("split").to_pylist()
    split_rows = {s: splits.count(s) for s in ("train", "eval")}
    if split_rows["eval"] == 0:
        raise IngestError("the eval split has no usable rows: "
                          + ", ".join(f"{s['source']} ({s['rows_read']} rows read)"
                                      for s in result.sources if s["split"] == "eval")
                          + "; `textdistill audit` lists every rejected row and why")
    counts = Counts.of(result.rows_in, corpus.num_rows,
                       result.rejects.column("reason").to_pylist(),
                       rows_by_split=split_rows)
    ctx.report(1, 1, f"{corpus.num_rows} rows")
    eval_duplicates = sum(s["duplicates_kept"] for s in result.sources if s["split"] == "eval")
    return StageOutput(corpus, counts, rejects=result.rejects,
                       extra={"label_names": [ID_LABEL], "task": "instruction",
                              "holdout": result.holdout, "eval_duplicates": eval_duplicates},
                       inputs={"sources": result.sources})


def validation(cfg: RunConfig) -> Any:
    """What `textdistill validate` prints for instruction data: the rows ingest would read
    and reject (sources, rejects, label names), without a run."""
    from types import SimpleNamespace

    train, evaluation, holdout = _sources(cfg)
    unusable: list[str] = []
    result = ingest_instructions(train, evaluation, holdout, data_dir_from(cfg.data.data_dir),
                                 unusable)
    return SimpleNamespace(sources=result.sources, rejects=result.rejects,
                           label_names=[ID_LABEL], unusable=unusable)


def _report(store: RunStore) -> list[str]:
    ingest = store.manifest("ingest") or {}
    lines = [f"- {s['split']}: `{s['source']}` ({s['rows_read']} rows read, "
             f"{s['rows_out']} kept, sha256 {str(s.get('sha256', '-'))[:12]})"
             for s in ingest.get("inputs", {}).get("sources", [])]
    if holdout := ingest.get("holdout"):
        lines.append(f"- evaluation split: {holdout['rows']} rows held out of the training "
                     f"file (fraction {holdout['fraction']}, seed {holdout['seed']}, ids sha256 "
                     f"{holdout['ids_sha256'][:12]}); pool: {holdout['pool_rows']} rows")
    return lines


INSTRUCTION_INGEST = Stage(
    name="ingest", version=1,
    writes="corpus: example_id, split, text (prompt), text_pair (response), label "
           "('instruction'), label_id, source, source_row, instruction, input (+ rejects)",
    reads=lambda cfg: (), settings=_settings, body=_body, cached=True, identity=_identity,
    report=_report)
