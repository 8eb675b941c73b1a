"""`cairn bench balance`: every request strategy on simulated backends of unequal speed,
one slow and one failing for a while (the workload is `cairn.bench.balance`)."""

import click

from cairn.balancing import STRATEGY_NAMES
from cairn.bench import balance
from cairn.cli.output import emit_json, print_table, stderr_console


@click.command("balance")
@click.option(
    "--duration",
    "duration_s",
    type=float,
    default=balance.DEFAULT_DURATION_S,
    show_default=True,
    help="Virtual seconds to simulate per strategy.",
)
@click.option(
    "--rate",
    "rate_per_s",
    type=float,
    default=balance.DEFAULT_RATE_PER_S,
    show_default=True,
    help="Mean request arrivals per virtual second.",
)
@click.option("--seed", type=int, default=balance.DEFAULT_SEED, show_default=True)
@click.option(
    "--strategies",
    "strategies_text",
    default=",".join(STRATEGY_NAMES),
    show_default=True,
    help="Comma-separated strategy names.",
)
@click.option(
    "--no-ejection", is_flag=True, help="Turn passive outlier ejection off, for comparison."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def bench_balance(
    duration_s: float,
    rate_per_s: float,
    seed: int,
    strategies_text: str,
    no_ejection: bool,
    as_json: bool,
) -> None:
    """Simulated share, p50/p99 latency and failures of each load-balancing strategy."""
    strategies = tuple(s.strip() for s in strategies_text.split(",") if s.strip())
    try:
        result = balance.run(
            strategies=strategies,
            duration_s=duration_s,
            rate_per_s=rate_per_s,
            seed=seed,
            ejection=not no_ejection,
            progress=lambda line: stderr_console.print(f"[dim]{line}[/dim]"),
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    names = [b["name"] for b in result["config"]["backends"]]
    print_table(
        f"balance: {duration_s:g} s at {rate_per_s:g} req/s, seed {seed}"
        f"{', no ejection' if no_ejection else ''}; latency of successful requests",
        (
            "strategy",
            *(f"share {n}" for n in names),
            "p50 ms",
            "p99 ms",
            "failed",
            "ejections",
        ),
        [
            (
                name,
                *(figures["share"][n] for n in names),
                figures["p50_ms"],
                figures["p99_ms"],
                figures["failed_fraction"],
                figures["ejections"],
            )
            for name, figures in result["strategies"].items()
        ],
    )
    if as_json:
        emit_json(result)
