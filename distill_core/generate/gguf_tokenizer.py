"""The SmolLM2 GGUF file's tokenizer as a generic fast tokenizer that survives save and reload.

transformers 5.x converts the GGUF byte-level BPE vocabulary correctly in memory but
records `CodeLlamaTokenizer` as its class, so the copy saved beside the dequantised
weights reloads as a SentencePiece-style pipeline: every space becomes the unknown
token and decoded text keeps the byte-level marks (`Ġ`). It also names `<|im_start|>`
as the end token where the GGUF metadata says `<|im_end|>`. Here the converted
backend is wrapped in the generic fast-tokenizer class with the special tokens the
metadata names, and every copy must round-trip a probe text before it is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_core.errors import ModelError

# Words, punctuation, digits, accents, a dash, newlines and the chat markers: what
# prompts and generated examples contain.
PROBE = ("Hello world, it's a fine day in 2024: naïve café — 3 items.\n\n"
         "<|im_start|>user\nWhy?<|im_end|>\n")

_SPECIAL_IDS = {"bos_token": "tokenizer.ggml.bos_token_id",
                "eos_token": "tokenizer.ggml.eos_token_id",
                "unk_token": "tokenizer.ggml.unknown_token_id",
                "pad_token": "tokenizer.ggml.padding_token_id"}


def gguf_special_ids(gguf_path: Path) -> dict[str, int]:
    """The special-token ids the GGUF metadata records (bos, eos, unk, pad; those present)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf_path)).fields
    return {role: int(fields[key].contents()) for role, key in _SPECIAL_IDS.items()
            if key in fields}


def gguf_fast_tokenizer(folder: Path, gguf_file: str) -> Any:
    """The GGUF file's tokenizer as a generic fast tokenizer with the metadata's special tokens."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    converted = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    backend = converted.backend_tokenizer
    specials = {role: backend.id_to_token(token_id)
                for role, token_id in gguf_special_ids(folder / gguf_file).items()}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **specials)
    tokenizer.chat_template = converted.chat_template
    check_round_trip(tokenizer, f"{folder / gguf_file}")
    return tokenizer


def check_round_trip(tokenizer: Any, where: str) -> None:
    """Raise ModelError unless `PROBE` encodes without unknown tokens and decodes to itself."""
    ids = list(tokenizer(PROBE, add_special_tokens=False)["input_ids"])
    unknown = tokenizer.unk_token_id
    decoded = tokenizer.decode(ids)
    if decoded != PROBE or (unknown is not None and unknown in ids):
        raise ModelError(
            f"the tokenizer from {where} does not reproduce text (it decodes "
            f"{PROBE[:24]!r} as {decoded[:24]!r}); delete that folder if it is a cached copy, "
            "or install a transformers release whose GGUF conversion works")
