"""The SmolLM2 GGUF file's tokenizer as a generic fast tokenizer that survives save and reload.

transformers 5.3 converts the GGUF byte-level BPE vocabulary correctly in memory but
records `CodeLlamaTokenizer` as its class, so the copy saved beside the dequantised
weights reloads as a SentencePiece-style pipeline: every space becomes the unknown
token and decoded text keeps the byte-level marks (`Ġ`). It also names `<|im_start|>`
as the end token where the GGUF metadata says `<|im_end|>`, and puts `<|im_start|>`
before every encoded text although the metadata says `add_bos_token: false` (a chat
prompt then starts with the marker twice). Here the converted backend is wrapped in the
generic fast-tokenizer class with the special tokens the metadata names, adds a BOS only
where the metadata asks for one, and every copy must round-trip a probe text before it
is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_core.errors import ModelError

# Words, punctuation, digits, accents, a dash, newlines and the chat markers: what
# prompts and generated examples contain.
PROBE = ("Hello world, it's a fine day in 2024: naïve café — 3 items.\n\n"
         "<|im_start|>user\nWhy?<|im_end|>\n")

ADD_BOS = "tokenizer.ggml.add_bos_token"
_SPECIAL_IDS = {"bos_token": "tokenizer.ggml.bos_token_id",
                "eos_token": "tokenizer.ggml.eos_token_id",
                "unk_token": "tokenizer.ggml.unknown_token_id",
                "pad_token": "tokenizer.ggml.padding_token_id"}


def _scalars(gguf_path: Path, keys: list[str]) -> dict[str, Any]:
    """The GGUF metadata's scalar values of `keys` (those present)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf_path)).fields
    # A scalar field's value is its part at `data[0]` (the layout since gguf's first releases).
    return {key: fields[key].parts[fields[key].data[0]][0] for key in keys if key in fields}


def gguf_special_ids(gguf_path: Path) -> dict[str, int]:
    """The special-token ids the GGUF metadata records (bos, eos, unk, pad; those present)."""
    return _special_ids(_scalars(gguf_path, list(_SPECIAL_IDS.values())))


def _special_ids(values: dict[str, Any]) -> dict[str, int]:
    return {role: int(values[key]) for role, key in _SPECIAL_IDS.items() if key in values}


def gguf_fast_tokenizer(folder: Path, gguf_file: str) -> Any:
    """The GGUF file's tokenizer as a generic fast tokenizer with the metadata's special tokens
    (where the metadata lacks one, the converted tokenizer's own)."""
    from tokenizers import processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    converted = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    backend = converted.backend_tokenizer
    metadata = _scalars(folder / gguf_file, [*_SPECIAL_IDS.values(), ADD_BOS])
    if not metadata.get(ADD_BOS, True):  # GGUF's default: a BOS before every text
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = {role: getattr(converted, role) for role in _SPECIAL_IDS}
    for role, token_id in _special_ids(metadata).items():
        specials[role] = backend.id_to_token(token_id) or specials[role]
    if specials["eos_token"] is None:
        raise ModelError(f"{folder / gguf_file} names no end-of-sequence token: generation "
                         "could not stop; use a GGUF file with tokenizer.ggml.eos_token_id")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, **{k: v for k, v in specials.items() if v is not None})
    tokenizer.chat_template = converted.chat_template
    check_round_trip(tokenizer, f"{folder / gguf_file}")
    return tokenizer


def check_round_trip(tokenizer: Any, where: str) -> None:
    """Raise ModelError unless `PROBE` encodes without unknown tokens and decodes to itself."""
    ids = list(tokenizer(PROBE, add_special_tokens=False)["input_ids"])
    unknown = tokenizer.unk_token_id
    decoded = tokenizer.decode(ids)
    if decoded == PROBE and (unknown is None or unknown not in ids):
        return
    at = next((i for i, (a, b) in enumerate(zip(PROBE, decoded, strict=False)) if a != b),
              min(len(PROBE), len(decoded)))
    raise ModelError(
        f"the tokenizer from {where} does not reproduce text: from character {at} it decodes "
        f"{PROBE[at:at + 16]!r} as {decoded[at:at + 16]!r}"
        f"{' (with unknown tokens)' if unknown is not None and unknown in ids else ''}; "
        "delete that folder if it is a cached copy, or install a transformers release whose "
        "GGUF conversion works")
