"""GSM8K answers: the reference's final number (after `####`) and a generation's last number.

Numbers compare as numbers: thousands separators and a trailing `.0` do not
matter (`1,000` equals `1000.00`); a generation with no number never matches.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _as_number(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "").rstrip("."))
    except InvalidOperation:
        return None


def reference_number(answer: str) -> Decimal | None:
    """The number after the last `####` of a GSM8K reference answer (None if absent)."""
    if "####" not in answer:
        return None
    tail = answer.rsplit("####", 1)[1]
    found = _NUMBER.search(tail)
    return _as_number(found.group()) if found else None


def last_number(text: str) -> Decimal | None:
    """The last number written in `text`, or None."""
    found = _NUMBER.findall(text)
    return _as_number(found[-1]) if found else None


def is_exact_match(generated: str, reference: str) -> bool:
    """True when the generation's last number equals the reference's final number."""
    want, got = reference_number(reference), last_number(generated)
    return want is not None and got is not None and want == got
