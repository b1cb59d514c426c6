"""Reading config files: YAML that refuses duplicate keys, `--set` overrides, and
validation errors on one line. Shared by run, benchmark and serve configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

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
    """A YAML config file as a mapping: found, UTF-8, valid YAML, no duplicate keys, a
    mapping at the top level (empty: {}); every failure a one-line ConfigError."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: {what} file not found")
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                          f"offset {exc.start}): save the {what} as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the {what} ({exc.strerror or exc})") from None
    loaded = parse_yaml(text, str(file))
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


def format_validation(error: ValidationError, origin: str) -> str:
    """Every problem of a validation error on one line: `origin: invalid configuration:
    key: message; key: message`."""
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {' '.join(message.split())}")
    return f"{origin}: invalid configuration: " + "; ".join(problems)
