"""Exact duplicates: the same normalised text (and pair) within a group; the first is kept.

Texts are keyed by a 16-byte BLAKE2b digest of (group, normalised text), so a streamed run
can carry what it has seen from batch to batch (`seen`) in about 180 bytes a distinct row
rather than the texts themselves."""

from __future__ import annotations

from hashlib import blake2b

from distill_core.filter.base import Drop, FilterInput


def exact_dedup(data: FilterInput, seen: dict[bytes, str] | None = None) -> list[Drop]:
    """Rows whose normalised text an earlier row (of this input, or of earlier batches held in
    `seen`: digest -> first example_id, updated in place) of the same group has."""
    first: dict[bytes, str] = {} if seen is None else seen
    drops = []
    ids = data.ids()
    for row, (group, text) in enumerate(zip(data.groups.tolist(), data.normalized_texts(),
                                            strict=True)):
        key = blake2b(f"{group}\x1f{text}".encode(), digest_size=16).digest()
        if key in first:
            drops.append(Drop(row, "exact_duplicate", f"same normalised text as {first[key]}"))
        else:
            first[key] = ids[row]
    return drops
