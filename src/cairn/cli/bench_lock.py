"""`cairn bench lock`."""

import click

from cairn.bench.lock import CASES, run_lock_bench
from cairn.cli.output import emit_json, print_table


@click.command("lock")
@click.option("--seconds", default=5.0, show_default=True, type=click.FloatRange(0.1, 600))
@click.option(
    "--peer",
    "peers",
    multiple=True,
    type=click.Choice(["etcd", "zookeeper", "none"]),
    default=("etcd", "zookeeper"),
    show_default=True,
    help="Peer systems to run in the same run (each skipped with a note if absent).",
)
@click.option(
    "--cases",
    default=",".join(CASES),
    show_default=True,
    help="Comma-separated workloads to run, of: " + ", ".join(CASES) + ".",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def bench_lock(seconds: float, peers: tuple[str, ...], cases: str, as_json: bool) -> None:
    """Lock cycles/s (one contended name, many free names), acquire latency and failover
    after kill -9 of a holder: Cairn, etcd 3.4 and ZooKeeper 3.8 (kazoo)."""
    chosen = tuple(p for p in peers if p != "none")
    picked = tuple(c.strip() for c in cases.split(",") if c.strip())
    unknown = sorted(set(picked) - set(CASES))
    if unknown or not picked:
        raise click.BadParameter(
            f"unknown {', '.join(unknown)}; choose from {', '.join(CASES)}"
            if unknown
            else "name at least one case",
            param_hint="--cases",
        )
    result = run_lock_bench(
        seconds, chosen, progress=lambda m: click.echo(m, err=True), cases=picked
    )
    click.echo(f"config: {result['config']}")
    rows = []
    for system in ("cairn", "etcd", "zookeeper"):
        data = result.get(system)
        if not data:
            continue
        if data.get("available") is False:
            rows.append([system, "-", "-", "-", "-", "-", data.get("reason", "absent")])
            continue
        failover = data.get("failover")
        for kind in ("contended", "uncontended"):
            if kind not in data:
                continue
            r = data[kind]
            rows.append([system, kind, r["clients"], r["cycles_per_s"], r["acquire_p50_ms"],
                         r["acquire_p99_ms"], r["errors"]])  # fmt: skip
        if failover is not None:
            rows.append([system, "failover s after kill", "", failover.get("after_kill_s", "-"),
                         "", "", failover.get("error", "")])  # fmt: skip
    print_table(
        "cairn bench lock",
        ["system", "workload", "clients", "cycles/s", "p50 ms", "p99 ms", "errors"],
        rows,
    )
    if result.get("ratios"):
        print_table("cairn / peer", ["measure", "ratio"], sorted(result["ratios"].items()))
    if as_json:
        emit_json(result)
