"""Deterministic simulation: virtual clock, network and disk with faults; drives raft and meta."""
