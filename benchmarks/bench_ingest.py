"""Ingest throughput and peak memory: the whole-table ingest of a baseline commit against the
streaming ingest of the working tree, side by side in one run.

Builds CSV corpora of N rows from SST-2 sentences (two real sentences joined per row, so
texts are distinct; about 2% exact repeats and 1% bad rows, so dedup and rejects work),
then runs each variant in its own subprocess (peak RSS is the process's own) writing the
ingest stage into a run folder, as the pipeline does: the baseline ingests the whole table
and writes it with `RunStore.write_stage`; the streaming ingest writes batch by batch through
a `StageWriter`. The baseline's `ingest.py` and `readers.py` are read from git
(`--baseline-rev`), so both run against the same data in the same run. Before timing, the
two outputs are compared row for row on the smallest corpus (and on every registered
dataset's local files): they must be identical.

    python benchmarks/bench_ingest.py --rows 100000 1000000 --data-dir /work/shared/datasets
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASELINE_REV = "58cb7a1"  # the last commit before streaming ingest
BINARY = {"0": "negative", "1": "positive"}


def load_baseline(rev: str, folder: Path) -> Any:
    """The baseline's ingest module, from git, importing the baseline's readers."""
    package = folder / "ingest_baseline"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    for name in ("ingest", "readers"):
        text = subprocess.run(["git", "show", f"{rev}:distill_core/ingest/{name}.py"], cwd=ROOT,
                              check=True, capture_output=True, text=True).stdout
        text = text.replace("from distill_core.ingest.readers import",
                            "from ingest_baseline.readers import")
        (package / f"{name}.py").write_text(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module("ingest_baseline.ingest")


def build_corpus(sst2_train: Path, rows: int, path: Path, seed: int = 0) -> None:
    """`rows` data rows of `sentence,label` made from pairs of real SST-2 sentences."""
    with sst2_train.open(encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        pool = [(s, label) for s, label in reader]
    rng = random.Random(seed)
    written: list[tuple[str, str]] = []
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sentence", "label"])
        for i in range(rows):
            roll = rng.random()
            if roll < 0.02 and written:  # an exact repeat of an earlier row
                row = written[rng.randrange(len(written))]
            elif roll < 0.025:
                row = ("   ", "1")  # empty text
            elif roll < 0.03:
                row = (pool[i % len(pool)][0], "7")  # unknown label
            else:
                first, label = pool[rng.randrange(len(pool))]
                row = (f"{first} {pool[rng.randrange(len(pool))][0]}", label)
                if len(written) < 50_000:
                    written.append(row)
            writer.writerow(row)


def spec_for(corpus: Path, dev: Path, label_names: bool) -> Any:
    from distill_core.ingest.ingest import resolve_dataset
    from distill_core.ingest.sources import FileSource, SplitSource

    train = SplitSource(file=FileSource(path=str(corpus), text="sentence", label="label",
                                        label_map=BINARY))
    evaluation = SplitSource(file=FileSource(path=str(dev), format="tsv", quoting=False,
                                             text="sentence", label="label", label_map=BINARY))
    return resolve_dataset(None, train, evaluation,
                           list(BINARY.values()) if label_names else None)


def run_variant(variant: str, corpus: Path, dev: Path, runs: Path, label_names: bool,
                rev: str, scratch: Path) -> dict[str, Any]:
    """One variant in this process: ingest into a run folder; time and peak RSS."""
    from distill_core.artifacts.store import RunStore

    spec = spec_for(corpus, dev, label_names)
    store = RunStore(runs, variant)
    started, cpu = time.perf_counter(), time.process_time()
    if variant == "baseline":
        result = load_baseline(rev, scratch).ingest_dataset(spec, None)
        store.write_stage("ingest", result.corpus, {"stage": "ingest"}, rejects=result.rejects)
        rows_in = result.rows_in
    else:
        from distill_core.ingest.ingest import stream_dataset

        writer = store.stage_writer("ingest")
        try:
            summary = stream_dataset(spec, None, writer, spill_dir=writer.tmp)
            writer.publish({"stage": "ingest"})
        finally:
            writer.abort()
        rows_in = summary.rows_in
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_kib = peak_rss_kib()
    return {"variant": variant, "rows_in": rows_in, "seconds": seconds, "cpu_s": cpu,
            "rows_per_s": rows_in / seconds, "rows_per_cpu_s": rows_in / cpu,
            "peak_rss_mb": peak_kib / 1024}


def peak_rss_kib() -> int:
    """This process's peak RSS. Not `ru_maxrss`: Linux keeps that across fork and exec, so a
    child would report at least its parent's size when it was started; VmHWM belongs to the
    child's own address space."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux


def _subprocess(variant: str, corpus: Path, dev: Path, runs: Path, label_names: bool,
                rev: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--variant", variant, "--corpus", str(corpus),
               "--dev", str(dev), "--runs", str(runs), "--baseline-rev", rev]
    if label_names:
        command.append("--label-names")
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_output(runs: Path) -> None:
    """The two variants' published corpus and rejects are equal row for row."""
    from distill_core.artifacts.store import RunStore

    for rejects in (False, True):
        old = RunStore(runs, "baseline").read("ingest", rejects=rejects)
        new = RunStore(runs, "streaming").read("ingest", rejects=rejects)
        if not old.equals(new):
            raise SystemExit(f"outputs differ ({'rejects' if rejects else 'corpus'}): "
                             f"{old.num_rows} rows against {new.num_rows}")


def registered_datasets_agree(data_dir: Path, rev: str, scratch: Path) -> list[str]:
    """Every registered dataset's local files: baseline and streaming (small batches) give
    the same corpus, rejects, label names and source stats."""
    from distill_core.ingest import ingest as streaming
    from distill_core.ingest.registry import DATASETS

    baseline = load_baseline(rev, scratch)
    checked = []
    for name, spec in DATASETS.items():
        old = baseline.ingest_dataset(spec, data_dir)
        saved, streaming.BATCH_ROWS = streaming.BATCH_ROWS, 1000
        try:
            new = streaming.ingest_dataset(spec, data_dir)
        finally:
            streaming.BATCH_ROWS = saved
        if not (old.corpus.equals(new.corpus) and old.rejects.equals(new.rejects)
                and old.label_names == new.label_names and old.sources == new.sources):
            raise SystemExit(f"{name}: the streaming ingest differs from the baseline")
        checked.append(f"{name} ({old.corpus.num_rows} rows, {old.rejects.num_rows} rejects)")
    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--data-dir", type=Path, default=Path("/work/shared/datasets"))
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--label-names", action="store_true",
                        help="Give the label names (else they are inferred from training).")
    parser.add_argument("--skip-baseline-above", type=int, default=2_000_000,
                        help="Corpora larger than this run the streaming variant only.")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dev", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # a child: one variant, one JSON line
        with tempfile.TemporaryDirectory() as scratch:
            print(json.dumps(run_variant(args.variant, args.corpus, args.dev, args.runs,
                                         args.label_names, args.baseline_rev, Path(scratch))))
        return
    dev = args.data_dir / "sst2_glue" / "dev.tsv"
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder = Path(tmp)
        checked = registered_datasets_agree(args.data_dir, args.baseline_rev, folder / "b")
        print("identical to the baseline on:", ", ".join(checked))
        results = []
        for rows in args.rows:
            corpus = folder / f"corpus-{rows}.csv"
            build_corpus(args.data_dir / "sst2_glue" / "train.tsv", rows, corpus)
            runs = folder / f"runs-{rows}"
            variants = ["streaming"] + (["baseline"] if rows <= args.skip_baseline_above
                                        else [])
            measured = {v: _subprocess(v, corpus, dev, runs, args.label_names,
                                       args.baseline_rev) for v in variants}
            if "baseline" in measured:
                same_output(runs)
            results.append((rows, measured))
            corpus.unlink()
        print("\nrows/s by wall clock and by CPU time (the machine may be shared: CPU time is "
              "the steadier one); ratios against the baseline")
        print(f"{'rows':>10} {'variant':>10} {'rows/s':>9} {'rows/cpu-s':>10} "
              f"{'peak RSS MB':>11} {'speed x':>8} {'cpu x':>6} {'RSS ratio':>9}")
        for rows, measured in results:
            base = measured.get("baseline")
            for variant, m in measured.items():
                def ratio(key: str, m: dict = m, base: dict | None = base) -> str:
                    return f"{m[key] / base[key]:.2f}" if base else "-"
                print(f"{rows:>10} {variant:>10} {m['rows_per_s']:>9,.0f} "
                      f"{m['rows_per_cpu_s']:>10,.0f} {m['peak_rss_mb']:>11,.0f} "
                      f"{ratio('rows_per_s'):>8} {ratio('rows_per_cpu_s'):>6} "
                      f"{ratio('peak_rss_mb'):>9}")
        first = results[0][1]["streaming"]
        for rows, measured in results[1:]:
            m = measured["streaming"]
            print(f"streaming, {rows:,} rows against {results[0][0]:,}: peak RSS "
                  f"x{m['peak_rss_mb'] / first['peak_rss_mb']:.2f}, CPU per row "
                  f"x{first['rows_per_cpu_s'] / m['rows_per_cpu_s']:.2f}, wall per row "
                  f"x{first['rows_per_s'] / m['rows_per_s']:.2f}")


if __name__ == "__main__":
    main()
