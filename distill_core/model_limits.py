"""How many tokens an encoder takes, read from its local files, and the run-start check of
`signals.max_length` against it."""

from __future__ import annotations

from pathlib import Path

from distill_core.config import RunConfig
from distill_core.errors import ConfigError


def encoder_token_limit(model: str) -> int | None:
    """The most tokens an encoder takes, from its local files (a folder, the offline copy or
    the hub cache): the smaller of its position embeddings and its tokenizer's
    `model_max_length`. None when that is unknown without a download."""
    import json

    from distill_core.signals.models import resolve_model_path

    folder = Path(resolve_model_path(model))
    files: dict[str, Path] = {}
    for name in ("config.json", "tokenizer_config.json"):
        if folder.is_dir():
            if (folder / name).is_file():
                files[name] = folder / name
            continue
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(str(folder), name)
        except Exception:  # noqa: BLE001 - an odd model id: the check is best effort
            cached = None
        if isinstance(cached, str):
            files[name] = Path(cached)
    limits = []
    for name, key in (("config.json", "max_position_embeddings"), ("config.json", "n_positions"),
                      ("tokenizer_config.json", "model_max_length")):
        try:
            value = json.loads(files[name].read_text(encoding="utf-8")).get(key)
        except (KeyError, OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int | float) and 0 < value < 1_000_000:  # 1e30: "no limit"
            limits.append(int(value))
    return min(limits) if limits else None


def check_model_limits(cfg: RunConfig) -> None:
    """`signals.max_length` within what the encoder (and a fine-tuned teacher's encoder) can
    take, checked before a run starts; a ConfigError names the key, the model and its limit."""
    from distill_core.signals.static_encoder import base_encoder

    # A static encoder truncates with its base encoder's tokenizer, so the base's limit holds.
    models = [base_encoder(cfg.signals.model)]
    if cfg.teacher.kind == "finetune":
        models.append(cfg.teacher.model or base_encoder(cfg.signals.model))
    for model in dict.fromkeys(models):
        limit = encoder_token_limit(model)
        if limit is not None and cfg.signals.max_length > limit:
            raise ConfigError(f"signals.max_length={cfg.signals.max_length} is more than the "
                              f"encoder {model!r} takes ({limit} tokens): set "
                              f"signals.max_length to at most {limit}")
