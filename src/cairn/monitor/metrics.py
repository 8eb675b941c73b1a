"""The process-wide Prometheus registry.

Metrics are declared next to the code that updates them, against this registry, with
names prefixed `cairn_` and units last (`cairn_rpc_call_seconds`). One registry per
process: tests that run several servers in one process see summed figures, which is
what a scrape of that process would show.
"""

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest

disable_created_metrics()  # type: ignore[no-untyped-call] # `*_created` series double the output and nobody graphs them
REGISTRY = CollectorRegistry(auto_describe=True)


def render_metrics() -> bytes:
    """The registry in Prometheus text exposition format."""
    return generate_latest(REGISTRY)


__all__ = ["REGISTRY", "render_metrics"]
