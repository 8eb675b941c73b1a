"""`cairn mb|rb|put|get|ls|rm`: buckets and objects from the shell, through the SDK.

Every command finds the cluster with `--cluster PATH` (or `$CAIRN_CLUSTER`, or
./cairn-local/cluster.json), prints results on stdout, progress bars on stderr (for
files of `PROGRESS_BYTES_MIN` or more), and turns every expected failure -- no cluster
file, no such bucket or key, a bad name, no gateway answering -- into one clear line
(`click.ClickException`, exit status 1).
"""

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cairn.base.errors import CairnError
from cairn.cli.output import stderr_console
from cairn.client.errors import CairnClientError
from cairn.client.sdk import CairnClient, ListedObject
from cairn.runtime.event_loop import run

T = TypeVar("T")
PROGRESS_BYTES_MIN = 8 << 20

cluster_option = click.option(
    "--cluster",
    "cluster_path",
    type=click.Path(),
    default=None,
    envvar="CAIRN_CLUSTER",
    help="cluster.json of the cluster (default: $CAIRN_CLUSTER, ./cairn-local/cluster.json).",
)


def _split(target: str, *, key_required: bool) -> tuple[str, str]:
    bucket, _, key = target.lstrip("/").partition("/")
    if not bucket:
        raise click.BadParameter(f"expected BUCKET/KEY, got {target!r}")
    if key_required and not key:
        raise click.BadParameter(f"expected BUCKET/KEY (with a key), got {target!r}")
    return bucket, key


def _call(cluster_path: str | None, work: Callable[[CairnClient], Awaitable[T]]) -> T:
    """Run `work` with a client; every expected failure becomes a one-line error."""

    async def main() -> T:
        async with CairnClient.from_cluster_file(cluster_path) as client:
            return await work(client)

    try:
        return run(main())
    except CairnClientError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    except CairnError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    if total is None or total < PROGRESS_BYTES_MIN:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr_console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda count: progress.advance(task, count)


@click.command("mb")
@click.argument("bucket")
@cluster_option
def make_bucket(bucket: str, cluster_path: str | None) -> None:
    """Make a bucket."""
    _call(cluster_path, lambda client: client.make_bucket(bucket))
    click.echo(f"made bucket {bucket}")


@click.command("rb")
@click.argument("bucket")
@cluster_option
def remove_bucket(bucket: str, cluster_path: str | None) -> None:
    """Remove an empty bucket."""
    _call(cluster_path, lambda client: client.remove_bucket(bucket))
    click.echo(f"removed bucket {bucket}")


@click.command("put")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.argument("target", metavar="BUCKET/KEY")
@click.option(
    "--consistency",
    type=click.Choice(["one", "quorum", "all"]),
    default=None,
    help="Write consistency of the chunks (default: the gateway's).",
)
@click.option("--content-type", default=None, help="Content-Type stored with the object.")
@cluster_option
def put(
    file: str,
    target: str,
    consistency: Any,
    content_type: str | None,
    cluster_path: str | None,
) -> None:
    """Upload FILE (`-` for stdin) as BUCKET/KEY."""
    bucket, key = _split(target, key_required=True)
    size = None if file == "-" else Path(file).stat().st_size
    with _progress(f"put {key}", size) as progress:

        async def work(client: CairnClient) -> Any:
            source: Any = file if file != "-" else _stdin_pieces()
            return await client.put(
                bucket,
                key,
                source,
                level=consistency,
                content_type=content_type,
                progress=progress,
            )

        result = _call(cluster_path, work)
    click.echo(
        f"put {bucket}/{key}: {result.size} bytes, etag {result.etag}, "
        f"{result.chunks} chunks ({result.new_chunks} new)"
    )


async def _stdin_pieces() -> AsyncIterator[bytes]:
    while piece := sys.stdin.buffer.read(1 << 20):
        yield piece


@click.command("get")
@click.argument("source", metavar="BUCKET/KEY")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@cluster_option
def get(source: str, file: str, cluster_path: str | None) -> None:
    """Download BUCKET/KEY into FILE (`-` for stdout)."""
    bucket, key = _split(source, key_required=True)

    async def work(client: CairnClient) -> None:
        info = await client.head(bucket, key)
        with _progress(f"get {key}", info.size) as progress:
            if file == "-":
                await client.get_to(bucket, key, sys.stdout.buffer, progress=progress)
                sys.stdout.buffer.flush()
            else:
                await client.get_to(bucket, key, file, progress=progress)

    _call(cluster_path, work)
    if file != "-":
        click.echo(f"got {bucket}/{key} -> {file}", err=True)


@click.command("ls")
@click.argument("target", required=False, metavar="[BUCKET[/PREFIX]]")
@click.option("-r", "--recursive", is_flag=True, help="List every key, not one level.")
@cluster_option
def list_command(target: str | None, recursive: bool, cluster_path: str | None) -> None:
    """List buckets, or the keys of a bucket (one level under PREFIX, or all with -r)."""
    if not target:
        buckets = _call(cluster_path, lambda client: client.list_buckets())
        for bucket_info in buckets:
            click.echo(bucket_info.name)
        return
    bucket, prefix = _split(target, key_required=False)
    delimiter = "" if recursive else "/"

    async def work(client: CairnClient) -> None:
        async for item in client.list(bucket, prefix, delimiter):
            if isinstance(item, ListedObject):
                click.echo(f"{item.size:>14}  {item.key}")
            else:
                click.echo(f"{'PRE':>14}  {item}")

    _call(cluster_path, work)


@click.command("rm")
@click.argument("target", metavar="BUCKET/KEY")
@cluster_option
def remove(target: str, cluster_path: str | None) -> None:
    """Delete BUCKET/KEY."""
    bucket, key = _split(target, key_required=True)
    deleted = _call(cluster_path, lambda client: client.delete(bucket, key))
    if not deleted:
        raise click.ClickException(f"NoSuchKey: {bucket}/{key} does not exist")
    click.echo(f"removed {bucket}/{key}")


OBJECT_COMMANDS = (make_bucket, remove_bucket, put, get, list_command, remove)
