"""Typed row counts of a stage: in, out, rejected by reason, plus stage-specific tallies.

Every stage reports one `Counts`; the invariant rows in = out + rejected is
checked when it is built from the rejects, and the manifest stores it as the
plain mapping readers (audit, report, Prefect artifacts) already know.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Counts:
    rows_in: int
    rows_out: int
    rejects_by_reason: Mapping[str, int] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rows_rejected(self) -> int:
        return int(sum(self.rejects_by_reason.values()))

    @classmethod
    def of(cls, rows_in: int, rows_out: int, reasons: Iterable[str] = (),
           **extra: Any) -> Counts:
        """Counts from the reasons of every rejected row (one reason per row)."""
        return cls(int(rows_in), int(rows_out), dict(Counter(reasons)), extra)

    @classmethod
    def one_to_one(cls, rows: int, **extra: Any) -> Counts:
        """A stage that keeps every row it reads (signals, teacher, evaluate)."""
        return cls(int(rows), int(rows), {}, extra)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        known = {"rows_in", "rows_out", "rows_rejected", "rejects_by_reason"}
        return cls(int(data["rows_in"]), int(data["rows_out"]),
                   dict(data.get("rejects_by_reason") or {}),
                   {k: v for k, v in data.items() if k not in known})

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_out + self.rows_rejected

    def to_dict(self) -> dict[str, Any]:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out,
                "rows_rejected": self.rows_rejected,
                "rejects_by_reason": dict(self.rejects_by_reason), **dict(self.extra)}
