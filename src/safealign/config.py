"""Typed dataclass configs: YAML files (loaded safely), `key=value` overrides, validation.

A config is a dataclass whose fields carry `metadata={"help": ...}`. `load_config(Cls, path, overrides)`
reads the YAML (if any), applies each `a.b=value` override on top, and builds the dataclass, checking
every key and type on the way. Errors name the file or override and the key, never a traceback. A section
whose class names a SHORTHAND field may be given as one string, which sets that field (`judges=DIR`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from safealign.data.sources import PREFERENCES, schema_of
from safealign.errors import SafeAlignError
from safealign.io import read_yaml

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass
class SplitConfig:
    train: float = field(default=0.8, metadata={"help": "share of pairs in the train split"})
    dev: float = field(default=0.1, metadata={"help": "share of pairs in the dev split"})
    test: float = field(default=0.1, metadata={"help": "share of pairs in the test split"})

    def __post_init__(self):
        shares = (self.train, self.dev, self.test)
        if any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
            raise SafeAlignError(f"split shares must be >= 0 and sum to 1, got train={self.train} "
                                 f"dev={self.dev} test={self.test}")


@dataclass
class DataConfig:
    source: str = field(default="embedded", metadata={
        "help": "'embedded' (2,312 real HH-RLHF harmless-base pairs shipped in the package), a hub id "
                "with a data_dir ('Anthropic/hh-rlhf:harmless-base'), or a local .jsonl/.jsonl.gz/.json"})
    split: SplitConfig = field(default_factory=SplitConfig, metadata={"help": "train/dev/test shares"})
    seed: int = field(default=0, metadata={"help": "salt of the content hash that assigns splits"})
    skip_bad: Union[bool, None] = field(default=None, metadata={
        "help": "skip bad rows and report them; None: skip for 'embedded' (its 9 known bad rows are "
                "listed in the manifest), stop at the first bad row for any other source"})
    max_pairs: Union[int, None] = field(default=None, metadata={
        "help": "keep at most this many parsed pairs (first in file order); None keeps all"})
    taxonomy: str = field(default="default", metadata={
        "help": "harm taxonomy YAML: 'default' (the versioned one in the package) or a path"})
    schema: str = field(default="auto", metadata={
        "help": "the source's row schema: hh, pku_saferlhf, beavertails (auto: by hub id, e.g. "
                "PKU-Alignment/PKU-SafeRLHF, PKU-Alignment/BeaverTails; else hh)"})
    preference: str = field(default="safer", metadata={
        "help": "pku_saferlhf: which response is chosen: safer (cost model's preference) or better (reward model's)"})

    def __post_init__(self):
        if self.max_pairs is not None and self.max_pairs < 1:
            raise SafeAlignError(f"data.max_pairs must be >= 1 or null, got {self.max_pairs}")
        schema_of(self.source, self.schema)
        if self.preference not in PREFERENCES:
            raise SafeAlignError(f"data.preference must be safer or better, got '{self.preference}'")


# --------------------------------------------------------------------------- loading


def load_config(cls, path: str | Path | None = None, overrides: list[str] | tuple = (), data: dict | None = None):
    """Build `cls` from a YAML file (optional; or its `data`, already read and prepared) and `key=value`
    overrides (applied in order)."""
    data = _expand_shorthands(cls, data if data is not None else _read_yaml(path) if path else {})
    for override in overrides:
        key, value = _split_override(override)
        where = f"override '{override}'"
        tp = _field_type(cls, key.split("."), where)
        if getattr(tp, "SHORTHAND", None) and not str(value).lstrip().startswith("{"):  # judges=DIR
            key, tp = f"{key}.{tp.SHORTHAND}", _field_type(cls, key.split(".") + [tp.SHORTHAND], where)
        value = _coerce(tp, _RawOverride(value), where, key)
        _set_dotted(data, key.split("."), value, where=where)
    where = str(path) if path else "config"
    return from_dict(cls, data, where=f"{where} with overrides" if overrides else where)


def _expand_shorthands(cls, data):
    """A section written as one string in YAML (`judges: DIR`) as the mapping it stands for."""
    if not isinstance(data, dict) or not dataclasses.is_dataclass(cls):
        return data
    hints = typing.get_type_hints(cls)
    for key, value in list(data.items()):
        tp = hints.get(key)
        if dataclasses.is_dataclass(tp):
            data[key] = ({tp.SHORTHAND: value} if isinstance(value, str) and getattr(tp, "SHORTHAND", None)
                         else _expand_shorthands(tp, value))
    return data


def _field_type(cls, keys: list[str], where: str):
    """The declared type of the field at dotted `keys` of dataclass `cls`."""
    for depth, key in enumerate(keys):
        hints = typing.get_type_hints(cls)
        if key not in hints:
            known = ", ".join(".".join(keys[:depth] + [k]) for k in hints)
            raise SafeAlignError(f"{where}: unknown key '{'.'.join(keys[:depth + 1])}' (known: {known})")
        tp = hints[key]
        if depth < len(keys) - 1:
            if not dataclasses.is_dataclass(tp):
                raise SafeAlignError(f"{where}: '{'.'.join(keys[:depth + 1])}' is not a section")
            cls = tp
    return tp


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def dump_yaml(config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


class _RawOverride(str):
    """A command-line value: coerced by the field's type, YAML-parsed only where the type needs it."""


def _read_yaml(path) -> dict:
    data = read_yaml(path, "config")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SafeAlignError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def _split_override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise SafeAlignError(f"override '{text}': expected key=value, e.g. data.seed=1")
    return key.strip(), value


def _set_dotted(data: dict, keys: list[str], value, where: str):
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise SafeAlignError(f"{where}: '{key}' is not a section")
        node = child
    node[keys[-1]] = value


def from_dict(cls, data: dict, where: str, prefix: str = ""):
    if not isinstance(data, dict):
        raise SafeAlignError(f"{where}: '{prefix.rstrip('.') or 'config'}' must be a mapping")
    data = _expand_shorthands(cls, data)  # e.g. a saved run's `judges: DIR`
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SafeAlignError(f"{where}: unknown key '{prefix}{unknown[0]}' "
                             f"(known: {', '.join(prefix + k for k in fields)})")
    kwargs = {name: _coerce(hints[name], value, where, f"{prefix}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except SafeAlignError as e:
        raise SafeAlignError(f"{where}: {e}") from None


def _coerce(tp, value, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None or (isinstance(value, _RawOverride) and value.strip().lower() in ("null", "none")):
            if type(None) in options:
                return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(option, value, where, key)
            except SafeAlignError as e:
                errors.append(str(e))
        raise SafeAlignError(errors[0] if errors else f"{where}: '{key}' must not be null")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, _RawOverride):
            value = _yaml_value(value, where, key)
        return from_dict(tp, value, where, prefix=f"{key}.")
    if origin is list:
        if isinstance(value, _RawOverride):
            value = _yaml_value(value, where, key)
        if not isinstance(value, list):
            raise SafeAlignError(f"{where}: '{key}' must be a list, got {value!r}")
        (item_type,) = typing.get_args(tp) or (Any,)
        return [_coerce(item_type, v, where, f"{key}[{i}]") for i, v in enumerate(value)]
    return _coerce_scalar(tp, value, where, key)


def _coerce_scalar(tp, value, where: str, key: str):
    raw = isinstance(value, _RawOverride)
    if typing.get_origin(tp) is typing.Literal:
        choices = typing.get_args(tp)
        chosen = value.strip() if raw else value
        if chosen in choices:
            return str(chosen)
        raise SafeAlignError(f"{where}: '{key}' must be one of {', '.join(map(str, choices))}, got {str(value)!r}")
    if tp is Any:
        return _yaml_value(value, where, key) if raw else value
    if tp is bool:
        if raw and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, bool):
            return value
    elif tp is int:
        if raw:
            try:
                return int(value.strip())
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if raw:
            try:
                return float(value.strip())
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return str(value)
    else:
        raise SafeAlignError(f"{where}: '{key}' has a type this loader does not know: {tp}")
    raise SafeAlignError(f"{where}: '{key}' must be {tp.__name__}, got {str(value)!r}")


def _yaml_value(value: str, where: str, key: str):
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        raise SafeAlignError(f"{where}: '{key}' value {value!r} is not valid YAML") from None


def describe(cls, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) for every field, nested sections flattened: for `--help` texts."""
    rows = []
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            rows += describe(hint, prefix=f"{prefix}{f.name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((prefix + f.name, repr(default), f.metadata.get("help", "")))
    return rows
