"""The CLI's views: benchmark tables from summary.json, the reuse line, unwrapped output
when stdout is no terminal."""

from __future__ import annotations

import io

from rich.console import Console

from flows.cli_views import CliConsole, StageLog, bench_tables, reuse_summary


def _entry(method: str, per_class: int | None, mean: float, std: float = 0.01,
           labels: str = "hard", n_train: int = 0) -> dict:
    return {"dataset": "sst2", "learner": "linear_probe", "labels": labels, "method": method,
            "per_class": per_class, "accuracy_mean": mean, "accuracy_std": std, "n": 3,
            "n_train": n_train}


SUMMARY = [_entry("random", 5, 0.612), _entry("random", 10, 0.638),
           _entry("kmeans", 5, 0.704), _entry("kmeans", 10, 0.734),
           _entry("kmeans", 5, 0.70, labels="soft"),
           _entry("full", None, 0.811, n_train=67349)]


def _render(table) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(table)
    return out.getvalue()


def test_bench_tables_are_one_rich_table_per_panel_with_best_in_bold() -> None:
    hard, soft = bench_tables(SUMMARY)
    assert hard.title == "sst2 — linear_probe (hard labels): accuracy % on the evaluation split"
    assert [c.header for c in hard.columns] == ["method", "5/class", "10/class"]
    text = _render(hard)
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in text.splitlines() if line.startswith("│")}
    assert rows == {"random": ["61.2 ± 1.0", "63.8 ± 1.0"], "kmeans": ["70.4 ± 1.0", "73.4 ± 1.0"],
                    "full data (67349 rows)": ["81.1 ± 1.0", "81.1 ± 1.0"]}
    random5, kmeans5, full5 = hard.columns[1].cells
    assert kmeans5.style == "bold" and random5.style == "" and full5.style == ""
    assert "soft labels" in soft.title


def test_a_set_with_its_own_learned_labels_is_marked_in_the_hard_table() -> None:
    """With no teacher soft labels in the benchmark, a soft-label score means the set carries
    its own learned labels: its hard cell is marked and the table says where its score is;
    with the teacher's soft labels every selection has a soft score, and nothing is marked."""
    hard, soft = bench_tables(SUMMARY, teacher_soft_labels=False)
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in _render(hard).splitlines() if line.startswith("│")}
    assert rows["kmeans"] == ["70.4 ± 1.0 †", "73.4 ± 1.0"]  # a soft score at 5 only
    assert rows["random"] == ["61.2 ± 1.0", "63.8 ± 1.0"]
    assert hard.caption.startswith("† the set carries its own learned soft labels")
    assert soft.caption is None and "†" not in _render(soft)
    plain, _ = bench_tables(SUMMARY, teacher_soft_labels=True)
    assert plain.caption is None and "†" not in _render(plain)


def test_reuse_summary_counts_reused_and_computed_stages() -> None:
    stages = ("ingest", "signals", "synthesize", "filter", "evaluate")
    log = StageLog()
    for stage in stages:
        log.note(stage, "resumed")
    log.note("signals", "50/100")  # progress notes are not outcomes
    assert reuse_summary(stages, log, "runs/r", "ray", False) == (
        "all 5 stages reused from runs/r; nothing was computed (Ray was not contacted)")
    assert reuse_summary(stages, log, "runs/r", "local", False) == (
        "all 5 stages reused from runs/r; nothing was computed")
    log.note("signals", "cached")
    assert reuse_summary(stages, log, "runs/r", "ray", True) == (
        "all 5 stages reused (4 from runs/r, 1 from the cache); nothing was computed")
    log.note("filter", "computed")
    log.note("evaluate", "computed")
    assert reuse_summary(stages, log, "runs/r", "local", False) == (
        "2 of 5 stages computed (filter, evaluate); 3 reused (ingest resumed, signals cached, "
        "synthesize resumed)")


def test_console_does_not_wrap_when_output_is_no_terminal() -> None:
    out = io.StringIO()
    console = CliConsole(file=out)
    long = "/very/long/path/" * 20
    console.print(f"run folder: {long}")
    assert out.getvalue() == f"run folder: {long}\n"
    assert CliConsole(file=io.StringIO(), width=40).width == 40  # an explicit width wins
    assert CliConsole(file=io.StringIO(), force_terminal=True).width < 10_000


def test_validate_tells_data_files_from_configs_and_guesses_columns() -> None:
    from pathlib import Path

    import pytest

    from distill_core.errors import ConfigError
    from flows.cli_data import guess_columns, is_data_file, parse_label_map

    for name in ("a.tsv", "a.CSV", "a.jsonl.gz", "a.json", "a.txt.zst", "a.parquet"):
        assert is_data_file(Path(name)), name
    for name in ("a.yaml", "a.yml", "config", "a.yaml.gz"):
        assert not is_data_file(Path(name)), name
    assert guess_columns(["#1 ID", "#1 String", "#2 String", "Quality"]) == {
        "text": "#1 String", "text_pair": "#2 String", "label": "Quality"}
    assert guess_columns(["Premise", "hypothesis", "gold_label"]) == {
        "text": "Premise", "text_pair": "hypothesis", "label": "gold_label"}
    assert guess_columns(["instruction", "output"]) == {"text": None, "text_pair": None,
                                                       "label": None}
    assert parse_label_map(["0=negative, 1=positive", "2=neutral"]) == {
        "0": "negative", "1": "positive", "2": "neutral"}
    with pytest.raises(ConfigError, match="expected RAW=NAME pairs"):
        parse_label_map(["0:negative"])


def test_the_auto_choice_line_names_the_soft_label_row_only_when_labels_were_learned() -> None:
    from flows.cli_views import auto_choice_line

    plain = auto_choice_line({"chosen": "bilevel+weights", "learned_labels": False})
    assert plain == "auto chose bilevel+weights (the report's auto section explains the choice)"
    labelled = auto_choice_line({"chosen": "span_pursuit+labels", "learned_labels": True})
    assert labelled.startswith("auto chose span_pursuit+labels: its set carries learned soft "
                               "labels, so 'auto (distilled, soft labels)' is this choice's")
    assert auto_choice_line(None) is None and auto_choice_line({}) is None


def test_a_learned_methods_own_labels_are_marked_among_the_teachers() -> None:
    """With the teacher's soft labels, the soft-label table's sets train on them, except a
    learned method's, which carry the labels it learned: those cells are marked (‡)."""
    summary = [*SUMMARY, _entry("learned_meta", 5, 0.75), _entry("learned_meta", 5, 0.78,
                                                                  labels="soft")]
    hard, soft = bench_tables(summary, teacher_soft_labels=True)
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in _render(soft).splitlines() if line.startswith("│")}
    assert rows["learned_meta"][0] == "78.0 ± 1.0 ‡"
    assert rows["kmeans"][0] == "70.0 ± 1.0"  # the teacher's labels: no mark
    assert soft.caption.startswith("‡ the set's soft labels are the ones its learned method")
    assert hard.caption is None and "‡" not in _render(hard)
    # without the teacher's soft labels a soft score is the set's own anyway: † in the hard
    # table, as above, and no ‡
    hard, soft = bench_tables(summary, teacher_soft_labels=False)
    assert "‡" not in _render(soft) and "‡" not in _render(hard)
    assert rows and "learned_meta" in _render(hard) and "†" in _render(hard)
