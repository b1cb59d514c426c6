"""`textdistill validate DATA_FILE`: check one data file against the ingest rules.

The file becomes the same `data.train.file` source a config would give (path, format,
columns, label map), and the ordinary ingest reads it, so the problems listed are the ones
a run would reject. Without `--text` / `--label`, the columns are guessed from the header
(or the first JSON object) by their usual names; when that fails the error names the
columns found and the options to pass.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from distill_core.config_files import format_validation
from distill_core.errors import ConfigError
from distill_core.ingest.sources import FileSource, compression_of, format_of

CONFIG_SUFFIXES = (".yaml", ".yml")
PLAIN_TEXT_SUFFIXES = (".txt",)  # `<label> <text>` lines (Kim's SST files): label_text

# Usual column names, most specific first (compared case-insensitively).
TEXT_NAMES = ("text", "sentence", "content", "review", "document", "description", "sentence1",
              "premise", "sentence_a", "#1 string", "question", "prompt")
PAIR_OF = {"sentence1": "sentence2", "premise": "hypothesis", "sentence_a": "sentence_b",
           "#1 string": "#2 string", "question": "sentence"}
LABEL_NAMES = ("label", "labels", "class", "category", "target", "sentiment", "gold_label",
               "quality", "entailment_judgment")


def _format_suffix(path: Path) -> str:
    name = path.with_suffix("") if compression_of(path) is not None else path
    return name.suffix.lower()


def is_data_file(path: Path) -> bool:
    """Whether `validate` reads `path` as a data file (by suffix, past .gz/.zst), not a
    config: .csv, .tsv, .json, .jsonl, .parquet, .txt and the like."""
    if path.suffix.lower() in CONFIG_SUFFIXES:
        return False
    return format_of(path) is not None or _format_suffix(path) in PLAIN_TEXT_SUFFIXES


def parse_label_map(items: list[str] | None) -> dict[str, str] | None:
    """`--label-map 0=negative,1=positive` (repeatable) as a label map."""
    if not items:
        return None
    mapping: dict[str, str] = {}
    for item in items:
        for pair in filter(None, (p.strip() for p in item.split(","))):
            raw, sep, name = pair.partition("=")
            if not sep or not raw.strip() or not name.strip():
                raise ConfigError(f"--label-map {item!r}: expected RAW=NAME pairs, e.g. "
                                  "--label-map 0=negative,1=positive")
            mapping[raw.strip()] = name.strip()
    return mapping


def _source(options: dict[str, Any]) -> FileSource:
    try:
        return FileSource.model_validate({k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError("data file options: " + format_validation(exc, None, model=FileSource)
                          ) from None


def _header(path: Path, probe: FileSource) -> list[str]:
    from distill_core.ingest.textfiles import text_lines

    delimiter = probe.delimiter or ("\t" if probe.format == "tsv" else ",")
    reader = csv.reader(text_lines(path, probe, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_MINIMAL if probe.quoting else csv.QUOTE_NONE)
    return [h.strip() for h in next(reader, [])]


def _first_object_keys(path: Path, probe: FileSource) -> list[str]:
    from distill_core.ingest.textfiles import text_lines

    if probe.format == "json":
        try:
            data = json.loads("".join(text_lines(path, probe, newline="")))
        except (json.JSONDecodeError, RecursionError):
            return []
        objects = data if isinstance(data, list) else []
        return next((list(o) for o in objects if isinstance(o, dict)), [])
    for number, line in enumerate(text_lines(path, probe, newline="\n")):
        if number >= 1000:
            break
        try:
            obj = json.loads(line) if line.strip() else None
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(obj, dict):
            return list(obj)
    return []


def file_columns(path: Path, probe: FileSource) -> list[str]:
    """The column names of a data file: a CSV/TSV header, the first JSON object's keys, a
    Parquet schema; the fixed `label`/`text` of label_text lines."""
    if probe.format == "label_text":
        return ["label", "text"]
    if probe.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        from distill_core.errors import IngestError

        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as exc:
            raise IngestError(f"{path}: not a readable Parquet file ({exc})") from None
    if probe.format in ("json", "jsonl"):
        return _first_object_keys(path, probe)
    return _header(path, probe) if probe.header else list(probe.columns or [])


def _named(columns: list[str], names: tuple[str, ...]) -> str | None:
    by_lower = {c.lower(): c for c in columns}
    return next((by_lower[n] for n in names if n in by_lower), None)


def guess_columns(columns: list[str]) -> dict[str, str | None]:
    """{text, text_pair, label} from the usual column names; None where nothing fits."""
    text = _named(columns, TEXT_NAMES)
    partner = PAIR_OF.get(text.lower()) if text else None
    pair = _named([c for c in columns if c != text], (partner,)) if partner else None
    return {"text": text, "text_pair": pair, "label": _named(columns, LABEL_NAMES)}


def data_file_source(path: Path, text: str | None, text_pair: str | None, label: str | None,
                     label_map: list[str] | None, layout: dict[str, Any]
                     ) -> tuple[FileSource, list[str]]:
    """The file source a config would declare for `path` (`layout`: format, quoting, header,
    columns), and the options that were guessed from the file's columns (none when the
    caller named them all)."""
    from distill_core.ingest.textfiles import check_data_file

    options = {**layout, "path": str(path), "label_map": parse_label_map(label_map)}
    if options.get("format") is None and _format_suffix(path) in PLAIN_TEXT_SUFFIXES:
        options["format"] = "label_text"
    if options.get("format") == "label_text":  # `<label> <text>` lines: nothing to guess
        text, label = text or "text", label or "label"
    if text is not None and label is not None:
        return _source({**options, "text": text, "text_pair": text_pair, "label": label}), []
    check_data_file(path)
    probe = _source({**options, "text": text or "?", "label": label or "?"})
    columns = file_columns(path, probe)
    guess = guess_columns(columns)
    given = {"text": text, "text_pair": text_pair, "label": label}
    chosen = {"text": text or guess["text"], "label": label or guess["label"],
              "text_pair": text_pair or (guess["text_pair"] if text is None else None)}
    missing = [k for k in ("text", "label") if chosen[k] is None]
    if missing:
        found = ", ".join(map(repr, columns)) if columns else "none"
        raise ConfigError(f"{path}: cannot tell which column holds the "
                          f"{' and which the '.join(missing)} (columns found: {found}); pass "
                          f"{' and '.join(f'--{k} COLUMN' for k in missing)} (--text-pair "
                          "COLUMN for sentence pairs; --columns A,B,.. when the file has no "
                          "header line)")
    guessed = [f"--{k.replace('_', '-')} {chosen[k]}" for k in ("text", "text_pair", "label")
               if chosen[k] is not None and given[k] is None]
    return _source({**options, **chosen}), guessed


def ingest_data_file(path: Path, text: str | None, text_pair: str | None, label: str | None,
                      label_map: list[str] | None, layout: dict[str, Any],
                      max_chars: int | None) -> tuple[Any, list[str]]:
    """Ingest one data file as a run's train split would be read (its own eval split too, so
    only the train split's sources and rejects are kept); (result, guessed column options)."""
    import pyarrow.compute as pc

    from distill_core.ingest import ingest_dataset
    from distill_core.ingest.sources import DatasetSpec, SplitSource
    source, guessed = data_file_source(path.absolute(), text, text_pair, label, label_map,
                                       layout)
    split = SplitSource(file=source)
    result = ingest_dataset(DatasetSpec(train=split, eval=split), None, max_chars=max_chars,
                            note_unusable=True)
    result.sources = [s for s in result.sources if s["split"] == "train"]
    result.rejects = result.rejects.filter(pc.equal(result.rejects["split"], "train"))
    return result, guessed
