"""DuckDB audits over a run's Parquet, read in place: the funnel and one row's lineage.

Each stage's artifact is a view named after the stage (`ingest`, `signals`,
`synthesize`, `filter`, `evaluate`) over the `<stage>/data/` parts its manifest
names, and its rejects (`<stage>/rejects/`) a view `<stage>_rejects`.
A selection's `not_selected` rows are not written (one per pool row and seed
would grow with the corpus for nothing): the audit derives them from the pool
(the training rows, after `clean` when it ran) and the candidates, and checks
the count per replicate against what the synthesize manifest recorded.
Views are built from file lists through the relational API and every lookup
is a parameterised query, so neither a path nor an example id can change SQL.
A run on an object store (`s3://...`) is read in place too: the named parts are scanned
through pyarrow's filesystem as an Arrow dataset that DuckDB reads (DuckDB's own httpfs
extension is not needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from distill_core.artifacts.location import RemotePath
from distill_core.artifacts.store import RunStore
from distill_core.errors import ArtifactError
from distill_core.pipeline.order import FUNNEL_STAGES


class RunAudit:
    """Views and audit queries over one run folder."""

    def __init__(self, run_dir: str | Path) -> None:
        self.store = RunStore.open(run_dir)
        stages = self.store.stages()
        if not stages:
            raise ArtifactError(f"{self.store.root}: not a run folder (no stage manifest in "
                                "it); give the folder `textdistill run` printed")
        self.con = duckdb.connect()
        self.views: list[str] = []
        # Stages whose parts no longer match their manifest: not read, reported as such.
        self.problems = {s: p for s in stages if (p := self.store.verify(s)) is not None}
        for stage in stages:
            if stage in self.problems:
                continue
            for view, rejects in ((stage, False), (f"{stage}_rejects", True)):
                parts = self.store.parts(stage, rejects=rejects)
                if parts:
                    self._view(view, parts)
                    self.views.append(view)

    def _view(self, name: str, parts: list[Any]) -> None:
        """A view over Parquet parts: local files read by DuckDB, object-store parts through
        pyarrow's filesystem (an Arrow dataset, scanned lazily)."""
        if isinstance(parts[0], RemotePath):
            import pyarrow.dataset as ds

            dataset = ds.dataset([p.path for p in parts], format="parquet",
                                 filesystem=parts[0].fs)
            self.con.from_arrow(dataset).create_view(name)
        else:
            self.con.read_parquet([str(p) for p in parts]).create_view(name)

    def _scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        return self.con.execute(sql, params or []).fetchall()[0][0]

    def _count(self, view: str) -> int:
        return int(self._scalar(f'SELECT count(*) FROM "{view}"')) if view in self.views else 0

    def _manifest(self, stage: str) -> dict[str, Any] | None:
        """A stage's manifest with the row counts the funnel reads; one that lacks them is
        damaged (an error naming it and what to do)."""
        manifest = self.store.manifest(stage)
        counts = None if manifest is None else manifest.get("counts")
        if manifest is not None and not (isinstance(counts, dict) and "rows_in" in counts):
            folder = self.store.stage_dir(stage)
            raise ArtifactError(f"{folder}/manifest.json: records no row counts; the stage's "
                                f"record is damaged: delete the folder {folder} to recompute it")
        return manifest

    def funnel(self) -> list[dict[str, Any]]:
        """Per stage: rows in (manifest), out and rejected (counted in the Parquet), by reason."""
        out = []
        for stage in FUNNEL_STAGES:
            manifest = self._manifest(stage)
            if manifest is None:
                continue
            rows_out = self._count(stage)
            rejected = self._count(f"{stage}_rejects")
            by_reason: dict[str, int] = {}
            if f"{stage}_rejects" in self.views:
                by_reason = dict(self.con.execute(
                    f'SELECT reason, count(*) FROM "{stage}_rejects" GROUP BY reason '
                    "ORDER BY count(*) DESC, reason").fetchall())
            rows_in = int(manifest["counts"]["rows_in"])
            verified = stage not in self.problems
            implicit = self._implicit_checked(stage, manifest)
            for reason, (derived, _) in implicit.items():
                rejected += sum(derived or [])
                by_reason[reason] = by_reason.get(reason, 0) + sum(derived or [])
            if implicit:
                by_reason = dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
            derived_ok = all(ok for _, ok in implicit.values())
            out.append({"stage": stage, "rows_in": rows_in, "rows_out": rows_out,
                        "rows_rejected": rejected, "rejects_by_reason": by_reason,
                        **({"derived_rejects": {r: d for r, (d, _) in implicit.items()}}
                           if implicit else {}),
                        "balanced": verified and derived_ok and rows_in == rows_out + rejected,
                        "verified": verified, "problem": self.problems.get(stage),
                        "cache_hit": bool(manifest.get("cache", {}).get("hit")),
                        "wall_time_s": manifest.get("wall_time_s")})
        out.extend(self._handoff_checks())
        return out

    def _pool_sql(self, manifest: dict[str, Any]) -> str | None:
        """The example ids a selection drew on (one per row), or None when not in view."""
        if "ingest" not in self.views:
            return None
        train = "SELECT example_id FROM ingest WHERE split = 'train'"
        if manifest.get("pool") == "clean":
            return (f"{train} AND example_id IN (SELECT example_id FROM clean)"
                    if "clean" in self.views else None)
        return train

    def not_selected(self) -> list[int] | None:
        """Pool rows not among the candidates, per replicate, derived from the Parquet (the
        anti-join of the pool and each replicate's candidates, counted); None when the run's
        selection wrote them as reject rows or its pool or candidates cannot be read."""
        manifest = self.store.manifest("synthesize") or {}
        pool = self._pool_sql(manifest)
        if ("not_selected" not in manifest.get("counts", {}).get("implicit_rejects", {})
                or pool is None or "synthesize" not in self.views):
            return None
        replicates = int(manifest["counts"].get("replicates", 1))
        total = int(self._scalar(f"SELECT count(*) FROM ({pool})"))
        # The pool's rows are counted only for the ids the candidates name (a semi-join
        # against the few candidates), not grouped whole: memory follows the candidates,
        # not the corpus (a hash table of 5M ids was the largest thing a report held).
        matched = dict(self.con.execute(
            "WITH picked AS (SELECT replicate, example_id, count(*) AS n FROM synthesize "
            "GROUP BY replicate, example_id), "
            f"pool AS (SELECT example_id, count(*) AS n FROM ({pool}) "
            "WHERE example_id IN (SELECT example_id FROM picked) GROUP BY example_id) "
            "SELECT picked.replicate, sum(least(pool.n, picked.n)) FROM picked "
            "JOIN pool USING (example_id) GROUP BY picked.replicate").fetchall())
        return [total - int(matched.get(r, 0)) for r in range(replicates)]

    def _implicit_checked(self, stage: str, manifest: dict[str, Any]
                          ) -> dict[str, tuple[list[int] | None, bool]]:
        """Per implicit reason: (derived per replicate, whether it matches the manifest)."""
        recorded = manifest["counts"].get("implicit_rejects") or {}
        if stage != "synthesize" or "not_selected" not in recorded:
            return {}
        derived = self.not_selected()
        return {"not_selected": (derived, derived == list(recorded["not_selected"]))}

    def _not_selected_in(self, example_id: str) -> list[int]:
        """The replicates in which pool row `example_id` was not selected (derived), once per
        pool copy not matched by a candidate."""
        manifest = self.store.manifest("synthesize") or {}
        pool = self._pool_sql(manifest)
        if (pool is None or "synthesize" not in self.views or "not_selected"
                not in manifest.get("counts", {}).get("implicit_rejects", {})):
            return []
        copies = int(self._scalar(f"SELECT count(*) FROM ({pool}) WHERE example_id = ?",
                                  [example_id]))
        if not copies:
            return []
        picked = dict(self.con.execute(
            "SELECT replicate, count(*) FROM synthesize WHERE example_id = ? GROUP BY replicate",
            [example_id]).fetchall())
        replicates = int(manifest["counts"].get("replicates", 1))
        return [r for r in range(replicates) for _ in range(copies - int(picked.get(r, 0)))]

    def _handoff_checks(self) -> list[dict[str, Any]]:
        """What one stage hands the next: counted in the upstream Parquet, not taken on trust."""
        checks = []
        pairs = [("signals", "ingest"), ("teacher", "ingest"), ("clean", "ingest_train"),
                 ("synthesize", "selection_pool"), ("filter", "synthesize")]
        for stage, upstream in pairs:
            manifest = self._manifest(stage)
            if manifest is None:
                continue
            replicates = int(manifest["counts"].get("replicates", 1))
            if upstream == "selection_pool" and manifest.get("pool") == "generate":
                expected = self._count("generate")
                source = "generate (usable generated lines)"
            elif upstream == "selection_pool" and manifest.get("pool") == "learn":
                expected = self._count("learn")
                source = "learn (decoded synthetic examples)"
            elif upstream == "selection_pool" and "clean" in self.views:
                expected = self._count("clean") * replicates
                source = "clean (kept train rows x replicates)"
            elif upstream in ("ingest_train", "selection_pool"):
                if "ingest" not in self.views:
                    continue
                train = int(self._scalar("SELECT count(*) FROM ingest WHERE split = 'train'"))
                expected = train * replicates
                source = "ingest (train rows x replicates)"
            else:
                expected = self._count(upstream)
                source = upstream
            checks.append({"stage": f"{source} -> {stage}", "handoff": True,
                           "rows_in": int(manifest["counts"]["rows_in"]),
                           "upstream_rows": expected,
                           "balanced": int(manifest["counts"]["rows_in"]) == expected})
        return checks

    def lineage(self, example_id: str) -> dict[str, Any]:
        """Where one output row came from: its distilled rows, its sources, and its rejects."""
        result: dict[str, Any] = {"example_id": example_id, "distilled": [], "candidates": [],
                                  "sources": [], "rejected": []}
        for stage, key in (("filter", "distilled"), ("synthesize", "candidates")):
            if stage in self.views:
                result[key] = self._rows(
                    f'SELECT example_id, replicate, seed, method, run_id, label, text, text_pair, '
                    f'parent_ids, rank, score FROM "{stage}" WHERE example_id = ? '
                    "ORDER BY replicate", [example_id])
        if "generate" in self.views:  # how a generated row was made: prompt, answer, seed
            columns = {c[0] for c in self.con.execute("DESCRIBE generate").fetchall()}
            scored = (", conditioned_loss AS reference_loss" if "conditioned_loss" in columns
                      else "")  # instruction pairs: the reference decoder's response loss
            result["generated"] = self._rows(
                "SELECT replicate, prompt_id, sample, seed, shard, worker, new_tokens, prompt, "
                "answer, parent_ids, list_extract(teacher_prob, label_id + 1) AS teacher_p"
                f"{scored} FROM generate WHERE example_id = ? ORDER BY replicate", [example_id])
        if "learn" in self.views:  # how a learned row was made: its synthetic example
            result["learned"] = self._rows(
                "SELECT replicate, seed, synthetic_id, decoding, decode_score, nearest_id, lr, "
                "soft_label, parent_ids FROM learn WHERE example_id = ? ORDER BY replicate",
                [example_id])
        parents = {p for row in result["distilled"] + result["candidates"]
                   for p in (row["parent_ids"] or [])} or {example_id}
        if "ingest" in self.views:
            result["sources"] = self._rows(
                "SELECT example_id, split, label, text, text_pair, source, source_row "
                "FROM ingest WHERE list_contains(?, example_id) ORDER BY split, source_row",
                [sorted(parents)])
        for view in self.views:
            if view.endswith("_rejects"):
                for row in self._rows(
                        f'SELECT replicate, reason, detail, source, source_row FROM "{view}" '
                        "WHERE example_id = ? ORDER BY replicate", [example_id]):
                    result["rejected"].append({"stage": view.removesuffix("_rejects"), **row})
        result["not_selected_in"] = self._not_selected_in(example_id)
        method = ((self.store.manifest("synthesize") or {}).get("stage_config") or {}).get("method")
        result["rejected"].extend(
            {"stage": "synthesize", "replicate": r, "reason": "not_selected", "detail": method,
             "source": None, "source_row": None, "derived": True}
            for r in result["not_selected_in"])
        result["found"] = bool(result["distilled"] or result["candidates"] or result["sources"])
        return result

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    def top_sources(self, limit: int = 10) -> list[dict[str, Any]]:
        """The source rows that fed the most distilled rows (across replicates)."""
        if "filter" not in self.views:
            return []
        return self._rows(
            "SELECT parent AS example_id, count(*) AS uses FROM "
            "(SELECT unnest(parent_ids) AS parent FROM filter) GROUP BY parent "
            "ORDER BY uses DESC, parent LIMIT ?", [limit])
