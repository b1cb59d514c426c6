"""Models load from safetensors, never run repository code unless the config says so, and
fail at once without a network."""

from __future__ import annotations

import pytest

from distill_core.config import load_config
from distill_core.errors import DataSourceUnavailable
from distill_core.signals.encoder import SentenceEncoder


def test_remote_code_is_off_and_weights_are_safetensors(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    seen: list[dict] = []
    real_model = transformers.AutoModel.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real_model(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", spy)
    assert load_config(None, []).signals.trust_remote_code is False
    SentenceEncoder("all-MiniLM-L6-v2")
    assert seen[0]["trust_remote_code"] is False and seen[0]["use_safetensors"] is True


def test_a_hub_model_fails_fast_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceUnavailable, match="local model folder"):
        SentenceEncoder("bert-base-uncased")
