"""`cairn server`: run one node in the foreground."""

import click

from cairn.base.errors import CairnError, ConfigError
from cairn.cli.options import config_options, load_from_options
from cairn.gateway.process import run_server


@click.command()
@config_options
def server(**options: object) -> None:
    """Run a Cairn node (roles, addresses and seeds come from the config)."""
    try:
        config = load_from_options(options)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        run_server(config)
    except CairnError as exc:
        raise click.ClickException(str(exc)) from None
