"""`cairn gc`: one mark-and-sweep round over the whole cluster, now.

The root leader also runs a round every `gc_interval_s`; this command is for operators
(and tests) who want one at a chosen moment. `--grace` defaults to the cluster's
`gc_grace_s` default; lowering it is only safe when no upload is in flight.

One round runs at a time in the whole cluster (the lock `cairn/gc`): when another is
running, the command says so and exits 1, or waits up to `--wait` seconds for it to end.
"""

import dataclasses
import os

import click

from cairn.base.errors import CairnError
from cairn.cli.output import emit_json, print_table
from cairn.client.cluster_file import load_cluster_file
from cairn.config.model import CairnConfig
from cairn.node.gc_coordinator import GcReport, collect_garbage
from cairn.node.meta_client import MetaClient
from cairn.runtime.event_loop import run
from cairn.wire import RpcPool, derive_auth_key


async def _collect(cluster: str | None, grace: float, dry_run: bool, wait: float) -> GcReport:
    found = load_cluster_file(cluster)
    pool = RpcPool("cairn-gc", derive_auth_key(found.secret))
    try:
        meta = MetaClient(pool, found.meta_addresses)
        label = f"cairn gc (pid {os.getpid()})"
        return await collect_garbage(pool, meta, grace, dry_run=dry_run, wait_s=wait, label=label)
    finally:
        await pool.close()


@click.command()
@click.option("--cluster", type=click.Path(), default=None, help="cluster.json of the cluster.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=CairnConfig().gc_grace_s,
    show_default=True,
    help="Keep unreferenced chunks touched within this many seconds.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for a GC round already running to end (0: refuse at once).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def gc(cluster: str | None, grace: float, wait: float, dry_run: bool, as_json: bool) -> None:
    """Delete chunks that no object references (mark and sweep)."""
    try:
        report = run(_collect(cluster, grace, dry_run, wait))
    except CairnError as exc:
        raise click.ClickException(str(exc)) from None
    result = dataclasses.asdict(report)
    if as_json:
        emit_json(result)
        return
    rows = [[k, v] for k, v in result.items() if k != "skipped"]
    rows += [[f"skipped {name}", why] for name, why in report.skipped.items()]
    print_table("cairn gc" + (" (dry run)" if dry_run else ""), ["", "value"], rows)
