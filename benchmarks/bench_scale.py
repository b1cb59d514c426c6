"""Scale benchmark: the whole flow on 100k, 1M and 5M rows, and a nightly +1 % rerun.

Corpora are recombined real training sentences (`benchmarks/scale_corpus.py`, labels kept,
recipe and sources in each corpus's `corpus_manifest.json`), scored on the dataset's real
validation file. For each size, in fresh processes exactly as a user runs them
(`python -m flows.cli run configs/scale-static.yaml`, local backend, a fresh runs folder
holding only the already-distilled static encoder):

1. kmeans, 10 per class, one seed, evaluated next to random subsets (no full-data probe:
   a probe on millions of rows is not what this measures);
2. herding, same runs folder (ingest and signals come from the cross-run cache);
3. nightly: the kmeans config again over the corpus + 1 % new rows (`signals.row_cache`
   on), its wall time as a share of run 1's;
4. auto (only when `--runs` names it): `synthesize.method=auto` in the same runs folder;
   above the in-memory limit (1,000,000 rows) its recipes draw from a sample of the pool.
5. teacher (only when `--runs` names it): kmeans on the corpus cleaned by the
   teacher-consistency filter, so the teacher stage runs over every corpus row.

The runs read the training split as a folder of daily files (`<corpus>/live/days`, links to
the corpus's `days/`); the nightly run first adds `day-new` to that folder, as a scheduled
export would, so ingest parses only the new file and reuses the others' rows from the runs
folder's cache (its manifest's `files_reused` / `rows_reused`).

Measured per stage (from each stage manifest's clock): wall s, train rows/s, and the peak
RSS of the whole process tree (sampled every 0.2 s by a psutil thread here, attributed to
the stage whose [started_at, finished_at] holds the sample); per run: wall time, sampled
peak tree RSS and the CLI process's exact ru_maxrss. Targets (issue 19): whole-run peak RSS
at 5M <= 4 GB and <= 1.2x its 100k value; cost per row per stage at 5M within 1.2x of 100k;
nightly <= 5 % of the first run. `--minilm-rows` adds one size with MiniLM itself.

    python -m benchmarks.bench_scale --sizes 100k,1m,5m --minilm-rows 200k \
        --data-dir ../shared/datasets --work /tmp/scale --out /tmp/scale/results.json

Prints a markdown table (for benchmarks/RESULTS.md) and writes the raw results as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/bench_scale.py` as well as `-m`
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from benchmarks.scale_corpus import (  # noqa: E402
    CorpusSpec,
    build_corpus,
    existing_manifest,
    link_file,
)
from benchmarks.scale_monitor import TreeSampler, peak_phase, stage_rows  # noqa: E402

STATIC = "static:all-MiniLM-L6-v2"
MINILM = "all-MiniLM-L6-v2"
STAGES = ("ingest", "signals", "teacher", "clean", "synthesize", "filter", "evaluate")
MIB = 2**20
# The `teacher` run: kmeans on the corpus the teacher-consistency filter cleaned (the
# linear-probe teacher's p(label) of every training row: the teacher stage, then clean)
TEACHER_SETS = ["filter.corpus=true", "filter.teacher_consistency.enabled=true"]


def parse_rows(value: str) -> int:
    """'100k' -> 100000, '1m' -> 1000000, '2500' -> 2500."""
    value = value.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(value[-1:], 1)
    return int(float(value[:-1] if scale > 1 else value) * scale)


def label_of(rows: int) -> str:
    return f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else f"{rows // 1_000}k" \
        if rows % 1_000 == 0 else str(rows)


def child_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TEXTDISTILL_DATA_DIR", None)
    env.pop("PREFECT_API_URL", None)  # the CLI's own temporary server, as a user gets
    env.update({"PREFECT_HOME": str(work / "prefect-home"), "HF_HUB_OFFLINE": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TOKENIZERS_PARALLELISM": "false",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                "PYTHONPATH": str(ROOT)})
    return env


def warm_static_encoder(work: Path) -> dict[str, Any]:
    """Distil the static encoder once (timed apart); each runs folder gets a copy of it."""
    cache = work / "static-cache"
    start = time.perf_counter()
    code = ("import sys; from distill_core.signals.static_encoder import static_model_dir; "
            "print(static_model_dir(sys.argv[1], sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, STATIC, str(cache)], cwd=ROOT, check=True,
                   env=child_env(work), capture_output=True, text=True)
    return {"folder": str(cache / "static-encoders"),
            "seconds": round(time.perf_counter() - start, 1)}


def fresh_runs_dir(runs: Path, static_cache: Path | None) -> None:
    shutil.rmtree(runs, ignore_errors=True)
    (runs / ".cache").mkdir(parents=True)
    if static_cache is not None:
        shutil.copytree(static_cache, runs / ".cache" / "static-encoders")


def live_folder(folder: Path, corpus: dict[str, Any]) -> Path:
    """`<corpus>/live`: the data folder the runs read, as a scheduled deployment sees its
    export: `days/` holding the daily files (hard links to the corpus's `days/`; the nightly
    run adds `day-new` there) and the evaluation file. Reset to the base days each time."""
    live = folder / "live"
    shutil.rmtree(live, ignore_errors=True)
    for day in corpus["files"]["days"]:
        link_file(Path(day["path"]), live / "days" / Path(day["path"]).name)
    evaluation = corpus["data"]["eval"]["file"]["path"]
    link_file(folder / "inputs" / "base" / evaluation, live / evaluation)
    return live


def write_config(template: Path, corpus: dict[str, Any], target: Path) -> Path:
    """The scale config with the corpus's own `data:` block (same as the template's for
    SST-2), its training source the folder of daily files (`live_folder`)."""
    cfg = yaml.safe_load(template.read_text())
    cfg["data"] = json.loads(json.dumps(corpus["data"]))
    cfg["data"]["train"]["file"]["path"] = "days"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return target


def read_manifests(run_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for stage in STAGES:
        path = run_dir / stage / "manifest.json"
        if path.is_file():
            out[stage] = json.loads(path.read_text())
    return out


def run_flow(name: str, config: Path, data_dir: Path, runs: Path, sets: list[str],
             work: Path, train_rows: int) -> dict[str, Any]:
    """One `flows.cli run` in a fresh process, sampled; its stage figures."""
    command = [sys.executable, "-m", "flows.cli", "run", str(config), "--runs-dir", str(runs),
               "--data-dir", str(data_dir)]
    for item in sets:
        command += ["--set", item]
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    since = time.time()
    start = time.perf_counter()
    with open(logs / f"{name}.out", "w") as out, open(logs / f"{name}.err", "w") as err:
        process = subprocess.Popen(command, cwd=ROOT, env=child_env(work), stdout=out,
                                   stderr=err)
        with TreeSampler(process.pid) as sampler:
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    stdout = (logs / f"{name}.out").read_text()
    if process.returncode != 0:
        raise SystemExit(f"{name}: exit {process.returncode}; see {logs / name}.err")
    run_dir = Path(next(line.split("run folder:", 1)[1].strip()
                        for line in stdout.splitlines() if line.startswith("run folder:")))
    manifests = read_manifests(run_dir)
    ingest = manifests["ingest"]
    stages = stage_rows(manifests, sampler, since, train_rows)
    computed = sum(s.get("wall_s", 0) for s in stages.values())
    snapshot = work / "manifests" / name
    snapshot.mkdir(parents=True, exist_ok=True)
    for stage, manifest in manifests.items():
        (snapshot / f"{stage}.json").write_text(json.dumps(manifest, indent=1))
    return {
        "name": name, "command": " ".join(command), "run_dir": str(run_dir),
        "wall_s": round(wall, 2), "stages_wall_s": round(computed, 2),
        "outside_stages_s": round(wall - computed, 2),
        "peak_tree_rss_mb": sampler.peak_mb(), "peak_main_rss_sampled_mb": sampler.peak_main_mb(),
        "peak_at": peak_phase(manifests, sampler, since),
        "main_maxrss_mb": round(usage.ru_maxrss / 1024, 1), "samples": len(sampler.samples),
        "ingest_counts": ingest.get("counts"),
        "ingest_files_reused_parsed": [ingest.get(k) for k in ("files_reused", "files_parsed")],
        "signals_reused_computed": [manifests.get("signals", {}).get(k)
                                    for k in ("rows_reused", "rows_computed")],
        "stages": stages,
        "scores": (manifests.get("evaluate") or {}).get("summary"),
        "cli_tail": [line for line in stdout.splitlines()
                     if line.startswith(("stage wall times", "run folder")) or
                     " stages computed " in line],
    }


def bench_size(rows: int, encoder: str, args: argparse.Namespace, work: Path,
               static_cache: Path | None) -> dict[str, Any]:
    """Build (or reuse) the corpus of `rows`, then the kmeans, herding and nightly runs."""
    spec = CorpusSpec(args.dataset, rows, seed=args.seed, days=args.days)
    folder = work / f"corpus-{args.dataset}-{label_of(rows)}"
    corpus = existing_manifest(spec, folder)
    if corpus is None:
        if args.skip_build:
            raise SystemExit(f"--skip-build: no corpus of {rows} rows in {folder}")
        print(f"building {folder} ...", flush=True)
        corpus = build_corpus(spec, Path(args.data_dir), folder)
    tag = f"{label_of(rows)}-{'static' if encoder == STATIC else 'minilm'}"
    config = write_config(Path(args.config), corpus, work / "configs" / f"{tag}.yaml")
    runs = work / f"runs-{tag}"
    if not (args.keep_runs and runs.is_dir()):
        fresh_runs_dir(runs, static_cache if encoder == STATIC else None)
    live = live_folder(folder, corpus)
    # the config's `static_fit: {rows: 0}` is a static model's key: back to its default
    # (not read) for the MiniLM size
    model = [f"signals.model={encoder}",
             *([] if encoder == STATIC else ["signals.static_fit.rows=20000"])]
    result: dict[str, Any] = {"rows": rows, "encoder": encoder, "corpus": {
        "folder": str(folder), "build_seconds": corpus["build_seconds"],
        "extra_rows": corpus["extra_rows"], "label_rows": corpus["label_rows"]}, "runs": {}}
    plan = [("kmeans", rows, []), ("herding", rows, ["synthesize.method=herding"]),
            ("auto", rows, ["synthesize.method=auto"]),
            ("teacher", rows, TEACHER_SETS),
            ("nightly", rows + corpus["extra_rows"], [])]
    for name, train_rows, sets in plan:
        if name not in args.runs:
            continue
        if name == "nightly":  # the export's next day lands in the same folder
            link_file(Path(corpus["files"]["new"]["path"]), live / "days" / "day-new.parquet")
        data_dir = live
        print(f"{tag} {name} ...", flush=True)
        outcome = run_flow(f"{tag}-{name}", config, data_dir, runs, model + sets, work,
                           train_rows)
        result["runs"][name] = outcome
        print(json.dumps({k: outcome[k] for k in ("name", "wall_s", "peak_tree_rss_mb")}),
              flush=True)
    first, again = result["runs"].get("kmeans"), result["runs"].get("nightly")
    if first and again:
        result["nightly_share"] = round(again["wall_s"] / first["wall_s"], 4)
        result["nightly_stage_share"] = round(again["stages_wall_s"] / first["stages_wall_s"], 4)
    return result


def _fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(results: list[dict[str, Any]]) -> str:
    """Per size and run: each stage's wall s / rows/s / peak tree RSS; then the targets."""
    lines = ["| rows | encoder | run | " + " | ".join(STAGES) + " | whole run s | peak RSS MB |",
             "|---|---|---|" + "---|" * len(STAGES) + "---|---|"]
    for size in results:
        for name, run in size["runs"].items():
            cells = []
            for stage in STAGES:
                s = run["stages"].get(stage)
                cells.append("-" if s is None else "reused" if s.get("reused") else
                             f"{_fmt(s['wall_s'])} s, {_fmt(s['rows_per_s'], 0)}/s, "
                             f"{_fmt(s['peak_rss_mb'], 0)} MB")
            encoder = "static" if size["encoder"] == STATIC else "MiniLM"
            lines.append(f"| {size['rows']:,} | {encoder} | {name} | " + " | ".join(cells) +
                         f" | {_fmt(run['wall_s'])} | {_fmt(run['peak_tree_rss_mb'], 0)} |")
    static = sorted((s for s in results if s["encoder"] == STATIC and "kmeans" in s["runs"]),
                    key=lambda s: s["rows"])
    if static:
        ref = min(static, key=lambda s: s["rows"])
        lines += ["", f"Against the {ref['rows']:,}-row run (kmeans run; cost per row = stage "
                  "wall s / rows; target <= 1.2x at 5M), nightly +1 % (target <= 5 %):", "",
                  "| rows | peak RSS MB (x ref) | CLI process maxrss MB | " + " | ".join(
                      f"{s} cost/row x" for s in STAGES) + " | nightly / first (stages only) |",
                  "|---|---|---|" + "---|" * len(STAGES) + "---|"]
        ref_run = ref["runs"]["kmeans"]
        for size in static:
            run = size["runs"]["kmeans"]
            ratios = []
            for stage in STAGES:
                mine, base = run["stages"].get(stage, {}), ref_run["stages"].get(stage, {})
                if mine.get("wall_s") and base.get("wall_s"):
                    ratio = (mine["wall_s"] / size["rows"]) / (base["wall_s"] / ref["rows"])
                    ratios.append(f"{ratio:.2f}")
                else:
                    ratios.append("-")
            peak = run["peak_tree_rss_mb"]
            share, stages = size.get("nightly_share"), size.get("nightly_stage_share")
            lines.append(f"| {size['rows']:,} | {_fmt(peak, 0)} "
                         f"({peak / ref_run['peak_tree_rss_mb']:.2f}x) | "
                         f"{_fmt(run['main_maxrss_mb'], 0)} | " + " | ".join(ratios)
                         + f" | {'-' if share is None else f'{share:.1%} ({stages:.1%})'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1m,5m", help="Corpus sizes (static encoder).")
    parser.add_argument("--minilm-rows", default="200k",
                        help="Rows of the MiniLM run; 0 leaves it out.")
    parser.add_argument("--work", default="bench-out/scale",
                        help="Corpora, runs folders, logs and manifests go here.")
    parser.add_argument("--skip-build", action="store_true",
                        help="Use the corpora already in --work; stop if one is missing.")
    parser.add_argument("--data-dir", default=os.environ.get("TEXTDISTILL_DATA_DIR"),
                        help="The shared datasets folder (sources of the corpora).")
    parser.add_argument("--dataset", default="sst2", help="Registered dataset to recombine.")
    parser.add_argument("--seed", type=int, default=0, help="Corpus seed.")
    parser.add_argument("--days", type=int, default=5, help="Daily files per corpus.")
    parser.add_argument("--runs", default="kmeans,herding,nightly",
                        help="Which of kmeans, herding, auto, teacher, nightly to run per "
                             "size (auto: the default recipe's choice, on a sample of a pool "
                             "over the in-memory limit; teacher: kmeans after the "
                             "teacher-consistency filter).")
    parser.add_argument("--keep-runs", action="store_true",
                        help="Keep each size's runs folder from an earlier bench in --work, so "
                             "ingest and signals come from its cache: for measuring the later "
                             "stages (the first stages' figures then read 'reused').")
    parser.add_argument("--config", default=str(ROOT / "configs" / "scale-static.yaml"))
    parser.add_argument("--out", default=None, help="Results JSON (default: WORK/results.json).")
    parser.add_argument("--reference", default=None,
                        help="An earlier results JSON whose sizes join the tables (not rerun).")
    args = parser.parse_args()
    args.runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if not args.data_dir and not args.skip_build:
        sys.exit("--data-dir (or TEXTDISTILL_DATA_DIR): the shared datasets folder")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out or work / "results.json")
    sizes = [(parse_rows(s), STATIC) for s in args.sizes.split(",") if s.strip()]
    if parse_rows(args.minilm_rows) > 0:
        sizes.append((parse_rows(args.minilm_rows), MINILM))
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
        "git": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip(),
        "argv": sys.argv, "sizes": []}
    earlier = json.loads(Path(args.reference).read_text())["sizes"] if args.reference else []
    static_cache = None
    if any(encoder == STATIC for _, encoder in sizes):
        report["static_encoder"] = warm_static_encoder(work)
        static_cache = Path(report["static_encoder"]["folder"])
    for rows, encoder in sizes:
        load = os.getloadavg()
        report["sizes"].append(bench_size(rows, encoder, args, work, static_cache))
        report["sizes"][-1]["load_average_before"] = load
        report["table"] = markdown(earlier + report["sizes"])
        out.write_text(json.dumps(report, indent=2))  # saved after every size
    if not report["sizes"]:
        report["table"] = markdown(earlier)
    report["bench_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                      1)
    out.write_text(json.dumps(report, indent=2))
    print(report["table"])
    print(f"results: {out}")


if __name__ == "__main__":
    main()
