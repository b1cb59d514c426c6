"""Large labelled corpora for the scale benchmark, built from a shared dataset's real texts.

Each row joins 2 or 3 distinct training sentences of one label (a seeded draw; the label is
kept), so a corpus of millions of rows reads like the source, keeps its classes and
proportions, and needs no hub. Rows are distinct: a row is the tuple of source sentences it
joins, tuples are drawn with a seeded generator and repeated tuples dropped before any text
is built. The evaluation split is the dataset's real validation file, copied byte for byte.

Layout of a corpus folder (sizes are rows of the training split):

    days/day-01.parquet .. day-NN.parquet   the corpus as daily files (columns text, label)
    days/day-new.parquet                    +1 % new rows, for the nightly rerun
    inputs/base/train.parquet               days 1..N as one file (kept for single-file
    inputs/nightly/train.parquet            configs); nightly adds day-new
    inputs/*/<eval path>                    the real validation file (a hard link)
    live/days/, live/<eval path>            made by bench_scale (`live_folder`): links to the
                                            days the runs read as one folder source
    corpus_manifest.json                    seed, sources and sha256, recipe, row counts

Only integer codes (a few bytes per row) are held for the whole corpus; texts are built and
written in chunks, so a 5M-row corpus builds in bounded memory.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distill_core.hashing import stream_sha256

RECIPE_VERSION = 1
CHUNK_ROWS = 100_000
JOINER = " "
SCHEMA = pa.schema([("text", pa.string()), ("label", pa.string())])
csv.field_size_limit(1 << 24)


@dataclass(frozen=True)
class CorpusSpec:
    """What a corpus is built from and how big it is."""

    dataset: str
    rows: int
    seed: int = 0
    days: int = 5
    growth: float = 0.01

    @property
    def extra_rows(self) -> int:
        return max(1, round(self.rows * self.growth))


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return stream_sha256(handle)


def _source_files(dataset: str) -> tuple[Any, Any]:
    """The registered dataset's local train and eval file sources (format, columns, quoting)."""
    from distill_core.ingest.registry import get_dataset

    spec = get_dataset(dataset)
    if spec.train.file is None or spec.eval.file is None:
        raise SystemExit(f"dataset {dataset!r} has no local files registered")
    return spec.train.file, spec.eval.file


def _read_rows(path: Path, source: Any) -> Iterator[tuple[str, str]]:
    """(text, raw label) of a CSV/TSV file as the registry describes it."""
    if source.format not in ("csv", "tsv") or source.text_pair is not None:
        raise SystemExit(f"{path}: the corpus builder reads single-text CSV/TSV sources only")
    delimiter = source.delimiter or ("\t" if source.format == "tsv" else ",")
    quoting = csv.QUOTE_MINIMAL if source.quoting else csv.QUOTE_NONE
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        columns = next(reader) if source.header else list(source.columns or [])
        text_at, label_at = columns.index(source.text), columns.index(source.label)
        for fields in reader:
            if len(fields) == len(columns):
                yield fields[text_at].strip(), fields[label_at].strip()


def sentence_pools(path: Path, source: Any) -> dict[str, list[str]]:
    """Distinct non-empty sentences per raw label, in file order."""
    pools: dict[str, dict[str, None]] = {}
    for text, label in _read_rows(path, source):
        if text and label:
            pools.setdefault(label, {})[text] = None
    return {label: list(texts) for label, texts in sorted(pools.items())}


def _allocate(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder)."""
    exact = np.asarray(weights, dtype=float) * total / sum(weights)
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def draw_tuples(rng: np.random.Generator, pool_size: int, count: int) -> np.ndarray:
    """`count` distinct rows of 3 sentence indices (-1 = unused third) from `pool_size`
    sentences: 2 or 3 distinct sentences each, in draw order, repeats dropped."""
    if pool_size < 3:
        raise SystemExit(f"a label has {pool_size} distinct sentences; need at least 3")
    kept = np.empty((0, 3), dtype=np.int64)
    while len(kept) < count:
        want = int((count - len(kept)) * 1.05) + 16
        rows = rng.integers(0, pool_size, size=(want, 3), dtype=np.int64)
        pairs = rng.random(want) < 0.5
        rows[pairs, 2] = -1
        ok = (rows[:, 0] != rows[:, 1]) & (rows[:, 0] != rows[:, 2]) & (rows[:, 1] != rows[:, 2])
        kept = np.concatenate([kept, rows[ok]])
        base = pool_size + 1  # unique code per tuple, in draw order
        codes = ((kept[:, 0] * base + kept[:, 1]) * base) + (kept[:, 2] + 1)
        _, first = np.unique(codes, return_index=True)
        kept = kept[np.sort(first)]
    return kept[:count]


def plan_rows(spec: CorpusSpec, pools: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(label index per row, sentence indices per row) for base + extra rows, shuffled."""
    rng = np.random.default_rng(spec.seed)
    labels = list(pools)
    total = spec.rows + spec.extra_rows
    counts = _allocate(total, [len(pools[label]) for label in labels])
    tuples = [draw_tuples(rng, len(pools[label]), n)
              for label, n in zip(labels, counts, strict=True)]
    label_of = np.concatenate([np.full(n, i, dtype=np.int16) for i, n in enumerate(counts)])
    order = rng.permutation(total)
    return label_of[order], np.concatenate(tuples)[order]


def _texts(pools: dict[str, list[str]], label_of: np.ndarray, tuples: np.ndarray) -> pa.Table:
    labels = list(pools)
    texts, raw = [], []
    for label_index, (a, b, c) in zip(label_of.tolist(), tuples.tolist(), strict=True):
        pool = pools[labels[label_index]]
        parts = (pool[a], pool[b]) if c < 0 else (pool[a], pool[b], pool[c])
        texts.append(JOINER.join(parts))
        raw.append(labels[label_index])
    return pa.table({"text": texts, "label": raw}, schema=SCHEMA)


def _write(path: Path, pools: dict[str, list[str]], label_of: np.ndarray,
           tuples: np.ndarray) -> dict[str, Any]:
    """Rows written in chunks to one Parquet file (one row group per chunk)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with pq.ParquetWriter(temporary, SCHEMA, compression="zstd") as writer:
        for start in range(0, len(label_of), CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            writer.write_table(_texts(pools, label_of[start:stop], tuples[start:stop]))
    os.replace(temporary, path)
    return {"path": str(path), "rows": int(len(label_of)), "sha256": sha256_of(path)}


def concat_parquet(sources: list[Path], target: Path) -> None:
    """One Parquet file holding `sources` in order, copied batch by batch."""
    temporary = target.with_name(f".{target.name}.tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(temporary, SCHEMA, compression="zstd") as writer:
        for source in sources:
            for batch in pq.ParquetFile(source).iter_batches(batch_size=CHUNK_ROWS):
                writer.write_batch(batch)
    os.replace(temporary, target)


def link_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def data_block(train_source: Any, eval_source: Any, label_names: list[str]) -> dict[str, Any]:
    """The run config's `data:` block that reads this corpus (paths relative to data_dir)."""
    return {
        "dataset": None,
        "train": {"file": {"path": "train.parquet", "text": "text", "label": "label",
                           "label_map": train_source.label_map}},
        "eval": {"file": eval_source.model_dump(mode="json", exclude_none=True)},
        "label_names": label_names,
    }


def build_corpus(spec: CorpusSpec, data_dir: Path, target: Path) -> dict[str, Any]:
    """Build (or rebuild) the corpus folder `target`; returns its manifest."""
    from distill_core.ingest.registry import get_dataset

    start = time.perf_counter()
    train_source, eval_source = _source_files(spec.dataset)
    train_path, eval_path = data_dir / train_source.path, data_dir / eval_source.path
    pools = sentence_pools(train_path, train_source)
    label_of, tuples = plan_rows(spec, pools)
    days_dir = target / "days"
    shutil.rmtree(target / "inputs", ignore_errors=True)
    shutil.rmtree(days_dir, ignore_errors=True)
    days_dir.mkdir(parents=True)
    bounds = np.linspace(0, spec.rows, spec.days + 1).round().astype(int)
    files = [_write(days_dir / f"day-{i + 1:02d}.parquet", pools, label_of[lo:hi], tuples[lo:hi])
             for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]
    extra = _write(days_dir / "day-new.parquet", pools, label_of[spec.rows:],
                   tuples[spec.rows:])
    day_paths = [Path(f["path"]) for f in files]
    for name, parts in (("base", day_paths), ("nightly", [*day_paths, Path(extra["path"])])):
        concat_parquet(parts, target / "inputs" / name / "train.parquet")
        link_file(eval_path, target / "inputs" / name / eval_source.path)
    labels = list(pools)
    names = get_dataset(spec.dataset).label_names or labels
    base_counts = np.bincount(label_of[: spec.rows], minlength=len(labels))
    manifest = {
        "recipe_version": RECIPE_VERSION, "dataset": spec.dataset, "seed": spec.seed,
        "rows": spec.rows, "extra_rows": spec.extra_rows, "days": spec.days,
        "recipe": ("each row joins 2 or 3 (p = 0.5 each) distinct sentences of one label, "
                   "drawn uniformly with numpy default_rng(seed) from the label's distinct "
                   "non-empty training sentences, joined by one space; repeated tuples "
                   "dropped; labels allocated in the source's proportions; rows shuffled; "
                   "base rows split into `days` files, the next extra_rows into day-new"),
        "sources": {
            "train": {"path": str(train_path), "sha256": sha256_of(train_path),
                      "distinct_sentences": {k: len(v) for k, v in pools.items()}},
            "eval": {"path": str(eval_path), "sha256": sha256_of(eval_path),
                     "note": "the real validation file, hard-linked (or copied) unchanged"},
        },
        "label_rows": {label: int(n) for label, n in zip(labels, base_counts, strict=True)},
        "files": {"days": files, "new": extra},
        "data": data_block(train_source, eval_source, names),
        "build_seconds": round(time.perf_counter() - start, 2),
    }
    (target / "corpus_manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def existing_manifest(spec: CorpusSpec, target: Path) -> dict[str, Any] | None:
    """The manifest of an already built corpus matching `spec`, or None."""
    path = target / "corpus_manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    same = (manifest.get("recipe_version") == RECIPE_VERSION and manifest.get("dataset") ==
            spec.dataset and manifest.get("rows") == spec.rows and manifest.get("seed") ==
            spec.seed and manifest.get("days") == spec.days and
            manifest.get("extra_rows") == spec.extra_rows)
    inputs = [target / "inputs" / name / "train.parquet" for name in ("base", "nightly")]
    return manifest if same and all(p.is_file() for p in inputs) else None
