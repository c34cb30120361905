"""TURN credentials for `GET /voip/turnServer` (client-server-api "Voice over IP"), in the form
of the TURN REST API (draft-uberti-behave-turn-rest-00) that coturn checks with
`use-auth-secret`.

The homeserver and the TURN server share only a secret. A credential is a username naming its
own expiry and the user, and a password the TURN server can recompute from the username alone:
so it holds no list of users, and a credential stops working at its expiry without anyone
revoking it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    username: str
    password: str
    ttl_s: int  # how long the client may use them, in seconds


def turn_credentials(
    secret: str, user_id: str, now_ms: int, lifetime_ms: int
) -> TurnCredentials:
    """Credentials for `user_id` valid from `now_ms` for `lifetime_ms`.

    The username is "<expiry>:<user_id>", expiry in whole seconds since the epoch (coturn
    compares it with its clock); the password is the standard, padded base64 of
    HMAC-SHA1(secret, username), which is what coturn recomputes (Synapse makes the same).
    """
    username = f"{(now_ms + lifetime_ms) // 1000}:{user_id}"
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(mac).decode("ascii"), lifetime_ms // 1000)
