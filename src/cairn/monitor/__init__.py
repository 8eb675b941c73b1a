"""Structured logging, the metrics registry and the admin HTTP endpoints of every role."""
