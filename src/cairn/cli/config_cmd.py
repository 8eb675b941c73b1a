"""`cairn config show`: the effective configuration, secrets masked."""

import json
import sys

import click

from cairn.base.errors import ConfigError
from cairn.cli.options import config_options, load_from_options
from cairn.config import masked


@click.group()
def config() -> None:
    """Inspect configuration."""


@config.command("show")
@config_options
def show(**options: object) -> None:
    """Print the effective config (file < environment < flags) as JSON, secrets masked."""
    try:
        effective = load_from_options(options)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    sys.stdout.write(json.dumps(masked(effective), indent=2, sort_keys=True) + "\n")
