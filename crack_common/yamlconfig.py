"""Configuration as nested dataclasses read from YAML: defaults, then a file, then
KEY=VALUE overrides; every unknown key or ill-typed value fails naming the key.
Shared by crack-distill and crack-car.

The dataclasses hold the defaults and the docs (a comment per field); each value is
checked against its field's real annotation by pydantic (v2, lax mode: whole numbers are
floats where floats are asked, 2947.0 is the port 2947, "1e-3" is a number), and an
unknown key gets a did-you-mean. `json_schema(cls)` gives the JSON schema for editors."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import typing
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypeVar

import yaml

from crack_common.values import bracket_depth

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key or value that is not allowed (secrets in the text masked)."""

    def __init__(self, message: str):
        from crack_common.redact import redact_text
        super().__init__(redact_text(message))


def _shown(key: str, value: Any) -> str:
    """A value as an error message shows it: masked under a secret-named key."""
    from crack_common.redact import MASK, SECRET_KEYS
    return MASK if SECRET_KEYS.search(key) else repr(value)


@functools.cache
def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _adapter(hint: Any) -> Any:
    from pydantic import TypeAdapter
    return TypeAdapter(hint)


def _expected(hint: Any) -> str:
    """A reader's name for an annotation: 'a list of numbers', 'a number or a word'."""
    text = str(hint).replace("typing.", "")
    words = {"float": "a number", "int": "a whole number", "str": "a word", "bool":
             "true or false"}
    for k, v in words.items():
        if text == k or text == f"<class '{k}'>":
            return v
    if text.startswith("List["):
        inner = text[5:-1]
        return "a list of " + {"float": "numbers", "int": "whole numbers",
                               "str": "words"}.get(inner, inner)
    if text.startswith("Optional["):
        return _expected(hint.__args__[0]) + " or null"
    if text.startswith("Union[float, str]"):
        return "a number or a word"
    return text


def _check_type(key: str, value: Any, hint: Any) -> Any:
    """The value coerced to the field's type, or ConfigError naming key, value and type."""
    from pydantic import ValidationError
    try:
        return _adapter(hint).validate_python(value)
    except ValidationError:
        raise ConfigError(f"{key}: expected {_expected(hint)}, got {_shown(key, value)}"
                          ) from None


def json_schema(cls: type, example: Optional[str] = None) -> Dict[str, Any]:
    """The JSON schema of a configuration dataclass (for editors and validators); with
    the text of a commented example config, each key's comment becomes its description
    (the example is where the keys are documented, so the two cannot drift apart)."""
    schema = _adapter(cls).json_schema()
    if example:
        _describe(schema, schema, example_comments(example), "")
    return schema


def example_comments(text: str) -> Dict[str, str]:
    """{dotted key: its comment} of a commented YAML example: the text after '#' on the
    key's line, joined with the comment-only lines indented under it."""
    out: Dict[str, str] = {}
    path: List[Tuple[int, str]] = []
    last = ""
    for line in text.splitlines():
        body = line.split("#", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        m = re.match(r"^( *)([A-Za-z_][\w-]*):", body)
        if m:
            indent = len(m.group(1))
            path = [(i, k) for i, k in path if i < indent] + [(indent, m.group(2))]
            last = ".".join(k for _, k in path)
            if comment:
                out[last] = comment
        elif not body and comment and last and line.startswith(" "):
            out[last] = f"{out.get(last, '')} {comment}".strip()
        elif not line.strip():
            last = ""
    return out


def _describe(node: Dict[str, Any], root: Dict[str, Any], notes: Dict[str, str],
              prefix: str) -> None:
    """Set `description` on every property that has a note, following $refs."""
    for name, prop in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        if key in notes:
            prop["description"] = notes[key]
        ref = prop.get("$ref") or next((a["$ref"] for a in prop.get("anyOf", [])
                                        if "$ref" in a), None)
        if ref:
            target = root.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {})
            _describe(target, root, notes, f"{key}.")


def merge_into(obj: Any, data: Any, prefix: str = "") -> None:
    """Set the fields of a dataclass tree from a nested mapping, checking names and types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    hints = _hints(type(obj))
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean {prefix + close[0]!r}? " if close else ""
            raise ConfigError(f"unknown config key {name!r}; {hint}expected one of "
                              f"{', '.join(prefix + k for k in fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            merge_into(current, value, name + ".")
        else:
            setattr(obj, key, _check_type(name, value, hints[key]))


def parse_override(text: str) -> Dict[str, Any]:
    """'train.epochs=5' -> {'train': {'epochs': 5}} (the value read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE such as train.epochs=5")
    key, raw = text.split("=", 1)
    value: Any = yaml.safe_load(raw) if raw != "" else ""
    out: Dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml's safe loader, refusing a key given twice in one mapping (plain YAML keeps the
    last silently: a second `motors:` further down would win unseen)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen: Dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"the key {key!r} is given twice (first on line "
                    f"{seen[key].line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


MAX_DEPTH = 50  # nesting a config may have; deeper is no config (and would exhaust recursion)


def _depth(text: str) -> int:
    """The deepest bracket or indentation nesting of a YAML text, found without parsing."""
    indents = {len(line) - len(line.lstrip(" ")) for line in text.splitlines() if line.strip()}
    return max(bracket_depth(text), len(indents))


def read_yaml(path: Path) -> Dict[str, Any]:
    try:
        text = Path(path).read_text()
        if _depth(text) > MAX_DEPTH:
            raise ConfigError(f"{path}: nested more than {MAX_DEPTH} levels deep; not a "
                              "config")
        data = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read; not a config") from None
    return data


def load(cls: type, path: Optional[Path] = None,
         overrides: Sequence[Dict[str, Any]] = ()) -> Any:
    """An instance of dataclass `cls`: defaults <- YAML file <- each override mapping."""
    cfg = cls()
    if path is not None:
        merge_into(cfg, read_yaml(path))
    for o in overrides:
        merge_into(cfg, o)
    return cfg


def need(ok: bool, key: str, what: str, value: Any) -> None:
    """Raise ConfigError('KEY: WHAT, got VALUE') unless ok."""
    if not ok:
        raise ConfigError(f"{key}: {what}, got {_shown(key, value)}")
