"""Typed job configs: a dataclass per job, turned into argparse flags and read from config files.

Each job declares one frozen dataclass whose fields are its settings, with the default and a
one-line help in the field (`setting(default, "help")`). From it this module builds the argparse
flags (`--image-size`, `--no-use-gpu`, ...), merges an optional `--config FILE` (TOML or JSON)
under the command line, and returns the typed config. So a default lives in exactly one place,
every setting is a flag, and the resolved config can be saved as plain JSON (`to_dict`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = ["URI_KINDS", "setting", "uri_settings", "add_arguments", "from_namespace", "parse_config", "to_dict",
           "load_config_file"]

C = TypeVar("C")


URI_KINDS = ("input", "output", "tracking")


def setting(default: Any, help: str, *, uri: str | None = None, **kwargs: Any) -> Any:
    """A dataclass field with a default and a help line (lists and dicts get a factory).

    `uri` marks a setting that holds URIs: "input" (read), "output" (written) or "tracking" (an
    MLflow store). Redaction tests and the multi-node preflight find these settings by it.
    """
    if uri is not None:
        if uri not in URI_KINDS:
            raise ValueError(f"uri must be one of {URI_KINDS}, got {uri!r}")
        kwargs["uri"] = uri
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help, **kwargs})
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> argparse.ArgumentParser:
    """Add one flag per field of dataclass `cls`, plus `--config FILE`. Defaults stay unset so
    that a config file can supply them; `from_namespace` fills the rest from the dataclass."""
    hints = typing.get_type_hints(cls)
    parser.add_argument("--config", type=Path, default=None, help="TOML or JSON file of settings; flags override it")
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        tp, optional = _unwrap_optional(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        # argparse %-formats help strings: a literal "%" in a help line must reach it doubled.
        help_text = f"{field.metadata.get('help', '')} (default: {default!r})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS, "help": help_text}
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kwargs["choices"] = typing.get_args(tp)
            kwargs["type"] = type(typing.get_args(tp)[0])
        elif origin in (list, tuple):
            kwargs["nargs"] = "*" if optional else "+"
            kwargs["type"] = typing.get_args(tp)[0]
        elif tp in (int, float, str, Path):
            kwargs["type"] = tp
        else:
            raise TypeError(f"{cls.__name__}.{field.name}: unsupported setting type {tp!r}")
        parser.add_argument(_flag(field.name), **kwargs)
    return parser


def load_config_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML or JSON file, keys in snake_case or kebab-case."""
    text = Path(path).read_text()
    data = json.loads(text) if Path(path).suffix == ".json" else tomllib.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a table of settings")
    return {key.replace("-", "_"): value for key, value in data.items()}


def from_namespace(cls: type[C], namespace: argparse.Namespace, defaults: dict[str, Any] | None = None) -> C:
    """The typed config: dataclass defaults, then `defaults` (e.g. a job's demo profile), then
    the config file, then the command line."""
    values: dict[str, Any] = dict(defaults or {})
    config_path = getattr(namespace, "config", None)
    if config_path is not None:
        values.update(load_config_file(config_path))
    values.update({k: v for k, v in vars(namespace).items() if k != "config"})
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**{k: v for k, v in values.items() if k in names})


def parse_config(cls: type[C], argv: list[str] | None = None, description: str | None = None) -> C:
    """Parse `argv` into a `cls` config (the usual body of a job's `main`)."""
    parser = add_arguments(argparse.ArgumentParser(description=description), cls)
    return from_namespace(cls, parser.parse_args(argv))


def uri_settings(cls: type) -> dict[str, str]:
    """{setting name: uri kind} of the URI settings of config dataclass `cls` (see `setting`)."""
    return {f.name: f.metadata["uri"] for f in dataclasses.fields(cls) if f.metadata.get("uri")}


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (paths as strings)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))
