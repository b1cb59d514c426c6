"""The signals stage's identity (a hash of the corpus's texts and example ids in row order):
hashed from Arrow's buffers (this code) against row by row in Python (the code at a commit,
read from git), side by side in one process on the same batches of real SST-2 sentences.

    python benchmarks/bench_texts_hash.py [--rows 1000000] [--baseline 2c17ef9]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.git_baseline import module_at  # noqa: E402
from distill_core.signals import embeddings as current  # noqa: E402

BATCH = 65_536


def batches(data_dir: Path, rows: int) -> list[pa.Table]:
    """`rows` rows of SST-2 training sentences (repeated, each with its row number so texts
    stay distinct), no pair texts, cut into the stage's 65,536-row batches."""
    train = pacsv.read_csv(data_dir / "sst2_glue" / "train.tsv",
                           parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False))
    sentences = train.column("sentence").to_pylist()
    texts = [f"{sentences[i % len(sentences)]} {i}" for i in range(rows)]
    ids = [hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in texts]
    return [pa.table({"example_id": pa.array(ids[i:i + BATCH]),
                      "text": pa.array(texts[i:i + BATCH]),
                      "text_pair": pa.nulls(len(texts[i:i + BATCH]), pa.string())})
            for i in range(0, rows, BATCH)]


def old_identity(module, tables: list[pa.Table]) -> str:
    """The stage's identity as the baseline computed it (its `_texts` loop)."""
    hasher, ids = module.TextsHasher(), hashlib.blake2b(digest_size=16)
    for batch in tables:
        hasher.update(batch)
        for example_id in batch.column("example_id").to_pylist():
            ids.update(example_id.encode("utf-8") + b"\x1e")
    return hasher.hexdigest() + ids.hexdigest()


def new_identity(tables: list[pa.Table]) -> str:
    """The stage's identity as `pipeline/stages/signals.py::_texts` computes it now."""
    hasher, ids = current.TextsHasher(), current.StringsHasher()
    for batch in tables:
        hasher.update(batch)
        ids.update(batch.column("example_id"))
    return hasher.hexdigest() + ids.hexdigest()


def timed(function, *args) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        function(*args)
        best = min(best, time.perf_counter() - start)
    return round(best, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline", default="2c17ef9")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    args = parser.parse_args()
    tables = batches(args.data_dir, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        old = module_at(args.baseline, "distill_core/signals/embeddings.py", Path(tmp))
        results = {"rows": args.rows, "best of": 3,
                   f"row by row ({args.baseline}) s": timed(old_identity, old, tables),
                   "from buffers s": timed(new_identity, tables)}
    results["speed-up"] = round(results[f"row by row ({args.baseline}) s"]
                                / max(results["from buffers s"], 1e-9), 1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
