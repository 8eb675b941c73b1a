"""`cairn sim ...`: deterministic simulations. Each takes `--seeds N --json`."""

import click

from cairn.cli.sim_raft import sim_raft


@click.group()
def sim() -> None:
    """Run seeded, replayable simulations with faults and check every run."""


sim.add_command(sim_raft)
