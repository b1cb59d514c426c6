"""The static encoder (`signals.model: static:all-MiniLM-L6-v2`) against MiniLM itself.

Two questions, side by side in one run:
1. Throughput: texts per second on the same SST-2 training texts (read through
   the ordinary ingest path), MiniLM fp32 (and bf16 where the CPU has bf16
   units) against the static model distilled from it; the ratio is static / MiniLM.
   The static model is timed four ways, alternating over several rounds: model2vec's
   own `encode` with the tokenizer's parallelism off (what runs used before; the CLI
   turns it off) and on, and `StaticEncoder` on one thread and on its default threads.
2. Selection quality: each dataset's corpus is embedded by both encoders through
   the real signals stage (cached in --runs-dir); k-means prototypes and herding
   select N per class on one encoder's features, and the *same* learner scores
   both selections: a linear probe (C = 1) on MiniLM features, evaluation split,
   several seeds. A static encoder is only useful if the difference is small.

    python benchmarks/bench_static_encoder.py --data-dir ../shared/datasets --runs-dir runs

Prints two tables and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from distill_core.artifacts.store import RunStore
from distill_core.config import load_config
from distill_core.evaluate.linear_probe import linear_probe
from distill_core.pipeline.order import run_pipeline
from distill_core.pipeline.stage import StageContext
from distill_core.signals.embeddings import split_features
from distill_core.synthesize.base import select_per_class
from tasks.executors import make_executor

STATIC = "static:all-MiniLM-L6-v2"
DISTILLED = ("signals.static_fit.rows=0",)  # model2vec's table as distilled, not fitted
MINILM = "all-MiniLM-L6-v2"


def signals_run(dataset: str, model: str, data_dir: str | None, runs_dir: str,
                until: str = "signals", extra: tuple[str, ...] = ()) -> RunStore:
    """Ingest and signals of `dataset` with encoder `model` (from the cache when there);
    `extra`: more config overrides."""
    overrides = [f"data.dataset={dataset}", f"signals.model={model}", "run.name=static-bench",
                 *extra]
    if data_dir:
        overrides.append(f"data.data_dir={data_dir}")
    cfg = load_config(None, overrides)
    store = RunStore(runs_dir, cfg.run_id())
    run_pipeline(StageContext(cfg, store, make_executor(cfg.compute)), until=until)
    return store


def split_arrays(store: RunStore) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    corpus, embeddings = store.read("ingest"), store.read("signals")
    names = store.manifest("ingest")["label_names"]
    out = {}
    for split in ("train", "eval"):
        rows, x = split_features(corpus, embeddings, split)
        labels = rows.column("label").to_pylist()
        out[split] = (x, np.asarray([names.index(v) for v in labels]),
                      rows.column("example_id").to_pylist())
    return out


class Model2VecEncode:
    """The baseline: model2vec's own `encode` on the same saved model (what `StaticEncoder`
    called before its own tokenising threads and float32 pooling), with the tokenizer's
    own parallelism on or off (the CLI turns it off)."""

    def __init__(self, static_dir: Path, parallel: bool) -> None:
        from model2vec import StaticModel

        self.model, self.parallel = StaticModel.from_pretrained(str(static_dir)), parallel

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        os.environ["TOKENIZERS_PARALLELISM"] = "true" if self.parallel else "false"
        try:
            vectors = self.model.encode(texts, max_length=256, batch_size=max(batch_size, 1024),
                                        use_multiprocessing=False).astype(np.float32)
        finally:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def timed(encoder, texts: list[str], batch_size: int) -> float:
    start = time.perf_counter()
    encoder.encode(texts, batch_size)
    return time.perf_counter() - start


def throughput(texts: list[str], static_texts: list[str], batch_size: int, static_dir: Path,
               rounds: int) -> list[dict]:
    """MiniLM once per precision on `texts`; the static variants on `static_texts`,
    alternating over `rounds` rounds (median), so they share the machine's state."""
    from distill_core.signals.encoder import SentenceEncoder, cpu_bf16_units
    from distill_core.signals.static_encoder import StaticEncoder, encoder_threads

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # as `textdistill` runs set it
    minilm = [("MiniLM fp32", SentenceEncoder(MINILM, 256, "fp32"))]
    if cpu_bf16_units():
        minilm.append(("MiniLM bf16", SentenceEncoder(MINILM, 256, "bf16")))
    threads = encoder_threads()
    static = [("static: model2vec encode, tokenizer parallelism off (runs before)",
               Model2VecEncode(static_dir, parallel=False)),
              ("static: model2vec encode, tokenizer parallelism on",
               Model2VecEncode(static_dir, parallel=True)),
              ("static: StaticEncoder, 1 thread", StaticEncoder(static_dir, 256, threads=1)),
              (f"static: StaticEncoder, {threads} threads (default)",
               StaticEncoder(static_dir, 256, threads=threads))]
    results = []
    for name, encoder in minilm:
        encoder.encode(texts[:256], batch_size)  # warm-up
        seconds = timed(encoder, texts, batch_size)
        results.append({"encoder": name, "texts": len(texts), "seconds": round(seconds, 3),
                        "texts_per_s": round(len(texts) / seconds, 1)})
    samples: dict[str, list[float]] = {name: [] for name, _ in static}
    for _, encoder in static:
        encoder.encode(static_texts[:2048], batch_size)  # warm-up
    for _ in range(rounds):
        for name, encoder in static:
            samples[name].append(timed(encoder, static_texts, batch_size))
    for name, _ in static:
        seconds = float(np.median(samples[name]))
        results.append({"encoder": name, "texts": len(static_texts), "seconds": round(seconds, 3),
                        "texts_per_s": round(len(static_texts) / seconds, 1),
                        "rounds": [round(x, 3) for x in samples[name]]})
    return results


def quality(dataset: str, args: argparse.Namespace) -> list[dict]:
    minilm = split_arrays(signals_run(dataset, MINILM, args.data_dir, args.runs_dir))
    static = split_arrays(signals_run(dataset, STATIC, args.data_dir, args.runs_dir,
                                      extra=DISTILLED))
    assert minilm["train"][2] == static["train"][2], "the two runs must see the same rows"
    train_x, train_y, _ = minilm["train"]
    eval_x, eval_y, _ = minilm["eval"]
    labels = sorted(set(train_y.tolist()))
    rows = []
    for method in args.methods.split(","):
        for selecting, features in (("MiniLM", train_x), ("static", static["train"][0])):
            scores = []
            for seed in range(args.seeds):
                picked = select_per_class(method, features, train_y, args.per_class, seed).indices
                scores.append(linear_probe(train_x[picked], train_y[picked], eval_x, eval_y,
                                           labels).accuracy)
            rows.append({"dataset": dataset, "method": method, "selected_on": selecting,
                         "per_class": args.per_class, "accuracy_mean": float(np.mean(scores)),
                         "accuracy_std": float(np.std(scores)), "seeds": args.seeds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--datasets", default="sst2,ag_news")
    parser.add_argument("--methods", default="kmeans,herding")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10000, help="Texts for MiniLM's throughput.")
    parser.add_argument("--static-rows", type=int, default=0,
                        help="Texts for the static variants' throughput (0: the whole corpus).")
    parser.add_argument("--rounds", type=int, default=5, help="Alternating static rounds.")
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default="bench-out/static_encoder.json")
    args = parser.parse_args()

    from distill_core.signals.static_encoder import static_model_dir

    start = time.perf_counter()
    static_dir = static_model_dir(STATIC, Path(args.runs_dir) / ".cache")
    build_s = time.perf_counter() - start
    sst2 = signals_run("sst2", MINILM, args.data_dir, args.runs_dir, until="ingest")
    speed: list[dict] = []
    if not args.quality_only:
        corpus = sst2.read("ingest", columns=["text"]).column("text").to_pylist()
        speed = throughput(corpus[:args.rows], corpus[:args.static_rows or len(corpus)],
                           args.batch_size, static_dir, args.rounds)
        base = speed[0]["texts_per_s"]
        best = max(r["texts_per_s"] for r in speed if r["encoder"].startswith("MiniLM"))
        print(f"static model: {static_dir} (built or found in {build_s:.1f} s)\n")
        print("| encoder | texts | seconds | texts/s | × MiniLM fp32 | × best MiniLM |\n"
              "|---|---|---|---|---|---|")
        for row in speed:
            print(f"| {row['encoder']} | {row['texts']} | {row['seconds']} | "
                  f"{row['texts_per_s']} | {row['texts_per_s'] / base:.1f} | "
                  f"{row['texts_per_s'] / best:.1f} |")
        if args.throughput_only:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"build_s": build_s, "throughput": speed},
                                                 indent=2))
            return
    results = [r for dataset in args.datasets.split(",") for r in quality(dataset, args)]
    print(f"\n| dataset | method | selected on | accuracy % ({args.per_class}/class, "
          f"{args.seeds} seeds, LP on MiniLM) |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['dataset']} | {r['method']} | {r['selected_on']} | "
              f"{100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"build_s": build_s, "throughput": speed,
                                          "quality": results}, indent=2))


if __name__ == "__main__":
    main()
