"""The Python SDK: objects, locks, admin, cluster-aware routing."""
