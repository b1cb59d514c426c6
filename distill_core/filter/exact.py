"""Exact duplicates: the same normalised text (and pair) within a group; the first is kept."""

from __future__ import annotations

from distill_core.filter.base import Drop, FilterInput


def exact_dedup(data: FilterInput) -> list[Drop]:
    first: dict[tuple[object, str], str] = {}
    drops = []
    ids = data.ids()
    for row, (group, text) in enumerate(zip(data.groups.tolist(), data.normalized_texts(),
                                            strict=True)):
        key = (group, text)
        if key in first:
            drops.append(Drop(row, "exact_duplicate", f"same normalised text as {first[key]}"))
        else:
            first[key] = ids[row]
    return drops
