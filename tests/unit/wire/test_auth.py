"""Challenge-response proofs: bound to both nonces, both ids and the secret."""

from cairn.wire import auth


def test_proofs_depend_on_every_input() -> None:
    key = auth.derive_auth_key("a-cluster-secret-of-length")
    base = auth.client_proof(key, b"s" * 32, b"c" * 32, "client", "server")
    variants = [
        auth.client_proof(
            auth.derive_auth_key("another-secret-entirely"),
            b"s" * 32,
            b"c" * 32,
            "client",
            "server",
        ),
        auth.client_proof(key, b"t" * 32, b"c" * 32, "client", "server"),
        auth.client_proof(key, b"s" * 32, b"d" * 32, "client", "server"),
        auth.client_proof(key, b"s" * 32, b"c" * 32, "other", "server"),
        auth.client_proof(key, b"s" * 32, b"c" * 32, "client", "other"),
        auth.server_proof(key, b"s" * 32, b"c" * 32, "client", "server"),
    ]
    assert all(not auth.proofs_match(base, v) for v in variants)
    assert auth.proofs_match(base, auth.client_proof(key, b"s" * 32, b"c" * 32, "client", "server"))
