"""The per-text embedding cache: a rerun over a grown SST-2 slice embeds only its new texts,
gives the vectors a full computation gives, and never reuses a damaged or half-written part."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from distill_core.config import load_config
from distill_core.pipeline.executor import LocalExecutor, Resources
from distill_core.pipeline.stages.signals import _settings
from distill_core.report import build_report
from distill_core.signals.embeddings import distinct_texts, matrix
from distill_core.signals.readout import embed_texts
from distill_core.signals.row_cache import (
    KEY_TYPE,
    RowCache,
    _key_words,
    _PartIndex,
    cached_encode,
    text_hashes,
)
from tests.conftest import ROOT, write_slice

DAY1_TRAIN, DAY2_TRAIN, RELABELLED = 81, 111, 5  # lines kept of the real train file


def _day(folder: Path, source: Path, dev: Path, lines: int, relabel: int = 0) -> Path:
    """A data folder: the first `lines` lines of the real train file (the first `relabel`
    rows with their label flipped) and a slice of the real dev file."""
    write_slice(source, folder / "sst2_glue" / "train.tsv", lines)
    if relabel:
        path = folder / "sst2_glue" / "train.tsv"
        rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for i in range(1, relabel + 1):
            text, label = rows[i].rstrip("\n").rsplit("\t", 1)
            rows[i] = f"{text}\t{1 - int(label)}\n"
        path.write_text("".join(rows), encoding="utf-8")
    write_slice(dev, folder / "sst2_glue" / "dev.tsv", 21)
    return folder


def _cfg(data: Path, *extra: str):
    """A config reading `data`, named after it (the run id does not hash the data folder).
    fp32, so a full recompute agrees to round-off (bf16 moves components by ~1e-3 when a
    text shares another batch)."""
    return load_config(None, [f"data.data_dir={data}", f"run.name={data.name}",
                              "signals.precision=fp32", *extra])


@pytest.fixture(scope="module")
def days(shared_datasets: Path, slice_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Day 1 and day 2 (30 more rows, 5 rows relabelled) data folders."""
    source, dev = shared_datasets / "sst2_glue" / "train.tsv", slice_dir / "sst2_glue" / "dev.tsv"
    root = tmp_path_factory.mktemp("days")
    return (_day(root / "day1", source, dev, DAY1_TRAIN),
            _day(root / "day2", source, dev, DAY2_TRAIN, RELABELLED))


def test_a_grown_corpus_embeds_only_its_new_texts(days, tmp_path: Path, run_stages) -> None:
    day1, day2 = days
    runs = tmp_path / "runs"
    first, _ = run_stages(_cfg(day1), runs, until="signals")
    m1 = first.manifest("signals")
    texts1 = distinct_texts(first.read("ingest"))
    assert (m1["rows_reused"], m1["rows_computed"]) == (0, len(texts1))

    second, outcomes = run_stages(_cfg(day2), runs, until="signals")
    assert {o.stage: o.status for o in outcomes}["signals"] == "computed"
    corpus2 = second.read("ingest")
    texts2 = distinct_texts(corpus2)
    new = [t for t in texts2 if t not in set(texts1)]
    assert len(new) >= 25  # 30 rows appended (a repeat of an older text is not new)
    m2 = second.manifest("signals")
    assert (m2["rows_reused"], m2["rows_computed"]) == (len(texts2) - len(new), len(new))
    assert m2["row_cache"]["parts_read"] == 1 and m2["row_cache"]["part_written"]
    assert f"{len(new)} embedded" in build_report(second.root)

    # Relabelled rows have new example_ids but the same texts: reused, vectors unchanged.
    ids1 = dict(zip(first.read("ingest").column("text").to_pylist(),
                    first.read("ingest").column("example_id").to_pylist(), strict=True))
    relabelled = [t for t, i in zip(corpus2.column("text").to_pylist(),
                                    corpus2.column("example_id").to_pylist(), strict=True)
                  if t in ids1 and ids1[t] != i]
    assert len(relabelled) == RELABELLED

    by_text1 = dict(zip(first.read("ingest").column("text").to_pylist(),
                        matrix(first.read("signals")), strict=True))
    e2 = matrix(second.read("signals"))
    old = [i for i, t in enumerate(corpus2.column("text").to_pylist()) if t in by_text1]
    assert np.array_equal(e2[old], np.stack([by_text1[corpus2.column("text")[i].as_py()]
                                             for i in old]))  # reused bit for bit
    # New rows: exactly what the stage's encoder path gives for the missing texts.
    cfg2 = _cfg(day2)
    fresh, _ = embed_texts(LocalExecutor(), cfg2.signals, new, Resources())
    position = {t: i for i, t in enumerate(new)}
    rows_new = [i for i, t in enumerate(corpus2.column("text").to_pylist()) if t in position]
    assert np.array_equal(e2[rows_new], fresh[[position[corpus2.column("text")[i].as_py()]
                                               for i in rows_new]])

    # Against a full computation without the row cache (another runs folder: no stage cache).
    full, _ = run_stages(_cfg(day2, "signals.row_cache=false"), tmp_path / "full",
                         until="signals")
    mf = full.manifest("signals")
    assert (mf["rows_reused"], mf["rows_computed"]) == (0, len(texts2))
    assert not (tmp_path / "full" / ".cache" / "rows").exists()
    assert full.read("signals").column("example_id").equals(
        second.read("signals").column("example_id"))
    # Batched inference differs in the last bits when a text shares another batch (~2e-7).
    np.testing.assert_allclose(e2, matrix(full.read("signals")), rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def texts(slice_dir: Path) -> list[str]:
    lines = (slice_dir / "sst2_glue" / "train.tsv").read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(line.rsplit("\t", 1)[0] for line in lines[1:11]))


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-sidecar"])
def test_a_damaged_part_is_dropped_and_its_texts_embedded_again(
        damage: str, texts: list[str], encoder, tmp_path: Path) -> None:
    settings = _settings(load_config(None, []))
    cache = RowCache(tmp_path, settings)
    calls: list[int] = []

    def encode(batch):
        calls.append(len(batch))
        return encoder.encode(list(batch))

    first, stats = cached_encode(cache, texts, encode, "run-1")
    part = cache.folder / stats.part_written
    data = bytearray(part.read_bytes())
    if damage == "flip":  # same size, other bytes: only the checksum sees it
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
    elif damage == "truncate":
        part.write_bytes(bytes(data[:len(data) // 2]))
    else:  # the writer died between renaming the part and its sidecar
        part.with_suffix(".json").unlink()

    again = RowCache(tmp_path, settings)
    vectors, stats2 = cached_encode(again, texts, encode, "run-2")
    assert calls == [len(texts), len(texts)]  # everything embedded again, nothing reused
    assert (stats2.rows_reused, stats2.rows_computed, stats2.parts_read) == (0, len(texts), 0)
    if damage == "no-sidecar":
        assert stats2.dropped == []  # never trusted, so nothing to drop
    else:
        assert len(stats2.dropped) == 1 and part.name in stats2.dropped[0]
        assert not part.exists() and not part.with_suffix(".json").exists()
    assert np.array_equal(vectors, first)
    third, stats3 = cached_encode(RowCache(tmp_path, settings), texts, encode, "run-3")
    assert stats3.rows_reused == len(texts) and calls == [len(texts)] * 2
    assert np.array_equal(third, first)


def test_another_setting_gets_another_folder(tmp_path: Path) -> None:
    base = _settings(load_config(None, []))
    other = _settings(load_config(None, ["signals.max_length=64"]))
    assert RowCache(tmp_path, base).folder != RowCache(tmp_path, other).folder
    assert RowCache(tmp_path, base).folder == RowCache(tmp_path, dict(base)).folder


WRITER = """
import json, sys, time
from pathlib import Path
import numpy as np
from distill_core.signals.row_cache import RowCache, text_hashes
folder, seed = Path(sys.argv[1]), int(sys.argv[2])
texts = json.loads((folder / "texts.json").read_text())
vectors = np.load(folder / "vectors.npy")
cache = RowCache(folder / "runs" / ".cache", json.loads((folder / "settings.json").read_text()))
rng = np.random.default_rng(seed)
while not (folder / "go").exists():
    time.sleep(0.01)
for _ in range(8):
    chosen = np.sort(rng.choice(len(texts), size=len(texts) // 2, replace=False))
    cache.append(text_hashes([texts[i] for i in chosen]), vectors[chosen], f"w{seed}")
"""


def test_concurrent_writers_leave_whole_parts(texts: list[str], encoder,
                                              tmp_path: Path) -> None:
    settings = _settings(load_config(None, []))
    vectors = encoder.encode(texts)
    np.save(tmp_path / "vectors.npy", vectors)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(seed)],
                                cwd=ROOT) for seed in (1, 2)]
    reader = RowCache(tmp_path / "runs" / ".cache", settings)
    (tmp_path / "go").touch()
    while any(w.poll() is None for w in writers):  # read while they write: never half a part
        reader.lookup(text_hashes(texts))
    assert [w.returncode for w in writers] == [0, 0]
    assert reader.dropped == []
    found = reader.lookup(text_hashes(texts))
    assert found.parts_read == 16 and found.found.all() and reader.dropped == []
    assert np.array_equal(found.vectors, vectors)
    assert not [p for p in reader.folder.iterdir() if p.name.startswith(".")]


def test_keys_sharing_their_first_word_are_told_apart_by_the_second(tmp_path: Path) -> None:
    """The index binary-searches the first 8 bytes; keys equal there (about one pair in
    2**64 for real hashes, forced here) must still each find their own row, and a key that
    shares only the first word must miss."""
    def key(first: int, second: int) -> bytes:
        return first.to_bytes(8, "little") + second.to_bytes(8, "little")

    stored = [key(7, 30), key(7, 10), key(1, 5), key(7, 20), key(9, 1)]
    index = _PartIndex.of(tmp_path / "p", tmp_path / "s", 4, pa.array(stored, KEY_TYPE))
    asked = [key(7, 20), key(7, 30), key(7, 10), key(7, 25), key(1, 5), key(8, 0), key(9, 1)]
    hits, rows = index.match(*_key_words(pa.array(asked, KEY_TYPE)))
    assert hits.tolist() == [True, True, True, False, True, False, True]
    assert rows[hits].tolist() == [3, 0, 1, 2, 4]
