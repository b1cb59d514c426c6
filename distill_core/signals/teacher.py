"""Teacher signals: a classifier's view of every training example, computed once per corpus.

The teacher is multinomial logistic regression on the frozen embeddings (the
linear probe, trained on the whole training split). Per example it gives:

- `logits` and `soft_label` (softmax of logits / temperature): what the soft-label
  learners are distilled towards;
- `loss` (cross-entropy to the gold label) and `el2n` (|p - onehot(y)|_2, Paul et
  al. 2021): difficulty scores;
- `grad_logits` = p - onehot(y): the gradient of the loss with respect to the
  logits. The gradient with respect to the classifier layer's weights is its
  outer product with the example's features, `grad_W = grad_logits ⊗ x` (and
  `grad_b = grad_logits`); `classifier_gradients` materialises it. Storing the
  factor instead of the C·d product keeps the artifact small and lets gradient
  matching work with inner products `<g_i, g_j> = (a_i·a_j)(x_i·x_j)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow as pa

from distill_core.signals.embeddings import vectors_array

if TYPE_CHECKING:  # sklearn is imported when a teacher is fit, not by a cached rerun
    from sklearn.linear_model import LogisticRegression


@dataclass
class TeacherSignals:
    logits: np.ndarray        # [n, C]
    probabilities: np.ndarray  # [n, C] at temperature 1
    grad_logits: np.ndarray   # [n, C]
    loss: np.ndarray          # [n]
    el2n: np.ndarray          # [n]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LinearScores(Protocol):
    """What `class_logits` reads of a fitted linear classifier: scikit-learn's
    `LogisticRegression`, or `synthesize/row_space_probe.py`'s `RowSpaceProbe`."""

    coef_: np.ndarray
    intercept_: np.ndarray
    classes_: np.ndarray


def class_logits(model: LinearScores, features: np.ndarray, n_classes: int) -> np.ndarray:
    """Logits over all `n_classes`, whichever classes the model saw (binary: [0, z]).
    `decision_function`'s own arithmetic without its input checks (bilevel's probe in the
    loop calls this thousands of times)."""
    scores = features @ model.coef_.T + model.intercept_
    if scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim == 1:
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    logits = np.full((len(features), n_classes), -1e4, dtype=np.float64)
    logits[:, model.classes_] = scores
    return logits


def fit_teacher(features: np.ndarray, labels: np.ndarray, C: float = 1.0,  # noqa: N803
                max_iter: int = 2000) -> LogisticRegression:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter).fit(features, labels)


def teacher_signals(model: LogisticRegression, features: np.ndarray, labels: np.ndarray,
                    n_classes: int) -> TeacherSignals:
    return signals_from_logits(class_logits(model, features, n_classes), labels)


def signals_from_logits(logits: np.ndarray, labels: np.ndarray) -> TeacherSignals:
    """Soft labels, loss, EL2N and the logit gradient from any teacher's logits."""
    logits = logits.astype(np.float64)
    n_classes = logits.shape[1]
    probabilities = softmax(logits)
    onehot = np.eye(n_classes)[labels]
    grad = probabilities - onehot
    loss = -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None))
    return TeacherSignals(logits=logits.astype(np.float32),
                          probabilities=probabilities.astype(np.float32),
                          grad_logits=grad.astype(np.float32), loss=loss.astype(np.float32),
                          el2n=np.linalg.norm(grad, axis=1).astype(np.float32))


def classifier_gradients(grad_logits: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Per-example gradient of the loss w.r.t. the classifier weights, flattened [n, C*d]."""
    return np.einsum("nc,nd->ncd", grad_logits, features).reshape(len(features), -1)


def teacher_table(example_ids: pa.Array, splits: pa.Array, signals: TeacherSignals,
                  features: np.ndarray | None = None) -> pa.Table:
    """The teacher artifact; `features` (the head's input) only for a fine-tuned teacher."""
    columns = {
        "example_id": example_ids, "split": splits,
        "logits": vectors_array(signals.logits), "soft_label": vectors_array(signals.probabilities),
        "grad_logits": vectors_array(signals.grad_logits),
        "loss": pa.array(signals.loss, pa.float32()), "el2n": pa.array(signals.el2n, pa.float32()),
    }
    if features is not None:
        columns["features"] = vectors_array(features)
    return pa.table(columns)
