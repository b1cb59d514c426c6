"""Teacher consistency: the teacher must give the intended label probability ≥ τ.

Catches selected or generated rows whose label the teacher disputes (noisy
labels, off-label generations). Reason: `teacher_inconsistent`.
"""

from __future__ import annotations

from distill_core.filter.base import Drop, FilterInput


def teacher_consistency(data: FilterInput, tau: float) -> list[Drop]:
    if data.label_prob is None:
        raise ValueError("teacher consistency needs teacher signals")
    return [Drop(row, "teacher_inconsistent", f"teacher p(label) = {p:.3f} < {tau}", "label")
            for row, p in enumerate(data.label_prob.tolist()) if p < tau]
