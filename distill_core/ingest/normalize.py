"""Text normalisation and the stable `example_id`.

The same text and label get the same id in every run and on every machine, so
lineage can be joined across runs. Normalisation for the id (and for exact
dedup) is NFKC, case-folded, whitespace collapsed; the stored text keeps its
case and only loses surrounding whitespace.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")
ID_LENGTH = 16


def clean_text(text: str) -> str:
    """The text as stored: NFC-normalised, surrounding whitespace removed."""
    return unicodedata.normalize("NFC", text).strip()


def normalize_text(text: str) -> str:
    """The text as compared: NFKC, case-folded, internal whitespace collapsed."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def example_id(text: str, label: str, text_pair: str | None = None) -> str:
    """Stable hex id of (normalised text, normalised pair text, label)."""
    payload = "\x1f".join(
        [normalize_text(text), normalize_text(text_pair) if text_pair is not None else "", label]
    )
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=ID_LENGTH // 2).hexdigest()
