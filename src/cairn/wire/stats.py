"""Metrics of the RPC layer."""

from prometheus_client import Counter, Histogram

from cairn.monitor.metrics import REGISTRY

FRAMES_REJECTED = Counter(
    "cairn_rpc_connections_rejected",
    "Connections closed because the peer broke the protocol, by reason.",
    ["reason"],
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "cairn_rpc_auth_failures", "Peers refused by challenge-response.", registry=REGISTRY
)
CALLS_SERVED = Counter(
    "cairn_rpc_calls_served",
    "Requests handled by this server, by method and outcome.",
    ["method", "outcome"],
    registry=REGISTRY,
)
CALL_SECONDS = Histogram(
    "cairn_rpc_call_seconds",
    "Client-side call latency by method.",
    ["method"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
