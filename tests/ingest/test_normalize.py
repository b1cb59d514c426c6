"""The example id is stable across runs, versions and machines, and means text + label."""

from distill_core.ingest.normalize import clean_text, example_id, normalize_text


def test_example_id_is_a_fixed_function_of_content() -> None:
    # A constant: if this changes, every stored lineage breaks. Change it only on purpose.
    assert example_id("a fine film", "positive") == "05589fb392521d74"


def test_id_ignores_case_and_spacing_but_not_label_or_pair() -> None:
    base = example_id("A  fine film ", "positive")
    assert base == example_id("a fine film", "positive")
    assert base != example_id("a fine film", "negative")
    assert base != example_id("a fine film", "positive", "a pair")


def test_clean_and_normalize() -> None:
    assert clean_text("  caf\u0065\u0301 \n") == "caf\u00e9"
    assert normalize_text("The\tFILM\u00a0is  OK") == "the film is ok"


def test_whitespace_collapse_matches_the_regex_rule_at_every_space_character() -> None:
    # normalize_text splits with str.split(); ids were made with re.sub(r"\s+", " ").strip().
    import re
    import sys
    import unicodedata

    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert spaces == [chr(c) for c in range(sys.maxunicode + 1) if re.fullmatch(r"\s", chr(c))]
    for space in spaces:
        text = f"{space}A{space}{space}b\u00a0c{space}"
        expected = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()
        assert normalize_text(text) == expected, hex(ord(space))
