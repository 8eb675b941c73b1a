"""`cairn sim ...`: deterministic simulations. Each takes `--seeds N --json`."""

import click


@click.group()
def sim() -> None:
    """Run seeded, replayable simulations with faults and check every run."""
