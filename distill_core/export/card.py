"""The dataset card (`README.md`) of an export: YAML metadata, then what the data is.

The metadata lets the hub and `datasets.load_dataset` read the folder (`configs` names each
split's Parquet files, `dataset_info` the features with the label names); the body says what
was distilled from what, how, how well it scored, what the contamination check found, and how
to trace a row back to its sources. Everything comes from the run's manifests and the
exported rows, so the same run gives the same card.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml

from distill_core.export.dataset import FinishedRun
from distill_core.export.sections import (
    budget_words,
    columns_section,
    contamination_section,
    is_instruction,
    lineage_section,
    method_section,
    scores_section,
    source_name,
    source_section,
    splits_section,
)
from distill_core.export.sources import source_facts

_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
          (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"))


def size_category(rows: int) -> str:
    """The hub's `size_categories` value for a dataset of `rows` rows."""
    return next((name for limit, name in _SIZES if rows < limit), "n>10M")


def data_files(split: str) -> str:
    """The Parquet files of a split, relative to the export folder (the hub's layout)."""
    return f"data/{split}-*"


def pretty_name(run: FinishedRun) -> str:
    config = run.config
    dataset = source_name(config)
    facts = source_facts(dataset)
    source = facts.pretty_name if facts else (dataset or config.get("run", {}).get("name"))
    synth = config.get("synthesize", {})
    return f"{source} distilled ({synth.get('method')}, {budget_words(config)})"


def card_metadata(run: FinishedRun, dataset_dict: Any) -> dict[str, Any]:
    """The card's YAML metadata as a dict."""
    config = run.config
    synth = config.get("synthesize", {})
    facts = source_facts(config.get("data", {}).get("dataset"))
    origins = Counter(o for split in dataset_dict.values() for o in split["origin"])
    first = next(iter(dataset_dict.values()))
    metadata: dict[str, Any] = {
        "pretty_name": pretty_name(run),
        "license": facts.license if facts else "unknown",
    }
    if facts and facts.language:
        metadata["language"] = [facts.language]
    metadata |= {
        "task_categories": ["text-generation" if is_instruction(config)
                            else "text-classification"],
        "size_categories": [size_category(sum(s.num_rows for s in dataset_dict.values()))],
        "tags": ["textdistill", "dataset-distillation", str(synth.get("method"))]
        + (["synthetic"] if origins.get("generated") else []),
        "configs": [{"config_name": "default", "default": True,
                     "data_files": [{"split": name, "path": data_files(name)}
                                    for name in dataset_dict]}],
        "dataset_info": {"features": first.features._to_yaml_list()},
        "textdistill": {
            "run_id": run.store.run_id,
            "config_hash": run.manifests["filter"].get("config_hash"),
            "source_dataset": source_name(config),
            "task": config.get("data", {}).get("task", "classification"),
            "method": synth.get("method"),
            **({"budget": synth.get("budget", 0.05)} if is_instruction(config)
               else {"per_class": synth.get("per_class")}),
            "seeds": config.get("run", {}).get("seeds"),
            "version": run.manifests["filter"].get("versions", {}).get("textdistill"),
        },
    }
    return metadata


def build_card(run: FinishedRun, dataset_dict: Any, splits: dict[str, tuple[int, int]]) -> str:
    """The whole card: YAML front matter and the Markdown body."""
    metadata = card_metadata(run, dataset_dict)
    header = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=100)
    body = [f"# {metadata['pretty_name']}", ""]
    for section in (splits_section(run, dataset_dict, splits), columns_section(dataset_dict),
                    source_section(run, metadata["license"]), method_section(run),
                    scores_section(run), contamination_section(run),
                    lineage_section(run, dataset_dict)):
        body += section + [""]
    return f"---\n{header}---\n\n" + "\n".join(body).rstrip() + "\n"
