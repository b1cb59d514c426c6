"""One split's raw records, a batch at a time, turned into corpus rows and rejects.

The checks and their order are those of the ingest rules (see `ingest.py`): per row, the
mapped values' scalar checks (text, then pair, then label: `not_a_scalar`, `too_long`,
`undecodable_bytes`), then empty text and pair, then the label (`missing_label`,
`unknown_label`), then the id (`duplicate_example` for a training row seen before, in this
batch or any earlier one). They run column by column over the batch, with a fast path when
a whole column passes a check, and each row ends with the first check it fails, as if the
rows were checked one by one; a batch's rejects are returned in row order.

Deduplication remembers 8 bytes per id (`SeenIds`), so a split of millions of rows costs
tens of megabytes, not gigabytes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distill_core.errors import ConfigError
from distill_core.ingest.normalize import canonical_label_map, clean_text, example_id, label_key
from distill_core.ingest.readers import _UNDECODABLE, RawRecord, short_repr
from distill_core.ingest.seen import NOT_SEEN, SeenIds
from distill_core.ingest.sources import FileSource, HubSource

_FILE_SHIFT = 40  # a seen id's tag: file index << 40 | row (rows below 2**40)
_LABEL_MEMO_MAX = 4096


@dataclass
class BatchOut:
    """A batch's corpus rows (as columns, no label ids yet) and its rejects, in row order."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    pairs: list[str | None] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)


class SplitBuilder:
    """Turns one split's raw records into corpus rows and rejects, batch by batch.

    `known_labels`: the dataset's label names when given (or, for the evaluation split,
    those found in training); a label outside them is `unknown_label`.
    """

    def __init__(self, split: str, columns: FileSource | HubSource, name: str,
                 known_labels: list[str] | None, max_chars: int) -> None:
        self.split = split
        self.columns = columns
        self.known_labels = set(known_labels) if known_labels is not None else None
        self.max_chars = max_chars
        label_map = columns.label_map
        try:
            if label_map is not None:
                self.label_map: dict[str, str] | None = canonical_label_map(label_map)
            elif known_labels is not None:
                # No map: the raw label is the name, so a given name matches by the label rule
                # (label_names ['1.0'] matches a label written 1) and is kept as written.
                self.label_map = canonical_label_map(
                    {n: n for n in known_labels if label_key(n) is not None}, "label_names")
            else:
                self.label_map = None
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
        self.seen = SeenIds()
        self.files: list[str] = []  # the source's files, by the index a batch gives
        self.rows_read = 0
        self.rows_out = 0
        self.rejects_by_reason: Counter[str] = Counter()
        self.labels_seen: set[str] = set()
        # The evaluation split keeps its repeated rows, counted here.
        self.keep_duplicates = split == "eval"
        self.duplicates_kept = 0
        self._label_memo: dict[tuple[type, Any], str | None] = {}

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejects_by_reason.values())

    # -- a file read before (ingest's per-file cache) -------------------------------------------

    def replay(self, ids: list[str], rows: list[int], labels: list[str], source: str,
               file_index: int) -> None:
        """Take in corpus rows this builder's settings made from the `file_index`-th file in
        an earlier run, as if they had just been made: their ids join the seen ids (first
        copy wins, tagged with its row, as `_dedup` does), their labels the labels seen.
        Counts come apart, once per file (`add_counts`)."""
        while len(self.files) <= file_index:
            self.files.append(source)
        self.files[file_index] = source
        if not ids:
            return
        keys = np.frombuffer(bytes.fromhex("".join(ids)), dtype=">u8").astype(np.uint64)
        tags = np.asarray(rows, dtype=np.int64) | (np.int64(file_index) << _FILE_SHIFT)
        earlier = self.seen.lookup(keys)
        _, first = np.unique(keys, return_index=True)
        new = np.zeros(len(keys), dtype=bool)
        new[first] = True
        new &= earlier == NOT_SEEN
        self.seen.add(keys[new], tags[new])
        self.labels_seen.update(labels)

    def file_counts(self) -> dict[str, Any]:
        """The counters so far, to diff around one file (`add_counts` takes the difference)."""
        return {"rows_read": self.rows_read, "rows_out": self.rows_out,
                "duplicates_kept": self.duplicates_kept,
                "rejects_by_reason": dict(self.rejects_by_reason)}

    def add_counts(self, counts: dict[str, Any]) -> None:
        """Add one replayed file's counts (a `file_counts` difference)."""
        self.rows_read += counts["rows_read"]
        self.rows_out += counts["rows_out"]
        self.duplicates_kept += counts["duplicates_kept"]
        self.rejects_by_reason.update(counts["rejects_by_reason"])

    # -- one batch ----------------------------------------------------------------------------

    def add_batch(self, records: list[RawRecord], source: str, file_index: int = 0) -> BatchOut:
        """The corpus rows and rejects of `records`: consecutive rows of the file `source`
        (the `file_index`-th file of the split's source)."""
        while len(self.files) <= file_index:
            self.files.append(source)
        self.files[file_index] = source
        out = BatchOut()
        rejected: list[tuple[RawRecord, str, str | None, str, str | None]] = []
        self.rows_read += len(records)
        good: list[RawRecord] = []
        for record in records:
            if record.problem is None:
                good.append(record)
            else:
                rejected.append((record, *record.problem, None))
        cols = self.columns
        alive = list(range(len(good)))
        values: dict[str, list[Any]] = {}
        for column in (cols.text, cols.text_pair, cols.label):
            if column is not None:
                values[column] = [r.values.get(column) for r in good]
                alive = self._scalars(good, values[column], column, alive, rejected)
        alive, texts = self._texts(good, values[cols.text], cols.text, alive, rejected)
        pairs: list[str | None] | None = None
        if cols.text_pair is not None:
            alive, pairs = self._texts(good, values[cols.text_pair], cols.text_pair, alive,
                                       rejected)
        alive, labels = self._labels(good, values[cols.label], alive, rejected)
        self._dedup(good, alive, texts, pairs, labels, source, file_index, out, rejected)
        if rejected:
            rejected.sort(key=lambda item: item[0].row)  # rows are unique within a file
            for record, reason, column, detail, identifier in rejected:
                self.rejects_by_reason[reason] += 1
                out.rejects.append({
                    "example_id": identifier, "split": self.split, "source": source,
                    "source_row": record.row, "field": column, "reason": reason,
                    "detail": detail, "raw": record.raw})
        self.rows_out += len(out.ids)
        return out

    def _scalars(self, good: list[RawRecord], column_values: list[Any], column: str,
                 alive: list[int], rejected: list) -> list[int]:
        """Rows whose `column` holds one text or label value of at most `max_chars`
        characters, all UTF-8; a Parquet binary value is decoded in place."""
        limit = self.max_chars
        if not alive:
            return alive
        batch = column_values if len(alive) == len(column_values) else [
            column_values[i] for i in alive]
        if (set(map(type, batch)) == {str} and max(map(len, batch)) <= limit
                and not any(_UNDECODABLE.search(v) for v in batch if not v.isascii())):
            return alive  # the whole column passes: the common case (isascii is O(1))
        kept = []
        for i in alive:
            value = column_values[i]
            if isinstance(value, bytes | bytearray):  # a Parquet binary column
                value = column_values[i] = bytes(value).decode("utf-8", "surrogateescape")
            if isinstance(value, dict | list | tuple | set):
                kind = "an object" if isinstance(value, dict) else "a list"
                rejected.append((good[i], "not_a_scalar", column,
                                 f"{kind} where a single text or label value is expected",
                                 None))
            elif isinstance(value, str) and len(value) > limit:
                rejected.append((good[i], "too_long", column,
                                 f"{len(value):,} characters, more than max_chars "
                                 f"({limit:,})", None))
            elif isinstance(value, str) and _UNDECODABLE.search(value) is not None:
                rejected.append((good[i], "undecodable_bytes", column,
                                 "bytes that are not UTF-8 (set `encoding:` on the source if "
                                 "the file is in another encoding)", None))
            else:
                kept.append(i)
        return kept

    @staticmethod
    def _texts(good: list[RawRecord], column_values: list[Any], column: str, alive: list[int],
               rejected: list) -> tuple[list[int], list[str | None]]:
        """Rows whose `column` holds a non-empty text, and the stored (cleaned) texts by
        position."""
        cleaned: list[str | None] = [None] * len(good)
        kept = []
        for i in alive:
            value = column_values[i]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                rejected.append((good[i], "empty_text", column, "no value", None))
                continue
            text = clean_text(value if type(value) is str else str(value))
            if not text:
                rejected.append((good[i], "empty_text", column,
                                 "empty after stripping whitespace", None))
                continue
            cleaned[i] = text
            kept.append(i)
        return kept, cleaned

    def _label_key(self, value: Any) -> str | None:
        memo_key = (type(value), value)  # True == 1, but they are the labels 'true' and '1'
        try:
            return self._label_memo[memo_key]
        except KeyError:
            key = label_key(value)
            if len(self._label_memo) < _LABEL_MEMO_MAX:
                self._label_memo[memo_key] = key
            return key
        except TypeError:  # not hashable (a Decimal NaN is, a list never gets here)
            return label_key(value)

    def _labels(self, good: list[RawRecord], column_values: list[Any], alive: list[int],
                rejected: list) -> tuple[list[int], list[str | None]]:
        column = self.columns.label
        label_map, raw_map = self.label_map, self.columns.label_map
        known = self.known_labels
        labels: list[str | None] = [None] * len(good)
        kept = []
        for i in alive:
            key = self._label_key(column_values[i])
            if key is None:
                rejected.append((good[i], "missing_label", column, "no label value", None))
                continue
            if raw_map is not None:
                assert label_map is not None
                if key not in label_map:
                    rejected.append((good[i], "unknown_label", column,
                                     f"label {short_repr(key)} not in label_map "
                                     f"{sorted(raw_map)}", None))
                    continue
                label = label_map[key]
            else:
                label = label_map.get(key, key) if label_map is not None else key
            if known is not None and label not in known:
                rejected.append((good[i], "unknown_label", column,
                                 f"label {short_repr(label)} not among {sorted(known)}", None))
                continue
            labels[i] = label
            kept.append(i)
        return kept, labels

    def _dedup(self, good: list[RawRecord], alive: list[int], texts: list, pairs: list | None,
               labels: list, source: str, file_index: int, out: BatchOut,
               rejected: list) -> None:
        """Keep each row whose id is new (or every row, for the evaluation split), reject a
        training row that repeats one seen in this batch or an earlier one."""
        if not alive:
            return
        if pairs is None:
            ids = [example_id(texts[i], labels[i]) for i in alive]
        else:
            ids = [example_id(texts[i], labels[i], pairs[i]) for i in alive]
        keys = np.frombuffer(bytes.fromhex("".join(ids)), dtype=">u8").astype(np.uint64)
        rows = np.fromiter((good[i].row for i in alive), dtype=np.int64, count=len(alive))
        tags = rows | (np.int64(file_index) << _FILE_SHIFT)
        earlier = self.seen.lookup(keys)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        first_here = first[inverse.ravel()]
        position = np.arange(len(keys))
        repeat = (earlier != NOT_SEEN) | (first_here != position)
        new = ~repeat
        self.seen.add(keys[new], tags[new])
        if repeat.any():
            first_tag = np.where(earlier != NOT_SEEN, earlier, tags[first_here])
            if self.keep_duplicates:
                self.duplicates_kept += int(repeat.sum())
            else:
                for at in np.flatnonzero(repeat).tolist():
                    rejected.append((good[alive[at]], "duplicate_example", self.columns.text,
                                     "same normalised text and label as "
                                     f"{self._where(int(first_tag[at]), file_index)}", ids[at]))
                keep = new.tolist()
                alive = [i for i, k in zip(alive, keep, strict=True) if k]
                ids = [identifier for identifier, k in zip(ids, keep, strict=True) if k]
        out.ids = ids
        out.texts = [texts[i] for i in alive]
        out.pairs = [pairs[i] for i in alive] if pairs is not None else [None] * len(alive)
        out.labels = [labels[i] for i in alive]
        out.rows = [good[i].row for i in alive]
        self.labels_seen.update(out.labels)

    def _where(self, tag: int, file_index: int) -> str:
        """'row N', or 'row N of FILE' when the first copy is in another file of the source."""
        row, index = tag & ((1 << _FILE_SHIFT) - 1), tag >> _FILE_SHIFT
        return f"row {row}" if index == file_index else f"row {row} of {self.files[index]}"
