"""The keyring against stand-in key servers and notaries on real TLS sockets, caching in a real
PostgreSQL: what it accepts, what it refuses (and never stores), and when it asks again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from federation.client import FederationClient
from federation.keyring import KeyLookupError, Keyring
from federation.own_keys import OwnKeys
from homeserver.protocol.signing import (
    SigningKey,
    generate_signing_key,
    key_id,
    sign_json,
    verify_key_base64,
    verify_key_of,
)
from storage.database import Database
from tests.fake_clock import START_MS, FakeClock
from tests.federation_helpers import StandIn, free_port, insecure_client, json_handler

DAY_MS = 86400_000


NOW = START_MS


@pytest.fixture
async def client() -> AsyncIterator[FederationClient]:
    c = insecure_client("asker.example", generate_signing_key("me"))
    yield c
    await c.transport.close()


@pytest.fixture
async def stand_ins(tmp_path: Path) -> AsyncIterator[list[StandIn]]:
    started: list[StandIn] = []
    yield started
    for s in started:
        await s.stop()


async def key_server(
    stand_ins: list[StandIn], tmp_path: Path, body: Any = None, *, key: SigningKey | None = None,
    delay_s: float = 0.0,
) -> tuple[StandIn, SigningKey]:
    """A stand-in serving a self-signed key response (or ``body(server_name, key)``)."""
    server = StandIn(tmp_path / f"tls{len(stand_ins)}", port=free_port())
    key = key or generate_signing_key(f"k{len(stand_ins)}")
    name = server.server_name
    response = body(name, key) if callable(body) else OwnKeys(name, key).response(NOW)
    server.handlers["/_matrix/key/v2/server"] = json_handler(response, delay_s=delay_s)
    stand_ins.append(await server.start())
    return server, key


def make_keyring(db: Database, client: FederationClient, clock: FakeClock | None = None,
                 notaries: tuple[str, ...] = (), refetch_interval_s: float = 60.0) -> Keyring:
    own = generate_signing_key("me")
    return Keyring(db, client, server_name="asker.example", own_key_id=key_id(own),
                   own_verify_key=verify_key_of(own), notaries=notaries,
                   clock=clock or FakeClock(), refetch_interval_s=refetch_interval_s)


async def stored_keys(db: Database, server_name: str) -> list[dict[str, Any]]:
    rows = await db.run(lambda c: c.fetch(
        "SELECT * FROM server_verify_keys WHERE server_name = $1 ORDER BY key_id", server_name
    ))
    return [dict(r) for r in rows]


async def stored_responses(db: Database) -> int:
    count: int = await db.run(lambda c: c.fetchval("SELECT count(*) FROM server_key_responses"))
    return count


async def test_fetches_checks_and_caches_in_postgres(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path
) -> None:
    server, key = await key_server(stand_ins, tmp_path)
    keyring = make_keyring(db, client)
    found = await keyring.get_verify_key(server.server_name, key_id(key), for_requests=True)
    assert found.encode() == verify_key_of(key).encode()  # type: ignore[attr-defined]
    (row,) = await stored_keys(db, server.server_name)
    assert row["verify_key"] == verify_key_base64(key)
    assert row["valid_until_ts"] == NOW + DAY_MS and row["expired_ts"] is None
    assert row["fetched_from"] == server.server_name
    # A second keyring on the same database (a restart) answers without asking.
    await make_keyring(db, client).get_verify_key(server.server_name, key_id(key))
    assert server.hits("/_matrix/key/v2/server") == 1


async def test_concurrent_lookups_share_one_fetch(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path
) -> None:
    server, key = await key_server(stand_ins, tmp_path, delay_s=0.3)
    keyring = make_keyring(db, client)
    keys = await asyncio.gather(
        *(keyring.get_verify_key(server.server_name, key_id(key)) for _ in range(10))
    )
    assert len(keys) == 10
    assert server.hits("/_matrix/key/v2/server") == 1


def forged(name: str, key: SigningKey) -> dict[str, Any]:
    response = OwnKeys(name, key).response(NOW)
    response["valid_until_ts"] += 1  # after signing: the signature no longer verifies
    return response


def signed_by_another_key(name: str, key: SigningKey) -> dict[str, Any]:
    body = {k: v for k, v in OwnKeys(name, key).response(NOW).items() if k != "signatures"}
    return sign_json(body, name, generate_signing_key(key.version))


def for_another_server(name: str, key: SigningKey) -> dict[str, Any]:
    return OwnKeys("someone.else", key).response(NOW)


def unsigned(name: str, key: SigningKey) -> dict[str, Any]:
    return {k: v for k, v in OwnKeys(name, key).response(NOW).items() if k != "signatures"}


@pytest.mark.parametrize("body", [forged, signed_by_another_key, for_another_server, unsigned])
async def test_a_response_failing_its_check_is_never_stored(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path,
    body: Any,
) -> None:
    server, key = await key_server(stand_ins, tmp_path, body)
    with pytest.raises(KeyLookupError, match="unknown"):
        await make_keyring(db, client).get_verify_key(server.server_name, key_id(key))
    assert await stored_keys(db, server.server_name) == []
    assert await stored_responses(db) == 0


async def test_an_unknown_key_id_is_asked_about_at_most_once_per_interval(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path
) -> None:
    server, _ = await key_server(stand_ins, tmp_path)
    keyring = make_keyring(db, client)
    for _ in range(5):
        with pytest.raises(KeyLookupError, match=r"ed25519:nope .* is unknown"):
            await keyring.get_verify_key(server.server_name, "ed25519:nope")
    assert server.hits("/_matrix/key/v2/server") == 1


async def test_expired_keys_are_fetched_again(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path
) -> None:
    server, key = await key_server(stand_ins, tmp_path)
    clock = FakeClock()
    keyring = make_keyring(db, client, clock, refetch_interval_s=0.0)
    await keyring.get_verify_key(server.server_name, key_id(key))
    clock.ms = NOW + DAY_MS + 1  # past valid_until_ts: the response the stand-in serves
    with pytest.raises(KeyLookupError, match="not valid at that time"):
        await keyring.get_verify_key(server.server_name, key_id(key))
    assert server.hits("/_matrix/key/v2/server") == 2
    # A signature made while the key was valid still verifies (events, later).
    await keyring.get_verify_key(server.server_name, key_id(key), valid_at_ts=NOW + 1000)


async def test_old_verify_keys_verify_old_events_but_never_requests(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path
) -> None:
    old_key = generate_signing_key("old")

    def with_old_key(name: str, key: SigningKey) -> dict[str, Any]:
        body = {k: v for k, v in OwnKeys(name, key).response(NOW).items() if k != "signatures"}
        body["old_verify_keys"] = {
            key_id(old_key): {"key": verify_key_base64(old_key), "expired_ts": NOW - 1000}
        }
        return sign_json(body, name, key)

    server, _ = await key_server(stand_ins, tmp_path, with_old_key)
    keyring = make_keyring(db, client)
    await keyring.get_verify_key(server.server_name, key_id(old_key), valid_at_ts=NOW - 5000)
    with pytest.raises(KeyLookupError, match="old key"):
        await keyring.get_verify_key(server.server_name, key_id(old_key), for_requests=True)
    with pytest.raises(KeyLookupError, match="not valid at that time"):
        await keyring.get_verify_key(server.server_name, key_id(old_key), valid_at_ts=NOW)


async def test_keys_survive_rotation(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path
) -> None:
    """A server that rotates to a new key and stops listing the old one: the old key stays
    stored with the validity it had, so old signatures remain checkable."""
    server, first = await key_server(stand_ins, tmp_path)
    clock = FakeClock()
    keyring = make_keyring(db, client, clock, refetch_interval_s=0.0)
    await keyring.get_verify_key(server.server_name, key_id(first))
    second = generate_signing_key("rotated")
    clock.ms = NOW + 1000
    server.handlers["/_matrix/key/v2/server"] = json_handler(
        OwnKeys(server.server_name, second).response(clock.ms)
    )
    await keyring.get_verify_key(server.server_name, key_id(second))
    assert [r["key_id"] for r in await stored_keys(db, server.server_name)] == [
        key_id(first), key_id(second)
    ]
    await keyring.get_verify_key(server.server_name, key_id(first), valid_at_ts=NOW + 500)


# --- notaries -----------------------------------------------------------------------------------

async def notary(
    stand_ins: list[StandIn], tmp_path: Path, answer: Any
) -> tuple[StandIn, SigningKey]:
    """A stand-in notary: its own key response, and ``answer(notary_name, notary_key)`` to
    every key query."""
    server, key = await key_server(stand_ins, tmp_path)
    server.handlers["/_matrix/key/v2/query"] = json_handler(
        lambda: answer(server.server_name, key)
    )
    return server, key


async def test_notary_answers_when_the_origin_is_down(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path
) -> None:
    origin_name, origin_key = f"127.0.0.1:{free_port()}", generate_signing_key("o")
    origin_response = OwnKeys(origin_name, origin_key).response(NOW)
    n, _ = await notary(stand_ins, tmp_path, lambda name, key: {
        "server_keys": [sign_json(origin_response, name, key)]
    })
    keyring = make_keyring(db, client, notaries=(n.server_name,))
    await keyring.get_verify_key(origin_name, key_id(origin_key), for_requests=True)
    (row,) = await stored_keys(db, origin_name)
    assert row["fetched_from"] == n.server_name
    assert n.hits("/_matrix/key/v2/query") == 1
    assert n.hits("/_matrix/key/v2/server") == 1  # the notary's own key, from the notary


def _lying_answers(origin_name: str, origin_key: SigningKey) -> list[Any]:
    """Notary answers that must be refused. (A notary that invents a whole key pair for the
    origin and self-signs it is not among them: that is indistinguishable from the truth, and
    exactly the trust an operator places in the notaries it configures.)"""
    genuine = OwnKeys(origin_name, origin_key).response(NOW)
    tampered = dict(genuine, valid_until_ts=NOW + 5 * DAY_MS)
    return [
        # a genuine response with the validity stretched after the origin signed it
        lambda name, key: {"server_keys": [sign_json(tampered, name, key)]},
        # the origin's genuine response without the notary's signature
        lambda name, key: {"server_keys": [genuine]},
        # ... or signed by someone other than the notary
        lambda name, key: {"server_keys": [sign_json(genuine, name, generate_signing_key("x"))]},
        # an answer about another server
        lambda name, key: {"server_keys": [sign_json(
            OwnKeys("other.example", origin_key).response(NOW), name, key)]},
        lambda name, key: {"server_keys": "nope"},
        lambda name, key: {"server_keys": []},
    ]


@pytest.mark.parametrize("case", range(6))
async def test_a_notary_cannot_vouch_for_what_the_origin_did_not_sign(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path,
    case: int,
) -> None:
    origin_name, origin_key = f"127.0.0.1:{free_port()}", generate_signing_key("o")
    n, _ = await notary(stand_ins, tmp_path, _lying_answers(origin_name, origin_key)[case])
    keyring = make_keyring(db, client, notaries=(n.server_name,))
    with pytest.raises(KeyLookupError):
        await keyring.get_verify_key(origin_name, key_id(origin_key))
    assert await stored_keys(db, origin_name) == []


async def test_notaries_are_asked_in_turn(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path
) -> None:
    origin_name, origin_key = f"127.0.0.1:{free_port()}", generate_signing_key("o")
    genuine = OwnKeys(origin_name, origin_key).response(NOW)
    liar, _ = await notary(stand_ins, tmp_path, lambda name, key: {"server_keys": [genuine]})
    honest, _ = await notary(stand_ins, tmp_path, lambda name, key: {
        "server_keys": [sign_json(genuine, name, key)]
    })
    keyring = make_keyring(db, client, notaries=(f"127.0.0.1:{free_port()}", liar.server_name,
                                                 honest.server_name))
    await keyring.get_verify_key(origin_name, key_id(origin_key))
    assert liar.hits("/_matrix/key/v2/query") == honest.hits("/_matrix/key/v2/query") == 1


async def test_notary_response_hands_on_stale_keys_of_a_server_that_is_down(
    db: Database, client: FederationClient, stand_ins: list[StandIn], tmp_path: Path
) -> None:
    server, _ = await key_server(stand_ins, tmp_path)
    clock = FakeClock()
    keyring = make_keyring(db, client, clock, refetch_interval_s=0.0)
    fresh = await keyring.notary_response(server.server_name, NOW)
    assert fresh is not None and fresh["server_name"] == server.server_name
    await server.stop()
    clock.ms = NOW + 2 * DAY_MS
    stale = await keyring.notary_response(server.server_name, clock.ms)
    assert stale == fresh
    assert await keyring.notary_response("127.0.0.1:1", NOW) is None
