"""Load a `CairnConfig` from layers: defaults < TOML file < environment < CLI flags.

Each layer is a flat-or-nested dict merged over the one below; the merged dict is
decoded once, so every error names the field it is about, whichever layer set it.
Environment variables are `CAIRN_<FIELD>` (`CAIRN_TLS__CERT_FILE` for nested fields);
their text is converted leniently ("3" -> 3, "true" -> True, "a,b" -> ["a", "b"]).
"""

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from cairn.base.errors import ConfigError
from cairn.config.model import CairnConfig

ENV_PREFIX = "CAIRN_"
LIST_FIELDS = frozenset({"roles", "seeds", "raft_peers"})


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    """Set target[path[0]][path[1]]... = value, creating the nested dicts."""
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _from_text(field: str, text: str) -> Any:
    if field in LIST_FIELDS:
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """The config fields set by `CAIRN_*` variables."""
    layer: dict[str, Any] = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "CAIRN_CONFIG":
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        set_path(layer, path, _from_text(path[-1], text))
    return layer


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """Parse a `--set field=value` flag (dots for nested fields: `tls.enabled=true`)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"--set expects field=value, got {text!r}")
    path = name.strip().split(".")
    return path, _from_text(path[-1], value)


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> CairnConfig:
    """Build the effective config; raise ConfigError naming the field and the reason."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    path = path or environ.get("CAIRN_CONFIG") or None
    if path is not None:
        try:
            with open(path, "rb") as file:
                data = tomllib.load(file)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    data = _merge(data, env_layer(environ))
    data = _merge(data, overrides or {})
    try:
        return msgspec.convert(data, CairnConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config: {_describe(exc)}") from None


def _describe(exc: msgspec.ValidationError) -> str:
    """Turn msgspec's "reason - at `$.field`" into "field: reason"."""
    message = str(exc)
    reason, sep, where = message.rpartition(" - at `")
    if not sep:
        return message
    field = where.rstrip("`").removeprefix("$").lstrip(".") or "(top level)"
    return f"{field}: {reason}"
