"""The run report's two figures, as PNG bytes (matplotlib, Agg).

1. Accuracy of the distilled set next to random subsets of the same budget and
   the full training split: mean ± std over seeds per setting (and per learner
   when the run scored several), from the evaluate manifest's `summary`.
2. A map of the corpus: a 2-D PCA of the signals stage's embeddings of the
   training split, a seeded sample stratified by class (at most `MAP_POINTS`
   points), coloured by class, with the first replicate's distilled rows drawn
   as large outlined markers. A generated row has no corpus embedding; it is
   placed by the embedding the generate stage wrote for it (same encoder), and a
   row with neither is left out and counted.

Everything is read through `RunStore.read`, so parts are verified. The same
artifacts and seed give the same bytes, so `write_report` rewrites nothing for
an unchanged run.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill_core.artifacts.store import RunStore
from distill_core.markdown import score_learners, setting_name

__all__ = ["MAP_POINTS", "CorpusMap", "accuracy_png", "build_map", "corpus_map",
           "map_caption", "map_png", "stratified_sample"]

MAP_POINTS = 5000  # corpus points drawn at most (the distilled rows are always drawn)
_DPI = 100


@dataclass(frozen=True)
class CorpusMap:
    """What the map draws: sampled corpus points and the distilled rows, in PCA coordinates."""

    class_names: list[str]
    xy: np.ndarray  # [n, 2] sampled corpus points
    labels: np.ndarray  # [n] class index of each sampled point
    corpus_rows: int  # training rows the sample was drawn from
    distilled_ids: list[str]
    distilled_xy: np.ndarray  # [m, 2]
    distilled_labels: np.ndarray  # [m] class index
    distilled_generated: np.ndarray  # [m] bool: placed by the generate stage's embedding
    skipped: int  # distilled rows with no embedding anywhere: not drawn
    seed: int
    explained: tuple[float, float]  # variance ratio of the two components
    notes: list[str] = field(default_factory=list)


def stratified_sample(labels: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Sorted row indices: all rows when there are at most `cap`, else `cap` rows drawn per
    class in proportion to its size (at least one per class, largest remainders get the
    leftover), seeded."""
    n = len(labels)
    if n <= cap:
        return np.arange(n)
    # class indices are small non-negative ints: counted, not sorted (np.unique sorts a copy
    # of every row's label); the same classes, in the same order, as np.unique gives
    every = np.bincount(labels)
    classes = np.flatnonzero(every)
    counts = every[classes]
    exact = cap * counts / n
    quota = np.maximum(np.floor(exact).astype(int), 1)  # every class shows, however small
    while quota.sum() > cap:  # more classes than points: take them back from the largest
        quota[np.argmax(quota)] -= 1
    for j in np.argsort(-(exact - quota), kind="stable")[:cap - int(quota.sum())]:
        quota[j] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), k, replace=False)
              for c, k in zip(classes, quota, strict=True) if k]
    return np.sort(np.concatenate(picked))


def build_map(class_names: list[str], ids: list[str], labels: np.ndarray, x: np.ndarray,
              distilled_ids: list[str], distilled_labels: np.ndarray,
              generated: dict[str, np.ndarray] | None = None, cap: int = MAP_POINTS,
              seed: int = 0) -> CorpusMap:
    """PCA fitted on a stratified sample of the corpus rows `x`; the distilled rows (found
    by example id among all corpus rows, else in `generated`) projected with it."""
    sample = stratified_sample(labels, cap, seed)
    position = {e: i for i, e in enumerate(ids)}
    found = {e: x[position[e]] for e in distilled_ids if e in position}
    return _map(class_names, x[sample], np.asarray(labels)[sample], len(ids), distilled_ids,
                distilled_labels, found, generated, seed)


def _map(class_names: list[str], sampled_x: np.ndarray, sampled_labels: np.ndarray,
         corpus_rows: int, distilled_ids: list[str], distilled_labels: np.ndarray,
         found: dict[str, np.ndarray], generated: dict[str, np.ndarray] | None,
         seed: int) -> CorpusMap:
    """`build_map` from the sampled rows and the distilled rows `found` among the corpus."""
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    points = np.asarray(sampled_x, dtype=np.float64)
    # A small eigenproblem: one BLAS thread (a pool of them only contends on a busy machine).
    with threadpool_limits(limits=1):
        pca = PCA(n_components=2, svd_solver="covariance_eigh").fit(points)
    generated = generated or {}
    rows, kept, from_generate, skipped = [], [], [], 0
    for j, example_id in enumerate(distilled_ids):
        if example_id in found:
            rows.append(np.asarray(found[example_id], dtype=np.float64))
        elif (vector := generated.get(example_id)) is not None \
                and vector.size == points.shape[1]:
            rows.append(np.asarray(vector, dtype=np.float64))
        else:
            skipped += 1
            continue
        kept.append(j)
        from_generate.append(example_id not in found)
    distilled = (pca.transform(np.vstack(rows)) if rows else np.zeros((0, 2)))
    ratio = pca.explained_variance_ratio_
    # Rounded so that the last bits of the SVD never change a pixel between two builds.
    return CorpusMap(
        class_names=class_names, xy=np.round(pca.transform(points), 5),
        labels=np.asarray(sampled_labels), corpus_rows=corpus_rows,
        distilled_ids=[distilled_ids[j] for j in kept],
        distilled_xy=np.round(distilled, 5),
        distilled_labels=np.asarray(distilled_labels)[kept].astype(int),
        distilled_generated=np.asarray(from_generate, dtype=bool), skipped=skipped, seed=seed,
        explained=(round(float(ratio[0]), 4), round(float(ratio[1]), 4)))


def corpus_map(store: RunStore, cap: int = MAP_POINTS) -> CorpusMap | str:
    """The map of a run, or a sentence saying why it has none: the sample drawn by the
    training labels alone, then only its rows' and the distilled rows' features read."""
    ingest = store.manifest("ingest")
    if ingest is None:
        return "No map of the corpus: the ingest stage has not run."
    if store.manifest("signals") is None:
        return ("No map of the corpus: this run has no embeddings (the signals stage has not "
                "run).")
    if store.manifest("filter") is None:
        return "No map of the corpus: the filter stage (the distilled set) has not run."
    from distill_core.generate.features import generated_features
    from distill_core.pipeline.batches import stage_batches
    from distill_core.pipeline.inputs import corpus_where, ids_pick

    # one pass for the training rows' labels (what the sample is drawn by), one for the
    # sampled and distilled rows' features: never every row's features
    # int32 class indices, mapped by Arrow batch by batch (no Python object per row: at 5M
    # rows the int64 labels and their copies were the largest thing the report held)
    names = list(ingest.get("label_names") or [])
    index = {name: i for i, name in enumerate(names)}
    chunks = []
    for rows in stage_batches(store, "ingest", ["split", "label"]):
        train = rows.filter(pc.equal(rows.column("split"), "train")).column("label")
        for name in sorted(set(train.unique().to_pylist()) - set(index), key=str):
            index[name] = len(names)
            names.append(name)
        at = pc.index_in(train, value_set=pa.array(names, type=train.type))
        chunks.append(at.to_numpy(zero_copy_only=False).astype(np.int32, copy=False))
    labels = np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
    del chunks
    if len(labels) < 2:
        return "No map of the corpus: the training split has fewer than two rows."
    extra = sorted(names[len(ingest.get("label_names") or []):])  # as before: sorted extras
    names = names[:len(names) - len(extra)] + extra
    remap = np.array([names.index(n) for n in list(index)], dtype=np.int32)
    labels = remap[labels]
    distilled = store.read("filter", columns=["example_id", "replicate", "label"])
    first = (min(distilled.column("replicate").to_pylist()) if distilled.num_rows else 0)
    distilled = distilled.filter(pc.equal(distilled.column("replicate"), first))
    seeds = (store.manifest("filter") or {}).get("seeds") or [0]
    seed = int(seeds[first] if first < len(seeds) else seeds[0])
    sample = stratified_sample(labels, cap, seed)
    distilled_ids = distilled.column("example_id").to_pylist()
    named, seen, picked_at = ids_pick(distilled_ids), {"train": 0}, []

    def pick(rows: pa.Table, start: int) -> np.ndarray:
        train = np.asarray(pc.equal(rows.column("split"), "train").to_numpy(
            zero_copy_only=False), dtype=bool)
        at = seen["train"] + np.cumsum(train) - 1
        seen["train"] += int(train.sum())
        hit = np.minimum(np.searchsorted(sample, at), len(sample) - 1)
        mask = train & ((sample[hit] == at) | named(rows, start))
        picked_at.append(at[mask])
        return mask

    rows, x, _ = corpus_where(store, pick, ["example_id", "split"])
    found = {e: x[i] for i, e in enumerate(rows.column("example_id").to_pylist())}
    in_sample = np.isin(np.concatenate(picked_at), sample)
    extra_x = generated_features(store)
    generated = ({} if extra_x is None else
                 {e: extra_x.x[i] for i, e in enumerate(extra_x.ids)})
    return _map(names, x[in_sample], labels[sample], len(labels), distilled_ids,
                np.fromiter((names.index(v) if v in names else -1
                             for v in distilled.column("label").to_pylist()), dtype=np.int64),
                found, generated, seed)


def _shown(corpus: CorpusMap) -> str:
    if len(corpus.labels) < corpus.corpus_rows:
        return f"{len(corpus.labels)} of the {corpus.corpus_rows} training rows"
    return f"all {corpus.corpus_rows} training rows"


def map_caption(corpus: CorpusMap) -> str:
    """What the map shows, in words: the sample, the distilled rows, what is not shown."""
    caption = ("PCA of the signals stage's embeddings: " + _shown(corpus)
               + (f", sampled per class in proportion (seed {corpus.seed})"
                  if len(corpus.labels) < corpus.corpus_rows else "")
               + ", coloured by class. Large outlined markers: the "
               f"{len(corpus.distilled_ids)} distilled rows of seed {corpus.seed} (first "
               "replicate), in their class's colour.")
    if made := int(corpus.distilled_generated.sum()):
        caption += (f" Stars: {made} generated rows, placed by the embedding the generate "
                    "stage wrote for them.")
    if corpus.skipped:
        caption += (f" {corpus.skipped} distilled rows have no embedding to place them by "
                    "(none in the corpus, none of the same width from the generate stage) and "
                    "are not shown.")
    return caption


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    _pyplot().close(figure)
    return buffer.getvalue()


def _colours(n: int) -> list[Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _setting_label(entry: dict[str, Any]) -> str:
    name = setting_name(entry)
    budget = (f"{entry['per_class']}/class" if entry.get("per_class")
              else f"all {entry['n_train']} rows")
    return f"{name}\n{budget}"


SETTING_COLOURS = {"distilled": "#1f77b4", "distilled_soft": "#9467bd", "random": "#ff7f0e",
                   "full": "#333333"}


def accuracy_png(summary: list[dict[str, Any]], n_classes: int | None = None) -> bytes:
    """Accuracy (%) per setting, mean ± std over seeds: one row per setting, coloured by
    setting (one learner) or by learner (several, with a legend)."""
    plt = _pyplot()
    settings = list(dict.fromkeys(_setting_label(e) for e in summary))
    learners = score_learners(summary)
    several = len(learners) > 1
    height = 1.3 + 0.55 * len(settings) * (1 + 0.35 * (len(learners) - 1))
    figure, axis = plt.subplots(figsize=(8, height), dpi=_DPI)
    by_learner = _colours(len(learners))
    step = 0.6 / len(learners)
    labelled: set[str] = set()
    for entry in summary:
        learner = entry.get("learner", "linear_probe")
        k = learners.index(learner)
        y = settings.index(_setting_label(entry)) + (k - (len(learners) - 1) / 2) * step
        mean, std = 100 * entry["accuracy_mean"], 100 * entry["accuracy_std"]
        spread = std if entry["n"] > 1 else 0.0
        distilled = entry["setting"].startswith("distilled")
        colour = by_learner[k] if several else SETTING_COLOURS.get(entry["setting"], "#333333")
        axis.errorbar(mean, y, xerr=spread or None, fmt="D" if distilled else "o", color=colour,
                      capsize=4, markersize=8 if distilled else 6, elinewidth=1.5,
                      label=learner if several and learner not in labelled else None)
        labelled.add(learner)
        text = f"{mean:.1f}" + (f" ± {std:.1f}" if spread else "") + f"  (n={entry['n']})"
        axis.annotate(text, (mean + spread, y), xytext=(6, 0), textcoords="offset points",
                      va="center", fontsize=8)
    if n_classes:
        axis.axvline(100 / n_classes, color="grey", linestyle=":", linewidth=1)
        axis.annotate("chance", (100 / n_classes, -0.5), xytext=(3, -3),
                      textcoords="offset points", fontsize=7, color="grey", va="top")
    axis.set_yticks(range(len(settings)), settings, fontsize=8)
    axis.set_ylim(len(settings) - 0.5, -0.5)
    lows = [100 * (e["accuracy_mean"] - e["accuracy_std"]) for e in summary]
    highs = [100 * (e["accuracy_mean"] + e["accuracy_std"]) for e in summary]
    floor = min(lows + ([100 / n_classes] if n_classes else []))
    axis.set_xlim(max(0.0, floor - 5), max(highs) + 14)  # room for the labels
    axis.set_xlabel("accuracy on the evaluation split (%)")
    axis.grid(axis="x", alpha=0.3)
    axis.set_title("Distilled set against random subsets and full data", fontsize=10)
    if several:
        axis.legend(fontsize=8, title="learner", title_fontsize=8, loc="best")
    figure.tight_layout()
    return _png(figure)


def map_png(corpus: CorpusMap) -> bytes:
    """The corpus sample coloured by class, the distilled rows as large outlined markers."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 6.2), dpi=_DPI)
    colours = _colours(len(corpus.class_names))
    dot, alpha = (5, 0.35) if len(corpus.labels) > 2000 else (14, 0.55)  # sparse: larger dots
    for c in range(len(corpus.class_names)):
        mask = corpus.labels == c
        if mask.any():
            axis.scatter(corpus.xy[mask, 0], corpus.xy[mask, 1], s=dot, color=colours[c],
                         alpha=alpha, linewidths=0)
    for generated, marker, size in ((False, "o", 110), (True, "*", 240)):
        mask = corpus.distilled_generated == generated
        if mask.any():
            axis.scatter(corpus.distilled_xy[mask, 0], corpus.distilled_xy[mask, 1], s=size,
                         marker=marker, color=[colours[c] if c >= 0 else "white"
                                               for c in corpus.distilled_labels[mask]],
                         edgecolors="black", linewidths=1.3, zorder=3)
    handles = [Line2D([], [], marker="o", linestyle="", color=colours[c], markersize=6,
                      label=f"{name} ({int((corpus.labels == c).sum())} shown)")
               for c, name in enumerate(corpus.class_names)]
    real = int((~corpus.distilled_generated).sum())
    if real:
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="lightgrey",
                              markeredgecolor="black", markersize=10,
                              label=f"distilled, seed {corpus.seed} ({real})"))
    if (made := int(corpus.distilled_generated.sum())):
        handles.append(Line2D([], [], marker="*", linestyle="", markerfacecolor="lightgrey",
                              markeredgecolor="black", markersize=14,
                              label=f"distilled, generated ({made})"))
    axis.legend(handles=handles, fontsize=8, loc="best", framealpha=0.85)
    axis.set_xlabel(f"PC1 ({100 * corpus.explained[0]:.1f}% of variance)")
    axis.set_ylabel(f"PC2 ({100 * corpus.explained[1]:.1f}% of variance)")
    axis.set_title(f"Corpus map: {_shown(corpus)} (PCA of the embeddings)", fontsize=10)
    axis.grid(alpha=0.2)
    figure.tight_layout()
    return _png(figure)


def outer_loss_png(replicates: list[dict[str, Any]], family: str) -> bytes:
    """The learned distillation's outer loss per step, one line per seed (log scale when
    the losses span more than a decade)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 3.2), dpi=_DPI)
    colours = _colours(max(len(replicates), 1))
    for colour, entry in zip(colours, replicates, strict=False):
        losses = entry["losses"]
        axis.plot(range(1, len(losses) + 1), losses, color=colour, linewidth=1.4,
                  marker="o" if len(losses) <= 30 else None, markersize=3,
                  label=f"seed {entry['seed']}")
    values = [v for e in replicates for v in e["losses"] if v > 0]
    if values and max(values) / min(values) > 10:
        axis.set_yscale("log")
    axis.set_xlabel("outer step")
    axis.set_ylabel("matching loss")
    axis.grid(alpha=0.3)
    axis.set_title(f"Outer loss of the learned distillation ({family})", fontsize=10)
    if len(replicates) > 1:
        axis.legend(fontsize=8)
    figure.tight_layout()
    return _png(figure)
