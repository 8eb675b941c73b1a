"""Structured logging, the metrics registry and the admin HTTP endpoints of every role."""

from cairn.monitor.admin_http import AdminServer, HealthCheck
from cairn.monitor.logs import bind_node, bind_request, configure_logging, log_event
from cairn.monitor.metrics import REGISTRY, render_metrics

__all__ = [
    "REGISTRY",
    "AdminServer",
    "HealthCheck",
    "bind_node",
    "bind_request",
    "configure_logging",
    "log_event",
    "render_metrics",
]
