"""Hub models and datasets are identified by the commit their files come from, not by name
alone: a model updated on the hub is another identity, so nothing computed with its old files
is reused. Offline (as here) the commit is the one the local cache's refs point at, the files
an offline load would use; a repository the cache does not hold has no commit (its load
fails with its own one-line error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_core import hub
from distill_core.generate.models import causal_lm_identity
from distill_core.ingest.ingest import ResolvedSource
from distill_core.ingest.sources import HubSource
from distill_core.signals.models import model_identity


@pytest.fixture()
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_commit.cache_clear()
    yield tmp_path
    hub.hub_commit.cache_clear()


def _point(cache: Path, folder: str, commit: str, ref: str = "main") -> None:
    refs = cache / folder / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / ref).write_text(commit)
    hub.hub_commit.cache_clear()


def test_a_hub_model_is_identified_by_the_commit_the_cache_points_at(hub_cache: Path) -> None:
    assert model_identity("acme/encoder") == {"model": "acme/encoder", "source": "hub"}
    _point(hub_cache, "models--acme--encoder", "a" * 40)
    first = model_identity("acme/encoder")
    assert first == {"model": "acme/encoder", "source": "hub", "commit": "a" * 40}
    assert causal_lm_identity("acme/encoder") == first  # decoders alike
    _point(hub_cache, "models--acme--encoder", "b" * 40)  # updated: another identity
    assert model_identity("acme/encoder")["commit"] == "b" * 40


def test_a_hub_dataset_split_names_its_commit_and_a_pinned_revision_is_kept(
        hub_cache: Path) -> None:
    split = HubSource(path="acme/reviews", split="train", text="text", label="label")
    source = ResolvedSource("train", hub=split)
    assert "commit" not in source.identity()
    _point(hub_cache, "datasets--acme--reviews", "c" * 40)
    assert source.identity()["commit"] == "c" * 40
    _point(hub_cache, "datasets--acme--reviews", "d" * 40, ref="v2")
    pinned = ResolvedSource("train", hub=split.model_copy(update={"revision": "v2"}))
    assert pinned.identity()["commit"] == "d" * 40
    exact = ResolvedSource("train", hub=split.model_copy(update={"revision": "e" * 40}))
    assert exact.identity()["commit"] == "e" * 40
