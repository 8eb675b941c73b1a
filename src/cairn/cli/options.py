"""Config flags shared by every command that builds a `CairnConfig`.

`--config FILE` picks the TOML file; a few common fields have their own flags; any field
can be set with `--set field=value` (dots for nested fields). Flags beat environment
variables, which beat the file.
"""

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from cairn.config import CairnConfig, load_config, parse_assignment, set_path

F = TypeVar("F", bound=Callable[..., Any])

_FIELD_FLAGS: dict[str, str] = {
    "node_id": "--node-id",
    "data_dir": "--data-dir",
    "rpc_listen": "--rpc-listen",
    "admin_listen": "--admin-listen",
    "s3_listen": "--s3-listen",
}


def config_options(func: F) -> F:
    """Add `--config`, the common field flags and `--set` to a click command."""
    func = click.option(
        "--set",
        "assignments",
        multiple=True,
        metavar="FIELD=VALUE",
        help="Set any config field (repeatable), e.g. --set replication_factor=2.",
    )(func)
    for field, flag in reversed(_FIELD_FLAGS.items()):
        func = click.option(flag, field, default=None, help=f"Config field {field}.")(func)
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="TOML config file (default: $CAIRN_CONFIG).",
    )(func)
    return func


def load_from_options(options: Mapping[str, Any]) -> CairnConfig:
    """Build the effective config from the values `config_options` collected."""
    overrides: dict[str, Any] = {}
    for assignment in options.get("assignments") or ():
        path, value = parse_assignment(assignment)
        set_path(overrides, path, value)
    for field in _FIELD_FLAGS:
        if options.get(field) is not None:
            overrides[field] = options[field]
    return load_config(options.get("config_path"), overrides=overrides)
