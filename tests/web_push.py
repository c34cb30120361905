"""A loopback web push service for tests: the far end of a push gateway's webpush pushkin.

A browser subscribes to web push with a P-256 key pair and a 16-byte auth secret; the push
gateway posts each notification to the subscription's endpoint, encrypted for that key
(RFC 8291, content coding `aes128gcm` of RFC 8188) and signed for the push service with the
gateway's VAPID key (RFC 8292). `WebPushService` plays the push service and the browser at once:
it makes subscriptions whose endpoints are its own loopback URLs, records every request it gets,
and decrypts the bodies with the subscription's private key, so a test reads back the JSON the
gateway built. An endpoint can be made to answer 410 Gone, the push service's word for an
expired subscription (a gateway then rejects the pushkey).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from multidict import CIMultiDict

from tests.federation_helpers import free_port

POLL_INTERVAL_S = 0.05
# RFC 8188 section 2.1: salt (16 bytes), record size (4), key id length (1), then the key id,
# which for RFC 8291 is the sender's uncompressed P-256 public key.
_SALT_LEN = 16
_HEADER_FIXED_LEN = _SALT_LEN + 4 + 1
_LAST_RECORD_DELIMITER = 0x02


def b64url(data: bytes) -> str:
    """Unpadded base64url, the encoding web push uses for keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """A P-256 public key as the uncompressed point, the form web push and VAPID use."""
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint,
    )


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


@dataclass(frozen=True)
class Subscription:
    """A browser's push subscription: what a client puts in its pusher (`pushkey` is the
    public key, `data.endpoint` and `data.auth` the rest) and the private key to read it."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes

    @property
    def p256dh(self) -> str:
        return b64url(public_bytes(self.private_key.public_key()))

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)

    def decrypt(self, body: bytes) -> Any:
        """The JSON a gateway encrypted for this subscription (one record, RFC 8291 §3.4)."""
        salt = body[:_SALT_LEN]
        key_id_len = body[_HEADER_FIXED_LEN - 1]
        sender_key = body[_HEADER_FIXED_LEN:_HEADER_FIXED_LEN + key_id_len]
        ciphertext = body[_HEADER_FIXED_LEN + key_id_len:]
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_key)
        shared = self.private_key.exchange(ec.ECDH(), sender)
        receiver_key = public_bytes(self.private_key.public_key())
        ikm = _hkdf(
            self.auth_secret, shared, b"WebPush: info\x00" + receiver_key + sender_key, 32,
        )
        content_key = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
        padded = AESGCM(content_key).decrypt(nonce, ciphertext, None).rstrip(b"\x00")
        assert padded[-1] == _LAST_RECORD_DELIMITER, "not the last record of the message"
        return json.loads(padded[:-1])


@dataclass(frozen=True)
class PushRequest:
    """One request the push service received."""

    path: str
    headers: CIMultiDict[str]  # case-insensitive: Sygnal's Twisted client sends `Ttl`
    body: bytes


@dataclass
class WebPushService:
    """The push service on a loopback port: subscriptions, and what arrived for each."""

    base_url: str = ""
    received: list[PushRequest] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)  # paths answered with 410 Gone
    _subscriptions: dict[str, Subscription] = field(default_factory=dict)

    def subscribe(self) -> Subscription:
        """A new subscription with its own endpoint on this service."""
        path = f"/push/{secrets.token_hex(8)}"
        subscription = Subscription(
            self.base_url + path, ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16),
        )
        self._subscriptions[path] = subscription
        return subscription

    def expire(self, subscription: Subscription) -> None:
        """From now on the endpoint answers 410 Gone."""
        self.gone.add(self._path(subscription))

    def requests_for(self, subscription: Subscription) -> list[PushRequest]:
        path = self._path(subscription)
        return [r for r in self.received if r.path == path]

    def payloads_for(self, subscription: Subscription) -> list[Any]:
        """The decrypted bodies that arrived for `subscription`, in arrival order."""
        return [subscription.decrypt(r.body) for r in self.requests_for(subscription)]

    async def wait_for(
        self, what: str, condition: Callable[[], bool], deadline_s: float = 30.0,
    ) -> None:
        """Poll `condition` until it holds; fail naming `what` and what arrived if it never does."""
        deadline = time.monotonic() + deadline_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {deadline_s} s; got {self.received}")
            await asyncio.sleep(POLL_INTERVAL_S)

    def _path(self, subscription: Subscription) -> str:
        assert subscription.endpoint.startswith(self.base_url)
        return subscription.endpoint[len(self.base_url):]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(PushRequest(request.path, CIMultiDict(request.headers), body))
        if request.path in self.gone:
            return web.Response(status=410)
        return web.Response(status=201)


@asynccontextmanager
async def run_web_push_service() -> AsyncIterator[WebPushService]:
    """A `WebPushService` on 127.0.0.1 on a port of its own, stopped on exit."""
    service = WebPushService()
    app = web.Application()
    app.router.add_post("/push/{id}", service._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    service.base_url = f"http://127.0.0.1:{port}"
    try:
        yield service
    finally:
        await runner.cleanup()
