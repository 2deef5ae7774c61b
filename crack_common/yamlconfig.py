"""Configuration as nested dataclasses read from YAML: defaults, then a file, then
KEY=VALUE overrides; every unknown key or ill-typed value fails naming the key.
Shared by crack-distill and crack-car (PyYAML only)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, TypeVar

import yaml

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


def _check_type(key: str, value: Any, default: Any, hint: str) -> Any:
    if "Optional" in hint and value is None:
        return None
    if hint.startswith("Union[float, str]"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a number or a word, got {value!r}")
    base = type(default) if default is not None else (
        str if "str" in hint else int if "int" in hint else float if "float" in hint else dict)
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if base is list:
        item = int if "List[int]" in hint else float if "List[float]" in hint else str
        if not isinstance(value, list) or not all(
                isinstance(v, item) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{key}: expected a list of {item.__name__}, got {value!r}")
        return value
    if base is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value
    if not isinstance(value, base) or (isinstance(value, bool) and base is not bool):
        raise ConfigError(f"{key}: expected {base.__name__}, got {_shown(key, value)}")
    return value


def merge_into(obj: Any, data: Any, prefix: str = "") -> None:
    """Set the fields of a dataclass tree from a nested mapping, checking names and types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"unknown config key {name!r}; expected one of "
                              f"{', '.join(prefix + k for k in fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            merge_into(current, value, name + ".")
        else:
            setattr(obj, key, _check_type(name, value, current, str(fields[key].type)))


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


def read_yaml(path: Path) -> Dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
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
