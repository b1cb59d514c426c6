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


def test_a_reworded_copy_of_a_prompt_example_is_an_echo() -> None:
    parsed = parse_generation("- A dull, lifeless mess\n- a dull and lifeless film",
                              ["a dull , lifeless mess ."])
    assert parsed.kept == ["a dull and lifeless film"]
    assert parsed.rejected == [("- A dull, lifeless mess", "prompt_echo")]


def _answers(texts: list[str], new_tokens: list[int]):
    import pyarrow as pa

    from distill_core.generate.shards import GENERATION_SCHEMA

    pairs = enumerate(zip(texts, new_tokens, strict=True))
    return pa.Table.from_pylist([
        {"shard": 0, "prompt_id": f"p{i}", "sample": 0, "seed": i, "text": t,
         "new_tokens": n, "worker": "w"} for i, (t, n) in pairs], schema=GENERATION_SCHEMA)


def test_lines_cut_by_the_token_limit_are_truncated_and_every_line_is_counted() -> None:
    from distill_core.config import GenerateSection
    from distill_core.generate.candidates import answer_lines, list_answer_parser, sample_parser
    from distill_core.generate.plan import PromptInfo, PromptPlan

    plan = PromptPlan()
    for i in range(3):
        plan.add(f"p{i}", "prompt", PromptInfo(0, i % 2, i, [f"real{i}"], ["shown example"]))
    settings = GenerateSection(max_new_tokens=20)
    # p0 ran out of tokens mid-line, p1 ended by itself, p2 wrote nothing (the "- " was given).
    answers = _answers(["a warm and funny film\n- a sharp, moving and", "a bleak and tedious "
                        "slog\n- a bleak and tedious slog", ""], [20, 12, 0])
    rows, rejects = answer_lines(answers, plan, "llm_synth", ["negative", "positive"], settings,
                                 list_answer_parser(settings), multi_line=True)
    assert [(r["prompt_id"], r["text"], r["label"]) for r in rows] == [
        ("p0", "a warm and funny film", "negative"),
        ("p1", "a bleak and tedious slog", "positive")]
    assert [(r["detail"], r["reason"], r["raw"]) for r in rejects] == [
        ("p0 sample 0", "truncated", "- a sharp, moving and"),
        ("p1 sample 0", "repeated_generation", "- a bleak and tedious slog"),
        ("p2 sample 0", "empty_text", "-")]
    assert rows[0]["parent_ids"] == ["real0"]
    # dilm: one sentence per sample; a sample that hit the limit without a line break is cut.
    dilm_rows, dilm_rejects = answer_lines(
        _answers([" a quietly moving portrait\nlabel: x", " and then the and then the"], [9, 20]),
        plan, "dilm", ["negative", "positive"], settings, sample_parser(settings),
        multi_line=False)
    assert [r["text"] for r in dilm_rows] == ["a quietly moving portrait"]
    assert [r["reason"] for r in dilm_rejects] == ["truncated"]


def test_the_answer_reads_as_a_list_whether_or_not_the_model_began_with_a_space() -> None:
    from distill_core.generate.prompts import ANSWER_PREFIX, answer_list

    assert ANSWER_PREFIX == "-"  # the prompt ends on the dash: no lone space token
    assert answer_list(" a warm film\n- a cold one") == "- a warm film\n- a cold one"
    assert answer_list("a warm film") == "- a warm film"
    assert parse_generation(answer_list(""), []).rejected == [("-", "empty_text")]


def test_lines_about_the_task_are_meta_text_and_numbering_is_stripped() -> None:
    answer = ("- 1- a film that never finds its footing\n"
              "- This is a new example of a negative word: \"alright\"\n"
              "- 2. a heavy stench and 3. a negative\n"
              "- The Artful Acting: this sentence ends with \"and\"")
    parsed = parse_generation(answer, [], label_names=["negative", "positive"])
    assert parsed.kept == ["a film that never finds its footing"]
    assert [reason for _, reason in parsed.rejected] == ["meta_text"] * 3
