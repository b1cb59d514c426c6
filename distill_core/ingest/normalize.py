"""Text normalisation, the label rule and the stable `example_id`.

The same text and label get the same id in every run and on every machine, so
lineage can be joined across runs. Normalisation for the id (and for exact
dedup) is NFKC, case-folded, whitespace collapsed; the stored text keeps its
case and only loses surrounding whitespace.

Labels follow one rule (`label_key`): a value that reads as a number is that
number (`1`, `1.0`, ` 1 `, `"01"` and `1e0` are one label, named `1`); any
other value is its text with surrounding whitespace removed, case kept.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from decimal import Decimal
from typing import Any

ID_LENGTH = 16


def clean_text(text: str) -> str:
    """The text as stored: NFC-normalised, surrounding whitespace removed."""
    return unicodedata.normalize("NFC", text).strip()


def normalize_text(text: str) -> str:
    """The text as compared: NFKC, case-folded, internal whitespace collapsed.

    `" ".join(s.split())` is `re.sub(r"\\s+", " ", s).strip()`: both split at exactly the
    characters `str.isspace` names (tests/ingest/test_normalize.py checks every one), and
    the join is several times faster.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def example_id(text: str, label: str, text_pair: str | None = None) -> str:
    """Stable hex id of (normalised text, normalised pair text, label)."""
    payload = "\x1f".join(
        [normalize_text(text), normalize_text(text_pair) if text_pair is not None else "", label]
    )
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=ID_LENGTH // 2).hexdigest()


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER_MAX_CHARS = 100  # a longer run of digits is read as text, not parsed
_MISSING_LABELS = frozenset({"", "nan", "none", "null"})


def _number_name(number: Decimal) -> str:
    """The canonical spelling of a number: `1` for 1.0, `0.5` for 0.50, no exponent."""
    if number.is_zero():
        return "0"
    if abs(number.adjusted()) > 60:  # keep absurd magnitudes short
        return str(number.normalize())
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def label_key(value: Any) -> str | None:
    """The label a raw value stands for, as a string; None when the label is missing.

    Numbers are compared as numbers: 1, 1.0, '1', ' 1 ', '1.0', '01' and '1e0' are all the
    label '1' (and 0.5 and '0.50' are '0.5'). Any other value is its text with surrounding
    whitespace removed; case is kept ('Pos' and 'pos' differ). Booleans are 'true' and
    'false'. None, NaN and '', 'nan', 'none', 'null' (any case) mean no label.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return repr(value)
        return _number_name(Decimal(repr(value)))
    if isinstance(value, Decimal):
        if value.is_nan():
            return None
        return _number_name(value) if value.is_finite() else str(value).lower()
    text = str(value).strip()
    if text.lower() in _MISSING_LABELS:
        return None
    if len(text) <= _NUMBER_MAX_CHARS and _NUMBER.fullmatch(text):
        return _number_name(Decimal(text))
    return text


def canonical_label_map(label_map: dict[str, str], what: str = "label_map keys") -> dict[str, str]:
    """`label_map` keyed by `label_key` of its keys; ValueError when two keys are one label
    with different names (`what` names the keys in the message)."""
    canonical: dict[str, str] = {}
    written: dict[str, str] = {}
    for raw, name in label_map.items():
        key = label_key(raw)
        if key is None:
            raise ValueError(f"{what}: {raw!r} reads as a missing label")
        if key in canonical and canonical[key] != name:
            raise ValueError(
                f"{what} {written[key]!r} and {raw!r} are the same label ({key}) "
                f"but map to {canonical[key]!r} and {name!r}")
        canonical[key] = name
        written.setdefault(key, raw)
    return canonical
