"""`cairn sim raft`: run seeded Raft KV simulations under faults and check every run."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import click

from cairn.cli.output import emit_json, stderr_console
from cairn.sim.raft_runner import SimParams, run_seed

MAX_SEEDS = 10_000_000
MAX_REPORTED_FAILURES = 20


@click.command("raft")
@click.option("--seeds", type=click.IntRange(1, MAX_SEEDS), default=100, show_default=True)
@click.option("--start-seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--seed", "one_seed", type=click.IntRange(0), default=None, help="Replay one seed.")
@click.option("--no-faults", is_flag=True, help="Run without network faults and crashes.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object last.")
def sim_raft(
    seeds: int, start_seed: int, one_seed: int | None, no_faults: bool, as_json: bool
) -> None:
    """Simulate a Raft KV cluster with faults; check safety, liveness and linearizability.

    A failing run prints its seed; `cairn sim raft --seed N` replays it exactly.
    """
    params = SimParams(faults=not no_faults)
    if one_seed is not None:
        start_seed, seeds = one_seed, 1
    began = time.monotonic()
    totals: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    runs = ops = indeterminate = violations = unknown = 0
    for seed in range(start_seed, start_seed + seeds):
        result = run_seed(seed, params)
        runs += 1
        ops += result.ops_checked
        indeterminate += result.ops_indeterminate
        unknown += result.unknown_keys
        totals.update(result.counters)
        if result.violations:
            violations += len(result.violations)
            if len(failures) < MAX_REPORTED_FAILURES:
                failures.append({"seed": seed, "violations": result.violations})
            print(f"seed {seed} FAILED: {result.violations}", file=sys.stderr)
        if runs % 500 == 0 or runs == seeds:
            stderr_console.print(
                f"{runs}/{seeds} runs, {ops} ops checked, {violations} violations "
                f"({time.monotonic() - began:.1f} s)"
            )
    summary: dict[str, Any] = {
        "runs": runs,
        "start_seed": start_seed,
        "operations_checked": ops,
        "operations_indeterminate": indeterminate,
        "violations": violations,
        "failed_seeds": [f["seed"] for f in failures],
        "failures": failures,
        "checker_unknown_keys": unknown,
        "elapsed_s": round(time.monotonic() - began, 3),
        "core_counters": dict(sorted(totals.items())),
    }
    if one_seed is not None:
        summary["trace_hash"] = result.trace_hash
    if as_json:
        emit_json(summary)
    else:
        click.echo(
            f"{runs} runs, {ops} operations checked ({indeterminate} indeterminate), "
            f"{violations} violations"
        )
    if violations:
        sys.exit(1)
