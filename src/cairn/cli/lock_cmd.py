"""`cairn lock NAME -- COMMAND...` (run a command holding a lock, like flock) and
`cairn locks` (list holders and waiters).

`cairn lock` opens a session with `--ttl`, waits for the lock (FIFO, at most `--timeout`
seconds), then runs COMMAND with the fencing token in `$CAIRN_LOCK_TOKEN` (and the name
in `$CAIRN_LOCK_NAME`, the ready-made header value `name:token` in `$CAIRN_LOCK_FENCE`),
keeping the session alive while it runs. Exit status: COMMAND's; 1 when the lock was not
granted in time (as `flock -w`); 1 also when the lease was lost while COMMAND ran, in
which case COMMAND gets SIGTERM first: it can no longer assume it is alone, and its
fenced writes would be refused anyway. SIGINT/SIGTERM to `cairn lock` go to COMMAND.
"""

import asyncio
import os
import signal
import sys

import click

from cairn.base.errors import CairnError
from cairn.cli.output import emit_json, print_table
from cairn.client.locks import LockClient, LockTimeout
from cairn.runtime.event_loop import run

TOKEN_ENV = "CAIRN_LOCK_TOKEN"
NAME_ENV = "CAIRN_LOCK_NAME"
FENCE_ENV = "CAIRN_LOCK_FENCE"
TIMEOUT_EXIT_CODE = 1
LOST_EXIT_CODE = 1
TERM_GRACE_S = 5.0

cluster_option = click.option(
    "--cluster",
    type=click.Path(),
    default=None,
    help="cluster.json of the cluster (default: $CAIRN_CLUSTER, then ./cairn-local).",
)


async def _run_locked(
    cluster: str | None,
    name: str,
    shared: bool,
    timeout: float | None,
    ttl: float,
    command: tuple[str, ...],
) -> int:
    client = LockClient.from_cluster_file(cluster, ttl_s=ttl, label=f"cairn lock {name}")
    try:
        try:
            held = await client.acquire(name, shared=shared, timeout=timeout)
        except LockTimeout:
            click.echo(f"cairn lock: {name!r} not granted within {timeout} s", err=True)
            return TIMEOUT_EXIT_CODE
        env = dict(os.environ)
        env[TOKEN_ENV] = str(held.token)
        env[NAME_ENV] = name
        env[FENCE_ENV] = f"{name}:{held.token}"
        child = await asyncio.create_subprocess_exec(*command, env=env)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _forward, child, signum)
        done = asyncio.ensure_future(child.wait())
        lost = asyncio.ensure_future(held.lost.wait())
        await asyncio.wait({done, lost}, return_when=asyncio.FIRST_COMPLETED)
        if not done.done():
            click.echo(f"cairn lock: lease of {name!r} lost; stopping the command", err=True)
            _forward(child, signal.SIGTERM)
            try:
                async with asyncio.timeout(TERM_GRACE_S):
                    await done
            except TimeoutError:
                _forward(child, signal.SIGKILL)
                await done
            return LOST_EXIT_CODE
        lost.cancel()
        await held.release()
        return done.result()
    finally:
        await client.close()


def _forward(child: asyncio.subprocess.Process, signum: int) -> None:
    if child.returncode is None:
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--shared", is_flag=True, help="Take a shared (reader) lock.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Give up after this many seconds (0: only if free now). Default: wait.",
)
@click.option(
    "--ttl",
    type=click.FloatRange(0.2, 3600),
    default=10.0,
    show_default=True,
    help="Session lease: the lock passes on this long after this process dies.",
)
@cluster_option
def lock(
    name: str,
    command: tuple[str, ...],
    shared: bool,
    timeout: float | None,
    ttl: float,
    cluster: str | None,
) -> None:
    """Run COMMAND while holding the lock NAME (like flock): `cairn lock NAME -- COMMAND`."""
    try:
        code = run(_run_locked(cluster, name, shared, timeout, ttl, command))
    except CairnError as exc:
        raise click.ClickException(str(exc)) from None
    except FileNotFoundError as exc:
        raise click.ClickException(f"cannot run {command[0]!r}: {exc}") from None
    sys.exit(code)


async def _list(cluster: str | None, prefix: str, limit: int) -> dict[str, object]:
    client = LockClient.from_cluster_file(cluster)
    try:
        locks, sessions = await client.list_locks(prefix, limit)
    finally:
        await client.close()
    labels = {s.session_id: s.label for s in sessions}
    return {
        "locks": [
            {
                "name": info.name,
                "holders": [
                    {
                        "session": g.session_id,
                        "label": labels.get(g.session_id, ""),
                        "mode": g.mode,
                        "token": g.token,
                    }
                    for g in info.holders
                ],
                "waiters": [
                    {"session": w.session_id, "label": labels.get(w.session_id, ""), "mode": w.mode}
                    for w in info.waiters
                ],
            }
            for info in locks
        ],
        "sessions": [
            {
                "session": s.session_id,
                "label": s.label,
                "ttl_ms": s.ttl_ms,
                "held": s.held,
                "waiting": s.waiting,
            }
            for s in sessions
        ],
    }


@click.command()
@click.option("--prefix", default="", help="Only names that start with this.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
@cluster_option
def locks(prefix: str, limit: int, as_json: bool, cluster: str | None) -> None:
    """List locks in use: holders (with fencing tokens) and waiters in queue order."""
    try:
        result = run(_list(cluster, prefix, limit))
    except CairnError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        emit_json(result)
        return
    rows = []
    for info in result["locks"]:  # type: ignore[attr-defined]
        holders = ", ".join(
            f"{h['label'] or h['session']} ({h['mode']}, token {h['token']})"
            for h in info["holders"]
        )
        waiters = ", ".join(f"{w['label'] or w['session']} ({w['mode']})" for w in info["waiters"])
        rows.append([info["name"], holders, waiters or "-"])
    print_table("cairn locks", ["name", "holders", "waiters"], rows)
    if not rows:
        click.echo("no locks in use")
