"""The HTTP load balancer: proxying and health checks. Imports no storage layer."""
