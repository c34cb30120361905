"""Exception types raised by the protocol core.

Every failure the protocol layer reports derives from :class:`ProtocolError`, so that the room
engine can tell "this input breaks a Matrix rule" apart from a programming error.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class: the input violates a rule of the Matrix specification."""


class InvalidEventError(ProtocolError):
    """The event does not have the format its room version requires (dropped on receipt)."""


class EventTooLargeError(InvalidEventError):
    """The PDU exceeds the 65536-byte limit (clients get 413 M_TOO_LARGE for it)."""


class AuthError(ProtocolError):
    """The authorisation rules refused the event; ``reason`` says which rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureError(ProtocolError):
    """A required signature is missing, malformed or does not verify."""


class CanonicalJSONError(ProtocolError, ValueError):
    """The value cannot be represented as Canonical JSON (floats, big ints, bad keys...).

    It is also a ``ValueError`` so that generic JSON-parsing callers can catch it as such.
    """
