"""Peer systems that benchmarks compare Cairn with, started from Debian's packages on
loopback by the benchmark itself. Each reports clearly when it is not installed."""
