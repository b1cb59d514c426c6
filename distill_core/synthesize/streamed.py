"""Selection over classes read from disk a chunk at a time: memory follows the chunk and the
budget, not the class's vectors (herding keeps 8 bytes a row: each row's squared norm).

`StreamedSelection` runs `kmeans`, `herding` or `random` per class on classes spilled to
disk (`class_rows.py`), with the same per-class rules as the in-memory selection
(`base.select_classes`: budget, shortfall, `budget x oversample` ranked rows, one seed per
class). A class of at most `STREAM_ABOVE_ROWS` rows is read whole and goes through the
in-memory selector, so small data gives exactly today's picks; a larger class is ranked by:

- `kmeans`: exact k-means (`n_init`, `max_iter`) on a uniform sample of `SAMPLE_ROWS` rows
  seeds scikit-learn's `MiniBatchKMeans`, refined by `partial_fit` over every row for
  `EPOCHS` passes (chunks in a seeded random order); then one more pass keeps, per centroid,
  the `budget` nearest rows and the `budget x oversample` nearest of its members, which is
  all the in-memory ranking (`nearest_distinct`, then `next_members`) can reach, so the picks
  are that ranking applied to the final centroids.
- `herding`: the same greedy rule as in memory, one pass over the class per pick, holding
  the class mean, the running sum, the picks and each row's squared norm (from the first
  pass). The mean is summed in the same order and
  every distance computed the same way, so it picks the same rows as in memory. It does not
  use the seed, so one ranking per class serves every seed.
- `random`: `budget` rows drawn as in memory (numpy's `choice` without replacement holds only
  the draws), the reserve drawn by rejection from the rest: never a permutation of the class.

Methods that read teacher signals (and `kcenter_greedy`) hold the pool in memory (see
`pipeline/inputs.selection_pool` and its row limit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distill_core.synthesize import class_rows
from distill_core.synthesize.base import (
    SELECTORS,
    ClassData,
    ClassSelection,
    Selection,
    ranked_length,
    select_classes,
)
from distill_core.synthesize.class_rows import ClassRows
from distill_core.synthesize.kmeans_prototypes import available_cores, squared_distances

STREAM_ABOVE_ROWS = 100_000  # a class with more rows than this is ranked by streaming
SAMPLE_ROWS = 20_000  # rows of the exact k-means that seeds the mini-batch k-means
EPOCHS = 2  # mini-batch k-means passes over the class
STREAMED_METHODS = ("kmeans", "herding", "random")


def _smallest(values: np.ndarray, rows: np.ndarray, count: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """The `count` smallest values with their rows, ties by row (as `argmin` breaks them)."""
    order = np.lexsort((rows, values))[:count]
    return values[order], rows[order]


def streamed_kmeans(rows: ClassRows, budget: int, seed: int, n_init: int = 3,
                    max_iter: int = 300, ranked: int | None = None,
                    threads: int | None = None) -> ClassSelection:
    """`kmeans` on a class read chunk by chunk (see the module doc)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    sample = rows.gather(np.sort(rng.choice(rows.rows, size=min(rows.rows, SAMPLE_ROWS),
                                            replace=False)))
    chunks = rows.chunk_count()
    with threadpool_limits(limits=threads or available_cores()):
        start = KMeans(n_clusters=budget, init="k-means++", n_init=n_init, max_iter=max_iter,
                       random_state=seed).fit(sample)
        model = MiniBatchKMeans(n_clusters=budget, init=start.cluster_centers_, n_init=1,
                                batch_size=class_rows.CHUNK_ROWS, random_state=seed)
        for _ in range(EPOCHS):
            for _, x in rows.chunks(order=rng.permutation(chunks)):
                model.partial_fit(x)
    centroids = model.cluster_centers_.astype(np.float32)
    total = ranked_length(budget, ranked, rows.rows)
    sizes = np.zeros(budget, dtype=np.int64)
    empty_f, empty_i = np.zeros(0, np.float32), np.zeros(0, np.int64)
    near = [(empty_f, empty_i)] * budget  # per centroid: the `budget` nearest rows
    members = [(empty_f, empty_i)] * budget  # per centroid: its `total` nearest members
    for first, x in rows.chunks():
        sq = squared_distances(x, centroids)
        assignment = np.argmin(sq, axis=1)
        sizes += np.bincount(assignment, minlength=budget)
        index = np.arange(first, first + len(x), dtype=np.int64)
        for c in range(budget):
            near[c] = _smallest(np.concatenate([near[c][0], sq[:, c]]),
                                np.concatenate([near[c][1], index]), budget)
            mine = assignment == c
            members[c] = _smallest(np.concatenate([members[c][0], sq[mine, c]]),
                                   np.concatenate([members[c][1], index[mine]]), total)
    order = np.argsort(-sizes, kind="stable")
    taken: set[int] = set()
    chosen: list[int] = []
    distances: list[float] = []
    for c in order:  # nearest_distinct: each centroid's nearest row not taken before
        for value, row in zip(*near[c], strict=True):
            if int(row) not in taken:
                taken.add(int(row))
                chosen.append(int(row))
                distances.append(float(np.sqrt(value)))
                break
    queues = [list(zip(*members[c], strict=True)) for c in order]  # next_members
    while len(chosen) < total and any(queues):
        for queue in queues:
            while queue and int(queue[0][1]) in taken:
                queue.pop(0)
            if queue and len(chosen) < total:
                value, row = queue.pop(0)
                taken.add(int(row))
                chosen.append(int(row))
                distances.append(float(np.sqrt(value)))
    return ClassSelection(np.asarray(chosen, dtype=np.int64), np.asarray(distances))


def _running_sum(rows: ClassRows) -> np.ndarray:
    """The rows' float64 sum in row order (as `x.sum(axis=0)` adds them in memory)."""
    total = np.zeros(rows.dim, dtype=np.float64)
    for _, x in rows.chunks():
        total = np.concatenate([total[None, :], x.astype(np.float64)]).sum(axis=0)
    return total


def streamed_herding(rows: ClassRows, budget: int, seed: int, ranked: int | None = None
                     ) -> ClassSelection:
    """`herding` on a class read chunk by chunk: one pass per pick (see the module doc)."""
    mu = _running_sum(rows) / rows.rows
    running = np.zeros_like(mu)
    chosen: list[int] = []
    scores: list[float] = []
    taken = np.zeros(0, dtype=np.int64)
    squared_norms: dict[int, np.ndarray] = {}  # per chunk, from the first pass: 8 bytes a row
    for step in range(1, ranked_length(budget, ranked, rows.rows) + 1):
        target = step * mu - running
        best, best_row, best_x = np.inf, -1, None
        for first, chunk in rows.chunks():
            x = chunk.astype(np.float64)
            if first not in squared_norms:
                squared_norms[first] = np.einsum("ij,ij->i", x, x)
            distance = (squared_norms[first] - 2.0 * (x @ target)) / step**2
            mine = taken[(taken >= first) & (taken < first + len(x))] - first
            distance[mine] = np.inf
            row = int(np.argmin(distance))
            if distance[row] < best:  # strictly: the first row wins a tie, as in memory
                best, best_row, best_x = distance[row], first + row, x[row].copy()
        assert best_x is not None, "a class has more rows than it ranks"
        taken = np.append(taken, best_row)
        running += best_x
        chosen.append(best_row)
        scores.append(float(np.linalg.norm(mu - running / step)))
    return ClassSelection(np.asarray(chosen, dtype=np.int64), np.asarray(scores))


def streamed_random(count: int, budget: int, seed: int, ranked: int | None = None
                    ) -> ClassSelection:
    """`random` holding only its draws: the first `budget` as in memory, the reserve drawn
    uniformly from the rest by rejection."""
    rng = np.random.default_rng(seed)
    total = ranked_length(budget, ranked, count)
    first = rng.choice(count, size=budget, replace=False)
    seen, more = set(first.tolist()), []
    while len(more) < total - budget:
        for value in rng.integers(0, count, size=2 * (total - budget - len(more)) + 8).tolist():
            if value not in seen and len(more) < total - budget:
                seen.add(value)
                more.append(value)
    indices = np.concatenate([first, np.asarray(more, dtype=np.int64)]).astype(np.int64)
    return ClassSelection(indices=indices, scores=np.full(total, np.nan))


StreamedPicker = Callable[..., ClassSelection]
_STREAMED: dict[str, StreamedPicker] = {"kmeans": streamed_kmeans, "herding": streamed_herding}


@dataclass
class StreamedSelection:
    """What one seed's streamed selection reads (paths and per-row labels: small enough to
    ship to a worker; the class files must be readable there).

    `label_ids` are the pool's rows' classes in pool order; `classes` each class's spilled
    features (None for `random`, which needs only the counts)."""

    method: str
    label_ids: np.ndarray
    classes: dict[int, ClassRows] | None
    per_class: int
    params: dict[str, Any]
    oversample: int = 1
    _memo: dict[tuple[int, int], ClassSelection] = field(default_factory=dict, repr=False)

    def algorithm(self, rows: int) -> str:
        """How a class of `rows` rows is ranked (for the manifest)."""
        if rows <= self.per_class:
            return "all rows (class within the budget)"
        if self.method == "random":
            return "random (draws only)" if rows > STREAM_ABOVE_ROWS else "random"
        if rows <= STREAM_ABOVE_ROWS:
            return {"kmeans": "k-means (exact, scikit-learn KMeans)",
                    "herding": "herding"}[self.method]
        return {"kmeans": f"mini-batch k-means (scikit-learn MiniBatchKMeans.partial_fit, "
                          f"{EPOCHS} passes, seeded by exact k-means on {SAMPLE_ROWS} rows)",
                "herding": "herding (one pass per pick)"}[self.method]

    def algorithms(self) -> dict[str, str]:
        labels, counts = np.unique(self.label_ids, return_counts=True)
        return {str(int(label)): self.algorithm(int(n))
                for label, n in zip(labels, counts, strict=True)}

    def _pick(self, label: int, count: int, sub_seed: int, ranked: int) -> ClassSelection:
        params = self.params if self.method == "kmeans" else {}
        if self.method == "random":
            if count > STREAM_ABOVE_ROWS:
                return streamed_random(count, self.per_class, sub_seed, ranked)
            data = ClassData(np.empty((count, 0), dtype=np.float32))  # random reads the length
            return SELECTORS["random"].function(data, self.per_class, sub_seed, ranked=ranked)
        assert self.classes is not None, f"{self.method} reads the class's features"
        rows = self.classes[label]
        if rows.rows != count:
            raise RuntimeError(f"class {label}: {rows.rows} spilled rows, {count} in the pool")
        if count <= STREAM_ABOVE_ROWS:
            return SELECTORS[self.method].function(ClassData(rows.load()), self.per_class,
                                                   sub_seed, ranked=ranked, **params)
        if self.method == "herding":  # deterministic: the same ranking for every seed
            key = (label, ranked)
            if key not in self._memo:
                self._memo[key] = streamed_herding(rows, self.per_class, sub_seed, ranked)
            return self._memo[key]
        return _STREAMED[self.method](rows, self.per_class, sub_seed, ranked=ranked, **params)

    def select(self, seed: int) -> Selection:
        """One seed's selection; indices are pool rows, as the in-memory selection's are."""
        if self.method not in STREAMED_METHODS:
            raise ValueError(f"{self.method!r} does not stream; it runs in memory")
        if self.oversample < 1:
            raise ValueError(f"oversample must be 1 or more, got {self.oversample}")

        def pick(rows: np.ndarray, sub_seed: int, ranked: int) -> ClassSelection:
            label = int(self.label_ids[rows[0]])
            return self._pick(label, len(rows), sub_seed, ranked)

        return select_classes(self.method, self.label_ids, self.per_class, seed,
                              self.oversample, pick)
