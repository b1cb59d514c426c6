"""Exact dedup's compact memory of the texts seen (`SeenTexts`: sorted digests and first
ids) drops exactly the rows, with the same details, as a dict of digest to first id row by
row, on real SST-2 sentences with planted duplicates: in one call, and across batches of
a streamed run (a repeat of an earlier batch's text names that batch's row)."""

from __future__ import annotations

from hashlib import blake2b
from pathlib import Path

import numpy as np
import pyarrow as pa

from distill_core.filter.base import FilterInput
from distill_core.filter.exact import SeenTexts, exact_dedup


def _rows(slice_dir: Path) -> FilterInput:
    lines = (slice_dir / "sst2_glue" / "train.tsv").read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t")[0] for line in lines[1:201]]
    rng = np.random.default_rng(0)
    # repeats of earlier rows, some re-cased or re-spaced (the same normalised text), and
    # two groups (the same text in another group is not a duplicate)
    for source in rng.choice(200, size=60, replace=True).tolist():
        text = texts[source]
        texts.append(text.upper() if source % 3 == 0 else f"  {text} " if source % 3 == 1
                     else text)
    order = rng.permutation(len(texts))
    texts = [texts[i] for i in order]
    n = len(texts)
    table = pa.table({"example_id": [f"{i:016x}" for i in range(n)], "text": texts,
                      "text_pair": pa.nulls(n, pa.string()), "label": ["pos"] * n,
                      "label_id": pa.array([1] * n, pa.int32())})
    groups = (np.arange(n) % 7 == 0).astype(np.int64)
    return FilterInput(table=table, groups=groups, vectors=None)


def _reference(data: FilterInput, seen: dict[bytes, str]) -> list[tuple[int, str, str]]:
    """The dict it replaced, row by row."""
    out = []
    for row, (group, text, eid) in enumerate(zip(data.groups.tolist(), data.normalized_texts(),
                                                 data.ids(), strict=True)):
        key = blake2b(f"{group}\x1f{text}".encode(), digest_size=16).digest()
        if key in seen:
            out.append((row, "exact_duplicate", f"same normalised text as {seen[key]}"))
        else:
            seen[key] = eid
    return out


def _as_tuples(drops) -> list[tuple[int, str, str]]:
    return [(d.row, d.reason, d.detail) for d in drops]


def test_exact_dedup_drops_what_a_dict_of_first_ids_drops(slice_dir: Path) -> None:
    data = _rows(slice_dir)
    whole = _as_tuples(exact_dedup(data))
    assert whole == _reference(data, {})
    assert 30 < len(whole) < 60  # the planted repeats, less those put in the other group
    # batch by batch, one SeenTexts carried: the same drops as the dict carried
    seen, carried, cuts = SeenTexts(), {}, [0, 1, 37, 38, 120, 200, len(data)]
    for start, stop in zip(cuts, cuts[1:], strict=False):
        part = data.take(np.arange(start, stop))
        assert _as_tuples(exact_dedup(part, seen)) == _reference(part, carried)
        assert len(seen) == len(carried)


def test_seen_ids_are_kept_whole_whatever_their_length() -> None:
    """An id longer than those seen before is stored whole (the arrays widen), and one
    outside ASCII comes back as written."""
    def rows(ids: list[str], texts: list[str]) -> FilterInput:
        table = pa.table({"example_id": ids, "text": texts,
                          "text_pair": pa.nulls(len(ids), pa.string()),
                          "label": ["pos"] * len(ids),
                          "label_id": pa.array([1] * len(ids), pa.int32())})
        return FilterInput(table=table, groups=np.zeros(len(ids), np.int64), vectors=None)

    seen = SeenTexts()
    assert exact_dedup(rows(["a"], ["one film"]), seen) == []
    assert exact_dedup(rows(["b" * 40, "é-7"], ["two films", "three films"]), seen) == []
    drops = exact_dedup(rows(["c", "d", "e"], ["Two  films", "one FILM", "three films"]), seen)
    assert [(d.row, d.detail) for d in drops] == [
        (0, "same normalised text as " + "b" * 40), (1, "same normalised text as a"),
        (2, "same normalised text as é-7")]


def test_texts_sharing_a_digest_half_are_told_apart() -> None:
    """Digests whose first 8 bytes agree (sorted next to one another in a run) are found by
    their second half, in one run and across runs."""
    def key(first: int, second: int) -> bytes:
        return first.to_bytes(8, "little") + second.to_bytes(8, "little")

    def keys(*pairs: tuple[int, int]) -> np.ndarray:
        return np.frombuffer(b"".join(key(a, b) for a, b in pairs), dtype="V16")

    seen = SeenTexts()
    seen.add(keys((5, 1), (5, 3), (9, 0), (5, 2)), ["a", "b", "c", "d"])
    seen.add(keys((5, 7)), ["e"])  # a second run holding the same first half
    found, first = seen.find(keys((5, 2), (5, 4), (5, 7), (9, 0), (1, 1), (5, 1)))
    assert found.tolist() == [True, False, True, True, False, True]
    assert first.tolist() == [b"d", b"", b"e", b"c", b"", b"a"]
    assert len(seen) == 5
