"""Reading config files: YAML that refuses duplicate keys, `--set` overrides, and
validation errors on one line. Shared by run, benchmark and serve configs."""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from distill_core.errors import ConfigError


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error naming the key
    and both lines (plain `safe_load` silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges may be overridden by explicit keys
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line {first}); keep "
                    "one", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: where (line, column) and what."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = "; ".join(str(p) for p in (exc.context, exc.problem) if p)
        return f"{where}{what}"
    return " ".join(str(exc).split())


def parse_yaml(text: str, origin: str) -> Any:
    """YAML text parsed with duplicate keys as errors; a ConfigError names `origin`."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML at {_yaml_problem(exc)}") from None


def read_yaml_file(path: str | Path, what: str = "config") -> dict[str, Any]:
    """A YAML config file as a mapping: found, a regular file, UTF-8 text (not binary), valid
    YAML, no duplicate keys, a mapping at the top level (empty: {}); every failure a one-line
    ConfigError naming the file and what to do."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"{file}: is a folder, not a {what} file: pass the YAML file")
    if not file.exists():
        raise ConfigError(f"{file}: {what} file not found")
    if not file.is_file():
        raise ConfigError(f"{file}: not a regular file: pass the {what} as a YAML file")
    try:
        raw = file.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                          f"offset {exc.start}): save the {what} as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the {what} ({exc.strerror or exc})") from None
    if "\x00" in text:
        raise ConfigError(f"{file}: a binary file (NUL bytes at offset {text.index(chr(0))}), "
                          f"not a YAML {what}")
    loaded = parse_yaml(text.removeprefix("\ufeff"), str(file))
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{file}: expected a mapping (key: value) at the top level")
    return loaded or {}


def _parse_scalar(text: str, origin: str) -> Any:
    return parse_yaml(text, origin) if text.strip() else ""


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` override (value parsed as YAML) to a nested dict."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. synthesize.per_class=5")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = _parse_scalar(value, f"--set {assignment!r}")


def _key_path(assignment: str) -> tuple[str, ...]:
    return tuple(assignment.partition("=")[0].strip().split("."))


def _origin_of(loc: tuple[str, ...], origin: str | None, overrides: list[str]) -> str:
    """Where the value at `loc` came from: the last `--set` at or above it, else the file;
    a section-level problem below which `--set`s wrote names the file and those."""
    for assignment in reversed(overrides):
        key = _key_path(assignment)
        if loc[:len(key)] == key:
            return f"--set {assignment}"
    below = [f"--set {a}" for a in overrides if _key_path(a)[:len(loc)] == loc]
    sources = ([f"in {origin}"] if origin else []) + below
    return ", ".join(sources)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (directly, optional, in a list or a dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _walk(model: type[BaseModel] | None, loc: tuple[Any, ...]
          ) -> tuple[tuple[Any, ...], type[BaseModel] | None]:
    """(`loc` without pydantic's union tags, the model of the section it leads to): field
    names descend, list indices are kept, a name that is no field of the model there (a
    union member's tag such as `spec`) is dropped; outside the models everything is kept."""
    current, kept = model, []
    for part in loc:
        if isinstance(part, int) or current is None:
            kept.append(part)
        elif part in current.model_fields:
            kept.append(part)
            current = _model_in(current.model_fields[part].annotation)
    return tuple(kept), current


def _unknown_key(loc: tuple[Any, ...], model: type[BaseModel] | None,
                 prefix: tuple[str, ...], source: str) -> str:
    """`unknown key a.b (in FILE); did you mean a.c?` (the closest field at that level)."""
    parent, section = _walk(model, loc[:-1])
    fields = list(section.model_fields) if section is not None else []
    close = get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
    head = ".".join(str(p) for p in (*prefix, *parent))
    where = f"{head}.{loc[-1]}" if head else str(loc[-1])
    hint = f"; did you mean {head + '.' if head else ''}{close[0]}?" if close else ""
    return f"unknown key {where}" + (f" ({source})" if source else "") + hint


def format_validation(error: ValidationError, origin: str | None,
                      overrides: list[str] | None = None, model: type[BaseModel] | None = None,
                      prefix: tuple[str, ...] = ()) -> str:
    """Every problem of a validation error on one line, each naming its key and where its
    value came from (the file `origin` or a `--set` of `overrides`); an unknown key gets the
    closest field name of `model` at that level ("did you mean"). `prefix` is the path of
    the validated mapping inside the file (a benchmark's `run` sections)."""
    file = None if origin in (None, "defaults") else origin
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden" and loc:
            parent, _ = _walk(model, loc[:-1])
            loc = (*parent, loc[-1])
        else:
            loc, _ = _walk(model, loc)
        source = _origin_of(tuple(str(p) for p in (*prefix, *loc)), file, overrides or [])
        if item["type"] == "extra_forbidden" and loc:
            problems.append(_unknown_key(loc, model, prefix, source))
            continue
        where = ".".join(str(p) for p in (*prefix, *loc)) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}" + (f" ({source})" if source else "")
                        + f": {' '.join(message.split())}")
    return "invalid configuration: " + "; ".join(problems)
