"""Prompts name the label and list the examples; parsing keeps new lines and says why others go."""

from __future__ import annotations

from distill_core.generate.prompts import few_shot_messages, parse_generation


def test_prompt_lists_examples_and_names_the_label() -> None:
    [message] = few_shot_messages("positive", ["a  gorgeous\nmovie", "superb acting"], 4)
    assert message["role"] == "user"
    assert "- a gorgeous movie\n- superb acting" in message["content"]
    assert 'Write 4 new and different sentences with the label "positive"' in message["content"]


def test_parsing_keeps_new_examples_and_gives_every_other_line_a_reason() -> None:
    answer = ("Sure! Here are some:\n- a warm, funny and generous film\n\n"
              "- superb acting\n- wow\n2. an exhilarating ride from start to finish\n"
              "- A warm, funny and generous   film\n- \"a quietly moving portrait\"\n")
    parsed = parse_generation(answer, ["superb acting"])
    assert parsed.kept == ["a warm, funny and generous film",
                           "an exhilarating ride from start to finish",
                           "a quietly moving portrait"]
    assert parsed.rejected == [("Sure! Here are some:", "wrong_format"),
                               ("- superb acting", "prompt_echo"), ("- wow", "too_short"),
                               ("- A warm, funny and generous   film", "repeated_generation")]
