"""Quality: rows too short, too long, or mostly not text.

Reasons: `too_short` (fewer than `min_words` words), `too_long` (more than
`max_words`), `mostly_non_text` (letters are less than `min_alpha_fraction`
of the non-space characters: markup, numbers, punctuation runs).
"""

from __future__ import annotations

from distill_core.filter.base import Drop, FilterInput


def quality_filter(data: FilterInput, min_words: int, max_words: int,
                   min_alpha_fraction: float) -> list[Drop]:
    drops = []
    for row, text in enumerate(data.texts()):
        words = len(text.split())
        visible = [c for c in text if not c.isspace()]
        alpha = sum(c.isalpha() for c in visible) / max(len(visible), 1)
        if words < min_words:
            drops.append(Drop(row, "too_short", f"{words} words < {min_words}"))
        elif words > max_words:
            drops.append(Drop(row, "too_long", f"{words} words > {max_words}"))
        elif alpha < min_alpha_fraction:
            drops.append(Drop(row, "mostly_non_text",
                              f"letters are {alpha:.0%} of characters < "
                              f"{min_alpha_fraction:.0%}"))
    return drops
