"""Signals-stage throughput: textdistill (in process: fp32, bf16, auto; Ray) against
sentence-transformers.

Same model (all-MiniLM-L6-v2), same texts (GLUE SST-2 train, read through the
ordinary ingest path), same batch size, in one run. The baseline is plain
`SentenceTransformer.encode` (which also sorts by length), timed twice (first
and last) so drift shows; ratios are against the mean of its two passes.
The textdistill passes go through `embed_corpus`, i.e. the stage's own code.
`local_auto` is the default `signals.precision: auto` (what it resolves to on this
machine is printed); `auto_vs_fp32` is its speed against the fp32 pass of the same run.

    python benchmarks/bench_signals.py --data-dir ../shared/datasets --rows 10000

Prints a table and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def load_corpus(data_dir: str | None, rows: int) -> pa.Table:
    from distill_core.ingest import ingest_dataset, resolve_dataset
    from distill_core.ingest.ingest import data_dir_from

    corpus = ingest_dataset(resolve_dataset("sst2"), data_dir_from(data_dir)).corpus
    return corpus.slice(0, rows)


def timed(fn, texts_count: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    return texts_count / seconds, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", default="st,local,local_bf16,local_auto,ray,st",
                        help="Comma-separated passes, in order: st (sentence-transformers), "
                             "local (fp32), local_bf16, local_auto, ray.")
    parser.add_argument("--ray-actors", type=int, default=1)
    parser.add_argument("--model", default="all-MiniLM-L6-v2",
                        help="Encoder name or folder (same for both sides).")
    parser.add_argument("--out", default="bench-out/signals.json")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from distill_core.signals.embeddings import distinct_texts, embed_corpus, matrix
    from distill_core.signals.encoder import SentenceEncoder, cpu_bf16_units
    from distill_core.signals.models import resolve_model_path

    corpus = load_corpus(args.data_dir, args.rows)
    texts = distinct_texts(corpus)
    n = len(texts)
    path = resolve_model_path(args.model)
    st = SentenceTransformer(path, device=args.device).float()
    fp32 = SentenceEncoder(args.model, device=args.device)
    bf16 = SentenceEncoder(args.model, precision="bf16", device=args.device)
    auto = SentenceEncoder(args.model, precision="auto", device=args.device)
    print(f"precision auto resolves to {auto.precision} on {args.device} "
          f"(CPU bf16 units: {', '.join(cpu_bf16_units()) or 'none'})", flush=True)
    warm = texts[:256]
    st.encode(warm, batch_size=args.batch_size)
    for encoder in (fp32, bf16, auto):
        encoder.encode(warm, args.batch_size)

    def run_st():
        return st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True,
                         convert_to_numpy=True)

    def run_ours(encoder):
        return lambda: matrix(embed_corpus(corpus, lambda t: encoder.encode(t, args.batch_size)))

    def run_ray():
        import ray

        from distill_core.config import SignalsSection
        from distill_core.pipeline.executor import Resources
        from distill_core.signals.readout import embed_texts
        from tasks.ray_executor import RayExecutor

        if not ray.is_initialized():
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        executor = RayExecutor(torch_threads=torch.get_num_threads())
        resources = Resources(cpus=0.5, gpus=1.0 if args.device == "cuda" else 0,
                              workers=args.ray_actors)
        signals = SignalsSection(model=args.model, batch_size=args.batch_size)

        def encode(batch):
            vectors, result = embed_texts(executor, signals, batch, resources)
            ray_timings.append(result.timings)
            return vectors

        return matrix(embed_corpus(corpus, encode))

    ray_timings: list[dict[str, float]] = []
    runners = {"st": run_st, "local": run_ours(fp32), "local_bf16": run_ours(bf16),
               "local_auto": run_ours(auto), "ray": run_ray}
    results: dict[str, list[float]] = {}
    outputs: dict[str, np.ndarray] = {}
    for name in args.variants.split(","):
        rate, out = timed(runners[name], n)
        results.setdefault(name, []).append(rate)
        outputs[name] = out
        print(f"{name:>11}: {rate:8.1f} texts/s", flush=True)
    baseline = float(np.mean(results["st"]))
    rows = {name: {"texts_per_s": float(np.mean(r)), "passes": r,
                   "ratio_vs_st_fp32": float(np.mean(r)) / baseline}
            for name, r in results.items()}
    # outputs of ours are per corpus row; the corpus slice rows are distinct here or mapped
    position = {t: i for i, t in enumerate(texts)}
    row_to_text = np.array([position[t] for t in corpus.column("text").to_pylist()])
    reference = outputs["st"][row_to_text]
    agreement = {name: float(np.min(np.sum(out * reference, axis=1)))
                 for name, out in outputs.items() if name != "st"}
    for name in ("local_bf16", "local_auto"):
        if "local" in outputs and name in outputs:
            agreement[f"{name}_vs_local_fp32"] = float(
                np.min(np.sum(outputs[name] * outputs["local"], axis=1)))
    report = {
        "texts": n, "batch_size": args.batch_size, "device": args.device,
        "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or
        platform.machine(), "cpu_bf16_units": cpu_bf16_units(),
        "torch": torch.__version__, "results": rows,
        "auto_resolves_to": auto.precision,
        "auto_vs_fp32": (rows["local_auto"]["texts_per_s"] / rows["local"]["texts_per_s"]
                         if "local_auto" in rows and "local" in rows else None),
        "load_average": os.getloadavg(), "cpus": os.cpu_count(),
        "min_cosine_vs_st": agreement,
        "ray_timings": ray_timings,
        "ray_steady_ratio_vs_st_fp32": (ray_timings[-1]["steady_rows_per_s"] / baseline
                                        if ray_timings else None),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
