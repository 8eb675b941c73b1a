"""Challenge-response authentication of peers on the cluster secret (mutual, pure).

Theory of operation
-------------------
The secret itself never crosses the wire. On connect the server sends a fresh 32-byte
nonce (HELLO). The client answers (AUTH) with its own nonce and
HMAC-SHA256(key, "client" | server nonce | client nonce | ids). The server checks it in
constant time and answers (AUTH_OK) with HMAC-SHA256(key, "server" | client nonce |
server nonce | ids), so the client knows the server holds the secret too. Fresh nonces on
both sides make a recorded exchange useless for a later connection. Until the server has
verified the client, any other frame closes the connection: no handler runs for a peer
without the secret. `key` is derived from the secret with a label, so the raw secret is
never used directly as an HMAC key (and could be rotated to a new derivation later).
"""

import hashlib
import hmac

NONCE_BYTES = 32
PROTOCOL = "cairn-rpc-1"
HANDSHAKE_SECONDS_MAX = 5.0  # both ends give up on a handshake that takes longer


def derive_auth_key(cluster_secret: str) -> bytes:
    """The HMAC key for peer authentication, derived from the cluster secret."""
    return hmac.new(
        cluster_secret.encode(), b"cairn wire authentication v1", hashlib.sha256
    ).digest()


def _transcript(
    role: bytes, first_nonce: bytes, second_nonce: bytes, client_id: str, server_id: str
) -> bytes:
    ids = f"{len(client_id)}:{client_id}|{len(server_id)}:{server_id}|{PROTOCOL}".encode()
    return b"|".join((role, first_nonce, second_nonce, ids))


def client_proof(
    key: bytes, server_nonce: bytes, client_nonce: bytes, client_id: str, server_id: str
) -> bytes:
    message = _transcript(b"client", server_nonce, client_nonce, client_id, server_id)
    return hmac.new(key, message, hashlib.sha256).digest()


def server_proof(
    key: bytes, server_nonce: bytes, client_nonce: bytes, client_id: str, server_id: str
) -> bytes:
    message = _transcript(b"server", client_nonce, server_nonce, client_id, server_id)
    return hmac.new(key, message, hashlib.sha256).digest()


def proofs_match(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(expected, received)
