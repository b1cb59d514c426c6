"""report.html of a run: the report's tables rendered, two embedded PNG figures, the corpus map's
data (sample, distilled rows, generated rows), and no rewrite when nothing changed."""

from __future__ import annotations

import base64
import io
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from PIL import Image

from distill_core.artifacts.store import RunStore
from distill_core.config import load_config
from distill_core.report import build_html, write_report
from distill_core.report_html import markdown_to_html
from distill_core.report_plots import (
    accuracy_png,
    build_map,
    corpus_map,
    map_caption,
    map_png,
    stratified_sample,
)

PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Headings, tables (rows of cell texts) and image sources of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.captions: list[str] = []
        self._text: list[str] | None = None
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        if tag in ("h1", "h2", "h3", "td", "th", "figcaption"):
            self._text, self._tag = [], tag

    def handle_endtag(self, tag: str) -> None:
        if self._text is None or tag != self._tag:
            return
        text = "".join(self._text).strip()
        if tag in ("td", "th"):
            self.tables[-1][-1].append(text)
        elif tag == "figcaption":
            self.captions.append(text)
        else:
            self.headings.append((tag, text))
        self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _md_table_after(markdown: str, heading_prefix: str) -> list[list[str]]:
    """The rows (header first) of the first pipe table after a heading."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading_prefix))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows


def _config(slice_dir: Path, *extra: str):
    return load_config(None, [f"data.data_dir={slice_dir}", "run.seeds=[0,1]",
                              "synthesize.per_class=4", "run.name=html",
                              "evaluate.learners=[linear_probe, {kind: linear_probe, "
                              "name: probe_c10, C: 10}]", *extra])


@pytest.fixture(scope="module")
def run(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory, run_stages) -> RunStore:
    """A finished kmeans run on the SST-2 slice, scored by two learners."""
    store, _ = run_stages(_config(slice_dir), tmp_path_factory.mktemp("runs"))
    write_report(store.root)
    return store


def test_html_has_the_scores_table_and_two_png_figures(run: RunStore) -> None:
    markdown = (run.root / "report.md").read_text(encoding="utf-8")
    page = _parse((run.root / "report.html").read_text(encoding="utf-8"))
    assert ("h1", f"textdistill run {run.run_id}") in page.headings
    scores = _md_table_after(markdown, "## Scores")
    assert len(scores) == 1 + 2 * 3  # header, (distilled, random, full) x two learners
    assert scores in page.tables
    assert any("probe_c10" in row[0] for row in scores[1:])
    for heading in ("## Funnel", "## Distilled examples", "## Stages"):
        assert _md_table_after(markdown, heading) in page.tables
        assert any(tag == "h2" and text.startswith(heading[3:]) for tag, text in page.headings)
    assert len(page.images) == 2
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG)
        with Image.open(io.BytesIO(png)) as image:
            assert image.width >= 600 and image.height >= 200
    distilled = run.read("filter")
    shown = sum(1 for r in distilled.column("replicate").to_pylist() if r == 0)
    assert f"the {shown} distilled rows of seed 0" in page.captions[1]


def test_unchanged_report_is_not_rewritten(run: RunStore, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    md, page = run.root / "report.md", run.root / "report.html"
    before = (md.stat().st_mtime_ns, page.stat().st_mtime_ns, page.read_bytes())

    def refuse(*args, **kwargs):
        raise PermissionError("read-only run folder")

    with monkeypatch.context() as patch:  # a read-only folder: nothing may be written
        patch.setattr(Path, "write_text", refuse)
        assert write_report(run.root) == md
    assert (md.stat().st_mtime_ns, page.stat().st_mtime_ns, page.read_bytes()) == before
    page.write_text("stale", encoding="utf-8")
    write_report(run.root)
    assert page.read_bytes() == before[2]  # same artifacts, same bytes (figures included)


def test_corpus_map_marks_the_first_replicates_rows(run: RunStore) -> None:
    corpus = corpus_map(run)
    assert not isinstance(corpus, str)
    distilled = run.read("filter").to_pylist()
    first = [r for r in distilled if r["replicate"] == 0]
    assert corpus.distilled_ids == [r["example_id"] for r in first]
    names = corpus.class_names
    assert [names[c] for c in corpus.distilled_labels] == [r["label"] for r in first]
    assert corpus.skipped == 0 and not corpus.distilled_generated.any()
    train = run.manifest("ingest")["counts"]["rows_by_split"]["train"]
    assert corpus.corpus_rows == train and len(corpus.xy) == train  # under the cap: all rows
    capped = corpus_map(run, cap=60)
    assert len(capped.xy) == 60 and capped.distilled_ids == corpus.distilled_ids
    counts = np.bincount(corpus.labels, minlength=len(names))
    assert np.all(np.abs(np.bincount(capped.labels, minlength=len(names))
                         - 60 * counts / train) < 1)
    again = corpus_map(run, cap=60)
    assert np.array_equal(again.xy, capped.xy) and np.array_equal(
        again.distilled_xy, capped.distilled_xy)
    assert map_png(again) == map_png(capped)


def test_header_names_this_runs_method_when_ingest_came_from_the_cache(
        run: RunStore, slice_dir: Path, run_stages) -> None:
    cfg = _config(slice_dir, "synthesize.method=random", "synthesize.per_class=3")
    other, outcomes = run_stages(cfg, run.runs_dir)
    assert [o.status for o in outcomes][:2] == ["cached", "cached"]  # ingest: kmeans's config
    header = "\n".join(build_html(other.root).splitlines()[:6])
    assert "method: <code>random</code>, 3 per class" in header
    assert f"config hash: <code>{cfg.config_hash()[:16]}</code>" in header


def test_stratified_sample_is_proportional_capped_and_seeded() -> None:
    labels = np.array([0] * 900 + [1] * 97 + [2] * 3)
    picked = stratified_sample(labels, 100, seed=7)
    assert len(picked) == 100 and len(set(picked)) == 100
    assert np.all(np.diff(picked) > 0)
    assert np.bincount(labels[picked]).tolist() == [90, 9, 1]  # a small class still shows
    assert np.array_equal(stratified_sample(labels, 100, seed=7), picked)
    assert not np.array_equal(stratified_sample(labels, 100, seed=8), picked)
    assert np.array_equal(stratified_sample(labels[:50], 100, seed=7), np.arange(50))


def test_map_places_generated_rows_and_counts_rows_without_embedding() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    ids = [f"c{i}" for i in range(40)]
    labels = np.array([i % 2 for i in range(40)])
    made = rng.normal(size=8).astype(np.float32)
    corpus = build_map(["neg", "pos"], ids, labels, x, ["c3", "g1", "lost", "g2"],
                       np.array([1, 0, 0, 1]), {"g1": made, "g2": np.zeros(5)}, cap=20, seed=1)
    assert len(corpus.xy) == 20
    assert corpus.distilled_ids == ["c3", "g1"]
    assert corpus.distilled_generated.tolist() == [False, True]
    assert corpus.skipped == 2  # no embedding, and one of the wrong width
    caption = map_caption(corpus)
    assert "20 of the 40 training rows, sampled per class" in caption
    assert "1 generated rows" in caption
    assert "2 distilled rows have no embedding to place them by" in caption
    assert map_png(corpus).startswith(PNG)


def test_run_without_embeddings_says_why_it_has_no_map(run: RunStore, tmp_path: Path) -> None:
    copy = tmp_path / run.run_id
    shutil.copytree(run.root, copy)
    shutil.rmtree(copy / "signals")
    page = _parse(build_html(copy))
    assert len(page.images) == 1  # the accuracy figure only
    assert "no embeddings" in corpus_map(RunStore.open(copy))
    assert "no embeddings" in build_html(copy)


def test_accuracy_figure_of_one_learner() -> None:
    summary = [{"learner": "linear_probe", "setting": s, "method": m, "per_class": pc,
                "n_train": n, "n": k, "accuracy_mean": a, "accuracy_std": sd}
               for s, m, pc, n, k, a, sd in [("distilled", "kmeans", 5, 10, 3, 0.7, 0.02),
                                             ("random", "random", 5, 10, 3, 0.6, 0.05),
                                             ("full", "full", None, 300, 1, 0.8, 0.0)]]
    png = accuracy_png(summary, n_classes=2)
    assert png.startswith(PNG) and png == accuracy_png(summary, n_classes=2)


def test_markdown_subset_is_rendered_and_escaped() -> None:
    text = ("# run `a<b`\n\n- one **bold** <script>\n- two\n\n| x | y |\n|---|---|\n"
            "| a \\| b | 1.5 ± 0.2 |\n\nplain & `code`\nsecond line")
    out = markdown_to_html(text)
    assert "<h1>run <code>a&lt;b</code></h1>" in out
    assert "<ul><li>one <b>bold</b> &lt;script&gt;</li><li>two</li></ul>" in out
    assert "<td>a | b</td><td class='num'>1.5 ± 0.2</td>" in out
    assert "<p>plain &amp; <code>code</code> second line</p>" in out
    assert "<script>" not in out
    chose = markdown_to_html("**auto chose `a+b`** (x) and `**not bold**` <i>")
    assert chose == ("<p><b>auto chose <code>a+b</code></b> (x) and <code>**not bold**</code> "
                     "&lt;i&gt;</p>")


def test_streamed_corpus_map_equals_the_in_memory_map(run: RunStore) -> None:
    """`corpus_map` reads only the sampled and distilled rows' features: the same map as
    `build_map` over every training row, as the report drew it before."""
    from distill_core.signals.embeddings import split_features

    corpus = run.read("ingest", columns=["example_id", "split", "label"])
    train, x = split_features(corpus, run.read("signals"), "train")
    names = list(run.manifest("ingest")["label_names"])
    distilled = run.read("filter")
    first = distilled.filter(pc.equal(distilled.column("replicate"), 0))
    seed = run.manifest("filter")["seeds"][0]
    labels = np.array([names.index(v) for v in train.column("label").to_pylist()])
    for cap in (60, 5000):
        expected = build_map(names, train.column("example_id").to_pylist(), labels, x,
                             first.column("example_id").to_pylist(),
                             np.array([names.index(v) for v in first.column("label")
                                       .to_pylist()]), None, cap, seed)
        got = corpus_map(run, cap=cap)
        assert np.array_equal(got.xy, expected.xy) and np.array_equal(got.labels,
                                                                      expected.labels)
        assert got.distilled_ids == expected.distilled_ids and len(got.distilled_ids) > 0
        assert np.array_equal(got.distilled_xy, expected.distilled_xy)
        assert got.corpus_rows == expected.corpus_rows == train.num_rows
