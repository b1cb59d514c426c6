"""Small synthetic inputs the selection tests share: one class's features with teacher
signals, a two-class training table; and a finished run's features by row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from distill_core.synthesize.base import ClassData


def run_rows(store, signals_store):  # noqa: ANN001, ANN201
    """(rows, distilled x, y, evaluation x, y) of a finished run: `rows(table)` gives the
    features and label ids of any of its tables' rows, from `signals_store`'s signals."""
    import pyarrow.compute as pc

    from distill_core.signals.embeddings import features

    signals = signals_store.read("signals")
    position = {e: i for i, e in enumerate(signals.column("example_id").to_pylist())}
    matrix = features(signals)

    def rows(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        return (matrix[[position[e] for e in table.column("example_id").to_pylist()]],
                table.column("label_id").to_numpy())

    corpus = store.read("ingest")
    return (rows, *rows(store.read("filter")),
            *rows(corpus.filter(pc.equal(corpus.column("split"), "eval"))))


def class_data(seed: int = 0, n: int = 60, dim: int = 8, classes: int = 3) -> ClassData:
    """Unit-norm features with Dirichlet teacher probabilities (every row of class 0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    p = rng.dirichlet(np.ones(classes), size=n)
    grad = p - np.eye(classes)[np.zeros(n, dtype=int)]
    return ClassData(x.astype(np.float32), grad.astype(np.float32),
                     np.linalg.norm(grad, axis=1).astype(np.float32))


def two_class_train(n: int, first_class_rows: int) -> pa.Table:
    """`n` training rows: the first `first_class_rows` labelled a (0), the rest b (1)."""
    labels = [0 if i < first_class_rows else 1 for i in range(n)]
    return pa.table({
        "example_id": [f"id{i}" for i in range(n)], "split": ["train"] * n,
        "text": [f"text {i}" for i in range(n)], "text_pair": pa.nulls(n, pa.string()),
        "label": ["ab"[label] for label in labels],
        "label_id": pa.array(labels, pa.int32()),
    })
