"""From a finished run folder to a `datasets.DatasetDict` of its distilled set.

The distilled set is the filter stage's output: one set per replicate (seed), read through
the run store so every part is checked against its manifest. Each exported row keeps the
columns the run wrote (method, seed, rank, score, weight, soft label, ...), with `label` as a
`ClassLabel` over the run's label names and an `origin` column saying whether the row was
selected from the training split or generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.store import RunStore
from distill_core.errors import ArtifactError, ConfigError

# Columns first in this order; any other column of the distilled set follows, as written.
LEADING = ("example_id", "text", "text_pair", "label", "parent_ids", "weight", "soft_label",
           "origin", "method", "replicate", "seed", "rank", "score", "run_id")
# Dropped only when no exported row has a value (a single-text task, no soft labels).
OPTIONAL = ("text_pair", "soft_label")


@dataclass
class FinishedRun:
    """What an export reads of a run: manifests, label names, distilled set, training ids."""

    store: RunStore
    manifests: dict[str, dict[str, Any]]
    label_names: list[str]
    distilled: pa.Table
    train_ids: set[str]

    @property
    def config(self) -> dict[str, Any]:
        return self.manifests["filter"].get("config", {})

    def replicates(self) -> list[tuple[int, int]]:
        """(replicate, seed) of every replicate the distilled set holds, in order."""
        pairs = zip(self.distilled.column("replicate").to_pylist(),
                    self.distilled.column("seed").to_pylist(), strict=True)
        return sorted(set(pairs))

    @classmethod
    def open(cls, run_dir: str | Path) -> FinishedRun:
        """Read a finished run; a folder that is not a run or has no filter stage is an
        ArtifactError that says so."""
        store = RunStore.open(run_dir)
        ingest = store.manifest("ingest")
        if ingest is None:
            raise ArtifactError(f"{store.root}: not a textdistill run folder (no "
                                "ingest/manifest.json); pass the folder `textdistill run` "
                                "printed")
        filtered = store.manifest("filter")
        if filtered is None:
            raise ArtifactError(f"{store.root}: the run has not finished (no filter stage, so "
                                "no distilled set yet); rerun its `textdistill run` command, "
                                "which resumes, then export")
        manifests = {name: m for name in store.stages() if (m := store.manifest(name))}
        corpus = store.read("ingest", columns=["example_id", "split"])
        train = corpus.filter(pc.equal(corpus.column("split"), "train"))
        return cls(store=store, manifests=manifests, label_names=list(ingest["label_names"]),
                   distilled=store.read("filter"),
                   train_ids=set(train.column("example_id").to_pylist()))


def choose_splits(run: FinishedRun, replicate: int | None = None,
                  all_replicates: bool = False) -> dict[str, tuple[int, int]]:
    """Split name -> (replicate, seed): `train` for one replicate (the first by default),
    `seed_<seed>` for each with `all_replicates`."""
    found = run.replicates()
    if all_replicates:
        if replicate is not None:
            raise ConfigError("--replicate and --all-replicates exclude each other: pass one")
        return {f"seed_{seed}": (rep, seed) for rep, seed in found}
    wanted = 0 if replicate is None else replicate
    for rep, seed in found:
        if rep == wanted:
            return {"train": (rep, seed)}
    known = ", ".join(f"{rep} (seed {seed})" for rep, seed in found) or "none"
    raise ConfigError(f"{run.store.root}: no replicate {wanted}; this run has replicates "
                      f"{known}: pass one of those to --replicate")


def _with_label(table: pa.Table, label_names: list[str]) -> pa.Table:
    """`label` as the class index (checked against the label names), `label_id` dropped."""
    ids, names = table.column("label_id").to_pylist(), table.column("label").to_pylist()
    for index, name in zip(ids, names, strict=True):
        if index is None or not 0 <= index < len(label_names) or label_names[index] != name:
            raise ArtifactError(f"a distilled row labelled {name!r} has class index {index}, "
                                f"which is not that label in the run's labels {label_names}; "
                                "the run folder is inconsistent: rerun the run")
    position = table.schema.get_field_index("label")
    table = table.set_column(position, "label", pa.array(ids, pa.int64()))
    return table.drop_columns(["label_id"])


def split_table(run: FinishedRun, replicate: int) -> pa.Table:
    """The rows of one replicate, in the filter stage's order, with export columns."""
    rows = run.distilled.filter(pc.equal(run.distilled.column("replicate"), replicate))
    rows = _with_label(rows, run.label_names)
    origin = ["selected" if e in run.train_ids else "generated"
              for e in rows.column("example_id").to_pylist()]
    rows = rows.append_column("origin", pa.array(origin, pa.string()))
    names = [c for c in LEADING if c in rows.column_names]
    names += [c for c in rows.column_names if c not in LEADING]
    return rows.select(names)


def dataset_dict(run: FinishedRun, splits: dict[str, tuple[int, int]]):
    """The `datasets.DatasetDict` of the chosen splits; optional columns kept when any
    exported row has a value."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features

    tables = {name: split_table(run, rep) for name, (rep, _) in splits.items()}
    empty = [c for c in OPTIONAL
             if all(t.column(c).null_count == t.num_rows for t in tables.values())]
    result = {}
    for name, table in tables.items():
        table = table.drop_columns([c for c in empty if c in table.column_names])
        features = Features.from_arrow_schema(table.schema)
        features["label"] = ClassLabel(names=run.label_names)
        result[name] = Dataset.from_dict(table.to_pydict(), features=features, split=name)
    return DatasetDict(result)
