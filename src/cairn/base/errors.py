"""The exception tree shared by every layer.

Expected operating errors (a peer is down, a deadline passed, a frame was garbage) are
typed subclasses of `CairnError` that callers catch and handle. Broken invariants are
`AssertionError`s and stop the process: they are bugs, not conditions to recover from.
"""


class CairnError(Exception):
    """Root of every error Cairn raises on purpose."""


class ConfigError(CairnError):
    """The configuration is invalid; the message names the field and the reason."""


class FrameError(CairnError):
    """A frame on the wire is malformed, oversized, truncated or fails its checksum."""


class AuthenticationError(CairnError):
    """A peer failed the challenge-response handshake (wrong or missing cluster secret)."""


class PeerUnavailable(CairnError):
    """A peer could not be reached, or the connection died while a call was in flight."""


class DeadlineExceeded(CairnError):
    """A call did not complete before its deadline."""


class RemoteError(CairnError):
    """The remote handler raised; `code` is a stable machine-readable name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
