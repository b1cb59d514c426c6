"""Issue 19: a rerun over a folder of daily files that gained a file copies the signals parts
of the ingest parts it has seen (same rows, so same bytes and sha256) from the runs folder's
per-part cache, checked against the entry's record, and embeds only the others; its
embeddings are the ones a fresh computation gives. A damaged entry is dropped, said so in
the manifest, and its part embedded again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill_core.artifacts import stage_writer
from distill_core.config import load_config
from distill_core.signals.embeddings import matrix
from distill_core.signals.part_cache import FOLDER
from tests.ingest.test_file_cache import _days, daily_config

PART_ROWS = 40  # ingest and signals parts of 40 rows: the 200 rows of days 1-2 fill 5


def _config(data: Path, path: Path, *extra: str):
    path.write_text(daily_config(data, "signals:\n  precision: fp32\n"))
    return load_config(path, list(extra))


def _ingest_shas(store) -> list[str]:
    parts = store.manifest("ingest")["parts"]
    return [parts[name]["sha256"] for name in sorted(parts) if name.startswith("data/")]


def _days_one_and_two(slice_dir: Path, tmp_path: Path, run_stages):
    """The daily folder with days 1-2 run through signals: (data, runs, days, store)."""
    data, runs = tmp_path / "data", tmp_path / "runs"
    days = _days(slice_dir, data)
    for i in (0, 1):
        (data / "daily" / f"day-{i + 1}.tsv").write_bytes(days[i])
    first, _ = run_stages(_config(data, tmp_path / "a.yaml"), runs, until="signals")
    return data, runs, days, first


@pytest.fixture()
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage_writer, "ROWS_PER_PART", PART_ROWS)


def test_a_grown_folder_copies_the_parts_it_has_seen(slice_dir: Path, tmp_path: Path,
                                                     run_stages, small_parts) -> None:
    data, runs, days, first = _days_one_and_two(slice_dir, tmp_path, run_stages)
    m1 = first.manifest("signals")
    parts1 = len(_ingest_shas(first))
    assert parts1 >= 6  # 200 training rows in 5 parts, then the evaluation rows
    assert m1["part_cache"]["parts_reused"] == 0 and m1["part_cache"]["parts_saved"] == parts1
    assert len(list((runs / ".cache" / FOLDER).glob("*.parquet"))) == parts1
    assert not (runs / ".cache" / "signals").exists()  # no second, whole-stage copy
    shas1, s1 = _ingest_shas(first), first.read("signals")  # the rerun replaces this run's

    (data / "daily" / "day-3.tsv").write_bytes(days[2])
    second, _ = run_stages(_config(data, tmp_path / "a.yaml"), runs, until="signals")
    shas2 = _ingest_shas(second)
    assert second.manifest("ingest")["files_reused"] == 2
    # The days-1-2 rows fill the first 5 parts in both runs: the same bytes, file cache or not.
    assert shas2[:5] == shas1[:5] and shas2[5] != shas1[5]
    m2 = second.manifest("signals")
    assert m2["part_cache"]["parts_reused"] == 5
    assert m2["part_cache"]["parts_saved"] == len(shas2) - 5
    s2 = second.read("signals")
    assert s2.column("example_id").equals(second.read("ingest").column("example_id"))
    rows = 5 * PART_ROWS
    assert np.array_equal(matrix(s2)[:rows], matrix(s1)[:rows])  # copied bit for bit
    for name in ("data/part-00000.parquet", "data/part-00004.parquet"):  # the same files
        assert m2["parts"][name] == m1["parts"][name]

    # A fresh computation (no caches, another runs folder) gives the same embeddings.
    fresh, _ = run_stages(_config(data, tmp_path / "a.yaml", "signals.row_cache=false"),
                          tmp_path / "fresh", until="signals")
    assert "part_cache" not in fresh.manifest("signals")
    assert fresh.read("signals").column("example_id").equals(s2.column("example_id"))
    np.testing.assert_allclose(matrix(s2), matrix(fresh.read("signals")), rtol=0, atol=1e-5)


def test_a_damaged_entry_is_dropped_and_its_part_embedded_again(
        slice_dir: Path, tmp_path: Path, run_stages, small_parts) -> None:
    data, runs, days, first = _days_one_and_two(slice_dir, tmp_path, run_stages)
    entries = sorted((runs / ".cache" / FOLDER).glob("*.parquet"))
    damaged = entries[0]
    raw = bytearray(damaged.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, other bytes: only the checksum sees it
    damaged.write_bytes(bytes(raw))

    again, _ = run_stages(_config(data, tmp_path / "a.yaml", "run.name=again"), runs,
                          until="signals")
    account = again.manifest("signals")["part_cache"]
    assert account["parts_reused"] == len(entries) - 1 and account["parts_saved"] == 1
    assert len(account["dropped"]) == 1 and "sha256" in account["dropped"][0]
    assert again.manifest("signals")["rows_computed"] == 0  # its texts: from the row cache
    assert again.read("signals").equals(first.read("signals"))
    assert not any(p.name.startswith(".") for p in (runs / ".cache" / FOLDER).iterdir())


def test_plan_says_what_the_part_cache_holds_without_touching_it(
        slice_dir: Path, tmp_path: Path, run_stages, small_parts) -> None:
    from distill_core.pipeline.plan import plan_run

    data, runs, days, first = _days_one_and_two(slice_dir, tmp_path, run_stages)
    parts = len(_ingest_shas(first))
    folder = runs / ".cache" / FOLDER
    other_run = _config(data, tmp_path / "a.yaml", "run.name=again")

    planned = {p.name: p for p in plan_run(other_run, runs)}
    assert planned["ingest"].status == "cached"
    assert (planned["signals"].status, planned["signals"].where) == ("cached", str(folder))
    assert planned["signals"].note == (f"all {parts} input parts in the per-part cache: "
                                       "copied, not computed")
    later = [p for p in planned.values() if p.runs and p.name not in ("ingest", "signals")]
    assert later and all((p.status, p.note) == ("unknown", "after signals") for p in later)

    sidecars = sorted(folder.glob("*.json"))
    sidecars[0].unlink()
    sidecars[1].write_text("not json")  # a copying run would drop this entry; plan must not
    listing = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    signals = {p.name: p for p in plan_run(other_run, runs)}["signals"]
    assert (signals.status, signals.where) == ("compute", None)
    assert signals.note == (f"{parts - 1} of {parts} input parts from the per-part cache "
                            f"({folder}), the others computed")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == listing
    # Without the row cache there is no per-part cache to speak of.
    plain = _config(data, tmp_path / "a.yaml", "run.name=again", "signals.row_cache=false")
    signals = {p.name: p for p in plan_run(plain, runs)}["signals"]
    assert (signals.status, signals.note) == ("compute", "")
