"""The probe fitted in its rows' span is scikit-learn's `LogisticRegression` model: on real
MiniLM features of SST-2 (two classes) and SST-5 (five), on more rows than dimensions, and on
repeated rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from distill_core.ingest import ingest_dataset, resolve_dataset
from distill_core.signals.teacher import class_logits
from distill_core.synthesize.row_space_probe import fit_row_space_probe
from tests.synthesize.test_bilevel import _blobs


@pytest.fixture(scope="module")
def real_rows(slice_dir: Path, encoder) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Training rows of SST-2 and SST-5, embedded by MiniLM."""
    out = {}
    for name in ("sst2", "sst5_kim"):
        corpus = ingest_dataset(resolve_dataset(name), slice_dir).corpus
        train = corpus.filter(pc.equal(corpus.column("split"), "train"))
        out[name] = (encoder.encode(train.column("text").to_pylist(), 64).astype(np.float32),
                     train.column("label_id").to_numpy().astype(np.int64))
    return out


def _sklearn(x: np.ndarray, y: np.ndarray, c: float = 1.0,  # noqa: ANN202
             sample_weight: np.ndarray | None = None):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000).fit(x, y, sample_weight=sample_weight)


def _agree(x: np.ndarray, y: np.ndarray, rows: np.ndarray, classes: int, c: float = 1.0,
           sample_weight: np.ndarray | None = None) -> tuple[float, float]:
    """(largest logit difference, share of equal predictions) over every row of x."""
    ours = class_logits(fit_row_space_probe(x[rows], y[rows], c, sample_weight=sample_weight),
                        x, classes)
    theirs = class_logits(_sklearn(x[rows], y[rows], c, sample_weight), x, classes)
    return float(np.abs(ours - theirs).max()), float((ours.argmax(1) == theirs.argmax(1)).mean())


@pytest.mark.parametrize("name, per_class", [("sst2", 5), ("sst2", 10), ("sst5_kim", 3)])
def test_real_features_give_scikit_learns_model(real_rows, name: str, per_class: int) -> None:
    x, y = real_rows[name]
    classes = int(y.max()) + 1
    rng = np.random.default_rng(per_class)
    for _ in range(5):
        rows = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                               for c in np.unique(y) if (y == c).sum() >= per_class])
        gap, same = _agree(x, y, rows, classes)
        assert gap < 0.02 and same >= 0.99, (gap, same)
    # at a weaker penalty the logits are larger: still the same model
    gap, same = _agree(x, y, rows, classes, c=10.0)
    assert gap < 0.1 and same >= 0.99, (gap, same)
    # with sample weights (their sum is not the row count): scikit-learn's weighted model
    weights = rng.uniform(0.1, 4.0, len(rows))
    gap, same = _agree(x, y, rows, classes, sample_weight=weights)
    assert gap < 0.02 and same >= 0.99, (gap, same)
    unweighted, _ = _agree(x, y, rows, classes)
    moved = np.abs(class_logits(fit_row_space_probe(x[rows], y[rows], sample_weight=weights),
                                x, classes)
                   - class_logits(fit_row_space_probe(x[rows], y[rows]), x, classes)).max()
    assert moved > 0.05  # the weights change the model: the check above is not vacuous


def test_more_rows_than_dimensions_and_repeated_rows() -> None:
    data, y = _blobs(5, per_class=20, dim=6)  # 60 rows of 6 dimensions
    x = data.features
    gap, same = _agree(x, y, np.arange(len(y)), 3)
    assert gap < 0.02 and same == 1.0
    repeated = np.array([0, 0, 0, 1, 20, 20, 21, 40, 41, 41])  # a rank-deficient set
    gap, same = _agree(x, y, repeated, 3)
    assert gap < 0.02 and same == 1.0


def test_labels_present_define_the_model_and_one_class_is_refused() -> None:
    data, y = _blobs(6, per_class=10)
    x = data.features
    rows = np.array([0, 1, 2, 20, 21, 22])  # classes 0 and 2 only: a binary probe over them
    model = fit_row_space_probe(x[rows], y[rows])
    assert model.classes_.tolist() == [0, 2] and model.coef_.shape == (1, x.shape[1])
    logits = class_logits(model, x, 3)
    assert (logits[:, 1] < -1e3).all()  # the absent class is never predicted
    theirs = class_logits(_sklearn(x[rows], y[rows]), x, 3)
    assert np.abs(logits - theirs).max() < 0.02
    with pytest.raises(ValueError, match="two classes"):
        fit_row_space_probe(x[:5], y[:5])
