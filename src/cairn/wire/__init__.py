"""Framed, authenticated RPC over TCP/TLS shared by every node process."""

from cairn.wire.auth import derive_auth_key
from cairn.wire.client import RpcConnection
from cairn.wire.frames import BODY_BYTES_MAX, PAYLOAD_BYTES_MAX, FrameDecoder, FrameKind
from cairn.wire.messages import Ping, Pong
from cairn.wire.pool import RpcPool
from cairn.wire.server import CallContext, Reply, Router, RpcServer, ping_handler
from cairn.wire.tls import CertFiles, client_context, make_certificates, server_context

__all__ = [
    "BODY_BYTES_MAX",
    "PAYLOAD_BYTES_MAX",
    "CallContext",
    "CertFiles",
    "FrameDecoder",
    "FrameKind",
    "Ping",
    "Pong",
    "Reply",
    "Router",
    "RpcConnection",
    "RpcPool",
    "RpcServer",
    "client_context",
    "derive_auth_key",
    "make_certificates",
    "ping_handler",
    "server_context",
]
