"""Shared-secret registration (Synapse's `/_synapse/admin/v1/register`): how operators' tools
(`register_new_matrix_user -k SECRET`) create accounts, admins included, on a server whose
registration is closed.

Theory of operation. A client GETs a nonce, then POSTs the account with the nonce and a MAC:
the hex HMAC-SHA1, keyed by `registration.shared_secret`, of the nonce, the username, the
password and "admin" or "notadmin" (then the user type, when one is given), separated by NULs.
A nonce is good for one POST, which uses it up whatever its outcome, within `NONCE_LIFETIME_S`.
Anyone may ask for nonces, so at most `MAX_NONCES` are kept: past that the oldest is forgotten.
The MAC is compared in constant time, and before the password is hashed, so a wrong guess costs
the server no argon2 run.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from homeserver.errors import MatrixError, forbidden
from homeserver.services.accounts import AccountDetails, AccountsService, Session
from homeserver.services.clock import Clock

NONCE_LIFETIME_S = 60.0  # Synapse's
MAX_NONCES = 1000


@dataclass(frozen=True, slots=True)
class SharedSecretRequest:
    """A registration POST's fields, their types checked (the nonce is checked here)."""

    nonce: str
    username: str
    password: str
    admin: bool
    mac: str
    displayname: str | None = None
    user_type: str | None = None


def disabled() -> MatrixError:
    return MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")


def registration_mac(secret: str, req: SharedSecretRequest) -> str:
    """The MAC a holder of `secret` sends with `req` (Synapse's register_api.md)."""
    parts = [req.nonce, req.username, req.password, "admin" if req.admin else "notadmin"]
    if req.user_type:
        parts.append(req.user_type)
    message = b"\x00".join(part.encode("utf-8") for part in parts)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha1).hexdigest()


class SharedSecretRegistration:
    def __init__(self, accounts: AccountsService, secret: str | None, clock: Clock) -> None:
        self._accounts = accounts
        self._secret = secret
        self._clock = clock
        # nonce -> when it was handed out (monotonic seconds), oldest first.
        self._nonces: OrderedDict[str, float] = OrderedDict()

    def new_nonce(self) -> str:
        """A fresh single-use nonce (400 when the server has no shared secret)."""
        if self._secret is None:
            raise disabled()
        self._forget_expired()
        nonce = secrets.token_hex(32)
        self._nonces[nonce] = self._clock.monotonic()
        while len(self._nonces) > MAX_NONCES:
            self._nonces.popitem(last=False)
        return nonce

    def take_nonce(self, nonce: str) -> None:
        """Use up `nonce`, or 400 if it is unknown, used or expired. The POST takes it before
        looking at anything else, so a bad request wastes it too (as in Synapse)."""
        if self._secret is None:
            raise disabled()
        self._forget_expired()
        if self._nonces.pop(nonce, None) is None:
            raise MatrixError(400, "M_UNKNOWN", "unrecognised nonce")

    async def register(self, req: SharedSecretRequest, ip: str) -> Session:
        """Create the account `req` describes and log it in on a new device, if its MAC is
        right (`take_nonce` has accepted `req.nonce`)."""
        if self._secret is None:
            raise disabled()
        want = registration_mac(self._secret, req)
        if not hmac.compare_digest(want.encode("ascii"), req.mac.encode("utf-8")):
            raise forbidden("HMAC incorrect")
        localpart = req.username.lower()  # as Synapse: `Alice` registers @alice
        self._accounts.user_id_for_registration(localpart)  # before the cost of a hash
        password_hash = await self._accounts.hash_new_password(req.password, ip)
        return await self._accounts.register(
            localpart, password_hash, device_id=None, device_display_name=None,
            inhibit_login=False, ip=ip, admin=req.admin,
            details=AccountDetails(req.displayname, req.user_type),
        )

    def _forget_expired(self) -> None:
        deadline = self._clock.monotonic() - NONCE_LIFETIME_S
        while self._nonces:
            oldest, issued = next(iter(self._nonces.items()))
            if issued > deadline:
                return
            del self._nonces[oldest]
