"""Teacher signals and the soft-label probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from distill_core.evaluate.soft_probe import fit_soft_probe
from distill_core.signals.teacher import classifier_gradients, fit_teacher, teacher_signals


def _three_classes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(3, 5))
    y = np.repeat([0, 1, 2], 40)
    return centres[y] + rng.normal(size=(120, 5)), y


@pytest.mark.parametrize("classes", [2, 3])
def test_soft_labels_sum_to_one_and_gradients_are_p_minus_y(classes: int) -> None:
    x, y = _three_classes()
    mask = y < classes
    model = fit_teacher(x[mask], y[mask])
    signals = teacher_signals(model, x[mask], y[mask], classes)
    assert np.allclose(signals.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(signals.probabilities, model.predict_proba(x[mask]), atol=1e-5)
    onehot = np.eye(classes)[y[mask]]
    assert np.allclose(signals.grad_logits, signals.probabilities - onehot, atol=1e-6)
    assert np.allclose(signals.el2n, np.linalg.norm(signals.grad_logits, axis=1), atol=1e-6)
    picked = signals.probabilities[np.arange(mask.sum()), y[mask]]
    assert np.allclose(signals.loss, -np.log(picked), atol=1e-4)


def test_classifier_gradients_equal_autograd() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 4)), np.array([0, 2, 1, 0, 2, 1])
    w = torch.tensor(rng.normal(size=(3, 4)), requires_grad=True)
    logits = torch.as_tensor(x) @ w.T
    expected = []
    for i in range(6):
        (grad,) = torch.autograd.grad(
            torch.nn.functional.cross_entropy(logits[i:i + 1], torch.tensor([y[i]])), w,
            retain_graph=True)
        expected.append(grad.numpy().ravel())
    p = torch.softmax(logits, dim=1).detach().numpy()
    got = classifier_gradients(p - np.eye(3)[y], x)
    assert np.allclose(got, np.stack(expected), atol=1e-10)


def test_soft_probe_with_one_hot_targets_matches_the_hard_probe() -> None:
    x, y = _three_classes(2)
    weight, bias = fit_soft_probe(x, np.eye(3)[y], C=1.0)
    reference = LogisticRegression(C=1.0, max_iter=5000, tol=1e-8).fit(x, y)
    assert np.allclose(weight, reference.coef_, atol=1e-4)
    assert np.allclose(bias, reference.intercept_, atol=1e-4)


def test_soft_targets_move_the_decision() -> None:
    x = np.array([[-1.0], [1.0]])
    hard_w, hard_b = fit_soft_probe(x, np.array([[1.0, 0.0], [0.0, 1.0]]), C=10.0)
    soft_w, soft_b = fit_soft_probe(x, np.array([[0.6, 0.4], [0.4, 0.6]]), C=10.0)
    margin = lambda w, b: float((w[1] - w[0]) @ [1.0] + b[1] - b[0])  # noqa: E731
    assert 0 < margin(soft_w, soft_b) < margin(hard_w, hard_b)
