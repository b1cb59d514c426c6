"""A corpus relabelled under the same texts gets new example ids (they hash the label): the
signals stage must not restore the old labels' embeddings artifact from the cache, whose rows
name the old ids (it did, keyed by the texts alone, and every later stage then stopped on
"embeddings are not aligned with the corpus")."""

from __future__ import annotations

from pathlib import Path

from distill_core.config import load_config
from distill_core.pipeline.batches import stage_batches


def _config(tmp_path: Path, data: Path, label_map: str):
    def source(name: str) -> str:
        return "{file: {path: " + name + ", text: text, label: label, label_map: " \
            + label_map + "}}"

    path = tmp_path / f"cfg-{abs(hash(label_map))}.yaml"
    path.write_text(f"""
data:
  dataset: null
  data_dir: {data}
  train: {source("train.csv")}
  eval: {source("dev.csv")}
  label_names: [negative, positive]
""", encoding="utf-8")
    return load_config(path, [])


def _ids(store, stage: str) -> list[str]:
    return [e for batch in stage_batches(store, stage, ["example_id"])
            for e in batch.column("example_id").to_pylist()]


def test_relabelled_texts_are_embedded_under_their_new_ids(slice_dir: Path, tmp_path: Path,
                                                           run_stages) -> None:
    lines = (slice_dir / "sst2_glue" / "train.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines[1:41]]
    data = tmp_path / "data"
    data.mkdir()
    for name, part in (("train.csv", rows[:30]), ("dev.csv", rows[30:])):
        body = "".join(f'"{t.replace(chr(34), chr(34) * 2)}",{label}\n' for t, label in part)
        (data / name).write_text("text,label\n" + body, encoding="utf-8")
    runs = tmp_path / "runs"
    first, _ = run_stages(_config(tmp_path, data, "{'0': negative, '1': positive}"), runs,
                          "signals")
    second, outcomes = run_stages(_config(tmp_path, data, "{'0': positive, '1': negative}"),
                                  runs, "signals")
    assert set(_ids(first, "ingest")).isdisjoint(_ids(second, "ingest"))  # new ids
    assert _ids(second, "signals") == _ids(second, "ingest")
    assert [o.status for o in outcomes] == ["computed", "computed"]
    manifest = second.manifest("signals")  # the vectors still come from the per-text cache
    assert manifest["rows_reused"] == 40 and manifest["rows_computed"] == 0
