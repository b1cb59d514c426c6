"""Encoding on Ray: a Ray Data `map_batches` actor pool, the model loaded once per actor.

Texts are sorted by length before they are split into blocks, so each batch an
actor sees is of similar length (little padding), and rows carry their input
position so the result is reassembled in order whatever the completion order.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from distill_core.config import ComputeSection, FaultsSection, SignalsSection
from distill_core.faults import claim_once


def ensure_ray(address: str | None) -> None:
    """Connect to `address`, or start a local Ray once per process (workers reuse it)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True, configure_logging=False)


class EmbedActor:
    """One encoder per actor; `__call__` embeds a batch of rows and says where it ran."""

    def __init__(self, model: str, max_length: int, precision: str, batch_size: int,
                 trust_remote_code: bool, torch_threads: int | None,
                 fail_after_batches: int | None = None, marker_dir: str | None = None) -> None:
        import ray
        import torch

        from distill_core.signals.encoder import SentenceEncoder

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.batch_size = batch_size
        self.encoder = SentenceEncoder(model, max_length, precision,
                                       trust_remote_code=trust_remote_code)
        self.where = f"{ray.get_runtime_context().get_node_id()[:12]}:{os.getpid()}"
        self.fail_after_batches, self.marker_dir, self.batches = (fail_after_batches,
                                                                  marker_dir, 0)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches += 1
        if (self.fail_after_batches is not None and self.batches > self.fail_after_batches
                and claim_once(self.marker_dir or ".", "actor-killed")):
            os._exit(1)  # an abrupt worker death in the middle of a batch (fault drill)
        vectors = self.encoder.encode([str(t) for t in batch["text"]], self.batch_size)
        return {"position": batch["position"], "embedding": vectors,
                "worker": np.asarray([self.where] * len(vectors))}


class RayEncoder:
    """Encode texts on a Ray Data actor pool; `workers` counts rows per actor (node:pid)."""

    def __init__(self, signals: SignalsSection, compute: ComputeSection,
                 faults: FaultsSection | None = None) -> None:
        self.signals = signals
        self.compute = compute
        self.faults = faults or FaultsSection()
        self.workers: dict[str, int] = {}
        self.timings: dict[str, float] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import ray

        signals, compute = self.signals, self.compute
        ensure_ray(compute.ray_address)
        # Start on the whole pool, not the first actor ready: otherwise a fast first actor can
        # take every block and the other nodes stay idle.
        context = ray.data.DataContext.get_current()
        context.wait_for_min_actors_s = max(context.wait_for_min_actors_s, 600)
        start = time.perf_counter()
        first_batch_at, first_batch_rows = None, 0
        order = np.argsort([len(t) for t in texts], kind="stable")
        table = pa.table({"position": pa.array(order, pa.int64()),
                          "text": pa.array([texts[i] for i in order], pa.string())})
        rows_per_block = max(signals.batch_size * 8, 1)
        dataset = ray.data.from_arrow(
            [table.slice(s, rows_per_block) for s in range(0, table.num_rows, rows_per_block)])
        embedded = dataset.map_batches(
            EmbedActor,
            fn_constructor_kwargs={
                "model": signals.model, "max_length": signals.max_length,
                "precision": signals.precision, "batch_size": signals.batch_size,
                "trust_remote_code": signals.trust_remote_code,
                "torch_threads": compute.torch_threads,
                "fail_after_batches": self.faults.kill_actor_after_batches,
                "marker_dir": self.faults.marker_dir},
            batch_size=rows_per_block, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=compute.num_actors),
            num_cpus=compute.cpus_per_actor, num_gpus=compute.gpus_per_actor or None)
        out: np.ndarray | None = None
        filled = np.zeros(len(texts), dtype=bool)
        for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            vectors = batch["embedding"]
            if vectors.dtype == object:
                vectors = np.stack(vectors)
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[batch["position"]] = vectors
            filled[batch["position"]] = True
            if first_batch_at is None:
                first_batch_at, first_batch_rows = time.perf_counter(), len(vectors)
            for worker, count in zip(*np.unique(batch["worker"], return_counts=True),
                                     strict=True):
                self.workers[str(worker)] = self.workers.get(str(worker), 0) + int(count)
        end = time.perf_counter()
        if first_batch_at is not None:
            # Pool start (worker processes, imports, model load) happens once per stage; the
            # steady rate is what more actors or more rows scale.
            self.timings = {
                "total_s": round(end - start, 3),
                "first_batch_s": round(first_batch_at - start, 3),
                "steady_texts_per_s": round((len(texts) - first_batch_rows)
                                            / max(end - first_batch_at, 1e-9), 1)}
        if out is None or not filled.all():
            missing = int((~filled).sum()) if out is not None else len(texts)
            raise RuntimeError(f"Ray returned no embedding for {missing} of {len(texts)} texts")
        return out


class TeacherActor:
    """A fine-tuned teacher per actor, loaded once from its saved folder (safetensors)."""

    def __init__(self, model_dir: str, batch_size: int, torch_threads: int | None) -> None:
        import torch

        from distill_core.models.finetune import load_finetuned

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.batch_size = batch_size
        self.classifier = load_finetuned(model_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = [str(p) for p in batch["pair"]] if "pair" in batch else None
        logits, features = self.classifier.predict([str(t) for t in batch["text"]], pairs,
                                                   self.batch_size)
        return {"position": batch["position"], "logits": logits, "features": features}


def ray_teacher_predict(model_dir: str, texts: Sequence[str], pairs: Sequence[str] | None,
                        signals: SignalsSection, compute: ComputeSection
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Logits and head inputs of a saved fine-tuned teacher, on a Ray Data actor pool."""
    import ray

    ensure_ray(compute.ray_address)
    order = np.argsort([len(t) for t in texts], kind="stable")
    columns = {"position": pa.array(order, pa.int64()),
               "text": pa.array([texts[i] for i in order], pa.string())}
    if pairs is not None:
        columns["pair"] = pa.array([pairs[i] for i in order], pa.string())
    table = pa.table(columns)
    block = max(signals.batch_size * 8, 1)
    dataset = ray.data.from_arrow([table.slice(s, block) for s in range(0, table.num_rows, block)])
    predicted = dataset.map_batches(
        TeacherActor, fn_constructor_kwargs={"model_dir": model_dir,
                                             "batch_size": signals.batch_size,
                                             "torch_threads": compute.torch_threads},
        batch_size=block, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=compute.num_actors),
        num_cpus=compute.cpus_per_actor, num_gpus=compute.gpus_per_actor or None)
    logits = features = None
    filled = np.zeros(len(texts), dtype=bool)
    for batch in predicted.iter_batches(batch_size=None, batch_format="numpy"):
        if logits is None:
            logits = np.zeros((len(texts), batch["logits"].shape[1]), dtype=np.float32)
            features = np.zeros((len(texts), batch["features"].shape[1]), dtype=np.float32)
        logits[batch["position"]] = batch["logits"]
        features[batch["position"]] = batch["features"]
        filled[batch["position"]] = True
    if logits is None or features is None or not filled.all():
        raise RuntimeError(f"Ray returned no teacher output for {int((~filled).sum())} texts")
    return logits, features


def ray_encoder(signals: SignalsSection, compute: ComputeSection,
                faults: FaultsSection | None = None) -> RayEncoder:
    """An encode function that runs on a Ray Data actor pool."""
    return RayEncoder(signals, compute, faults)


def _select_one(inputs, seed: int) -> tuple[object, str]:
    """One seed's selection on a Ray worker; returns it and where it ran (node:pid)."""
    import ray

    return inputs.select(seed), f"{ray.get_runtime_context().get_node_id()[:12]}:{os.getpid()}"


class RaySelector:
    """Run each seed's selection as a Ray task, spread over the cluster's nodes.

    The inputs (features, teacher signals) go to the object store once; `workers`
    records which node and process selected each seed.
    """

    def __init__(self, compute: ComputeSection) -> None:
        self.compute = compute
        self.workers: dict[str, str] = {}

    def __call__(self, inputs, seeds: list[int]) -> list:
        import ray

        ensure_ray(self.compute.ray_address)
        remote = ray.remote(num_cpus=self.compute.cpus_per_actor, max_retries=2,
                            scheduling_strategy="SPREAD")(_select_one)
        shared = ray.put(inputs)
        results = ray.get([remote.remote(shared, seed) for seed in seeds])
        self.workers = {str(seed): where for seed, (_, where) in zip(seeds, results,
                                                                      strict=True)}
        return [selection for selection, _ in results]
