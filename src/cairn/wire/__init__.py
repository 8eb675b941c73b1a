"""Framed, authenticated RPC over TCP/TLS shared by every node process."""
