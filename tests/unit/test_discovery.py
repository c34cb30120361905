"""Server discovery in the spec's order (server-server-api.md "Resolving server names").

SRV answers and `.well-known` answers come from in-memory tables behind the two interfaces
discovery takes; the HTTPS fetcher itself is tested over real sockets in
tests/integration/test_federation_transport.py.
"""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from federation.discovery import (
    WELL_KNOWN_DEFAULT_S,
    WELL_KNOWN_INVALID_S,
    WELL_KNOWN_MAX_S,
    WELL_KNOWN_MIN_S,
    DiscoveryError,
    ServerDiscovery,
    SrvRecord,
    WellKnownAnswer,
    order_srv,
    parse_well_known,
    well_known_lifetime,
)
from federation.transport import Target
from tests.fake_clock import FakeClock


class Srv:
    """SRV answers from a table; records every name asked."""

    def __init__(self, records: dict[str, list[SrvRecord]] | None = None) -> None:
        self.records = records or {}
        self.asked: list[str] = []

    async def lookup(self, name: str) -> list[SrvRecord]:
        self.asked.append(name)
        return self.records.get(name, [])


class WellKnown:
    """`.well-known` answers from a table (no entry: no answer at all); counts fetches."""

    def __init__(self, answers: dict[str, WellKnownAnswer] | None = None) -> None:
        self.answers = answers or {}
        self.fetched: list[str] = []

    async def fetch(self, hostname: str) -> WellKnownAnswer:
        self.fetched.append(hostname)
        return self.answers.get(hostname, WellKnownAnswer(None))


def delegate(to: str, **headers: str) -> WellKnownAnswer:
    return WellKnownAnswer(200, f'{{"m.server": "{to}"}}'.encode(), headers)


def discovery(
    srv: Srv | None = None, well_known: WellKnown | None = None,
    clock: FakeClock | None = None,
) -> ServerDiscovery:
    return ServerDiscovery(srv or Srv(), well_known or WellKnown(), clock or FakeClock())


# --- step 1: IP literals ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("1.2.3.4", Target("1.2.3.4", 8448, "1.2.3.4", "1.2.3.4")),
        ("1.2.3.4:1234", Target("1.2.3.4", 1234, "1.2.3.4", "1.2.3.4:1234")),
        ("127.0.0.1:18448", Target("127.0.0.1", 18448, "127.0.0.1", "127.0.0.1:18448")),
        ("[1234:5678::abcd]", Target("1234:5678::abcd", 8448, "1234:5678::abcd",
                                     "[1234:5678::abcd]")),
        ("[::1]:5678", Target("::1", 5678, "::1", "[::1]:5678")),
    ],
)
async def test_ip_literals_are_used_directly(name: str, target: Target) -> None:
    srv, wk = Srv(), WellKnown()
    assert (await discovery(srv, wk).resolve(name))[0] == target
    assert srv.asked == [] and wk.fetched == []


# --- step 2: explicit port --------------------------------------------------------------------

async def test_an_explicit_port_skips_well_known_and_srv() -> None:
    srv = Srv({"_matrix-fed._tcp.example.org": [SrvRecord(0, 0, 1, "x.example.org")]})
    wk = WellKnown({"example.org": delegate("elsewhere.org")})
    target = (await discovery(srv, wk).resolve("example.org:8888"))[0]
    assert target == Target("example.org", 8888, "example.org", "example.org:8888")
    assert srv.asked == [] and wk.fetched == []


# --- step 3: .well-known delegation -----------------------------------------------------------

async def test_delegation_to_an_ip_literal() -> None:
    wk = WellKnown({"example.org": delegate("10.0.0.5")})
    assert (await discovery(well_known=wk).resolve("example.org"))[0] == Target(
        "10.0.0.5", 8448, "10.0.0.5", "10.0.0.5"
    )
    wk = WellKnown({"example.org": delegate("[2001:db8::1]:9000")})
    assert (await discovery(well_known=wk).resolve("example.org"))[0] == Target(
        "2001:db8::1", 9000, "2001:db8::1", "[2001:db8::1]:9000"
    )


async def test_delegation_with_its_own_port() -> None:
    srv = Srv({"_matrix-fed._tcp.matrix.example.org": [SrvRecord(0, 0, 1, "x.example.org")]})
    wk = WellKnown({"example.org": delegate("matrix.example.org:1234")})
    assert (await discovery(srv, wk).resolve("example.org"))[0] == Target(
        "matrix.example.org", 1234, "matrix.example.org", "matrix.example.org:1234"
    )
    assert srv.asked == []


async def test_delegation_then_srv_matrix_fed() -> None:
    srv = Srv({
        "_matrix-fed._tcp.matrix.example.org": [SrvRecord(10, 0, 443, "fed.example.net.")],
        "_matrix._tcp.matrix.example.org": [SrvRecord(10, 0, 8449, "old.example.net")],
    })
    wk = WellKnown({"example.org": delegate("matrix.example.org")})
    # Connect to the SRV target, but expect the certificate and Host of the delegated name.
    assert (await discovery(srv, wk).resolve("example.org"))[0] == Target(
        "fed.example.net", 443, "matrix.example.org", "matrix.example.org"
    )
    assert srv.asked == ["_matrix-fed._tcp.matrix.example.org"]


async def test_delegation_then_deprecated_srv_matrix() -> None:
    srv = Srv({"_matrix._tcp.matrix.example.org": [SrvRecord(10, 0, 8449, "old.example.net")]})
    wk = WellKnown({"example.org": delegate("matrix.example.org")})
    assert (await discovery(srv, wk).resolve("example.org"))[0] == Target(
        "old.example.net", 8449, "matrix.example.org", "matrix.example.org"
    )
    assert srv.asked == ["_matrix-fed._tcp.matrix.example.org", "_matrix._tcp.matrix.example.org"]


async def test_delegation_without_srv_uses_8448() -> None:
    wk = WellKnown({"example.org": delegate("matrix.example.org")})
    assert (await discovery(well_known=wk).resolve("example.org"))[0] == Target(
        "matrix.example.org", 8448, "matrix.example.org", "matrix.example.org"
    )


# --- steps 4 to 6: no delegation --------------------------------------------------------------

async def test_srv_matrix_fed_is_preferred_over_matrix() -> None:
    srv = Srv({
        "_matrix-fed._tcp.example.org": [SrvRecord(10, 5, 8443, "fed.example.org")],
        "_matrix._tcp.example.org": [SrvRecord(0, 0, 8449, "old.example.org")],
    })
    assert (await discovery(srv).resolve("example.org"))[0] == Target(
        "fed.example.org", 8443, "example.org", "example.org"
    )
    assert srv.asked == ["_matrix-fed._tcp.example.org"]


async def test_deprecated_srv_matrix_when_no_matrix_fed() -> None:
    srv = Srv({"_matrix._tcp.example.org": [SrvRecord(0, 0, 8449, "old.example.org")]})
    assert (await discovery(srv).resolve("example.org"))[0] == Target(
        "old.example.org", 8449, "example.org", "example.org"
    )


@pytest.mark.parametrize(
    "answer",
    [
        WellKnownAnswer(None),
        WellKnownAnswer(404, b'{"m.server": "ignored.example.org"}'),
        WellKnownAnswer(200, b"not json"),
        WellKnownAnswer(200, b'["m.server"]'),
        WellKnownAnswer(200, b"{}"),
        WellKnownAnswer(200, b'{"m.server": 5}'),
        WellKnownAnswer(200, b'{"m.server": "bad name!"}'),
        WellKnownAnswer(200, b'{"m.server": "host:99999"}'),
    ],
)
async def test_no_valid_delegation_falls_back_to_8448(answer: WellKnownAnswer) -> None:
    srv = Srv()
    wk = WellKnown({"example.org": answer})
    assert (await discovery(srv, wk).resolve("example.org"))[0] == Target(
        "example.org", 8448, "example.org", "example.org"
    )
    assert srv.asked == ["_matrix-fed._tcp.example.org", "_matrix._tcp.example.org"]


async def test_not_a_server_name() -> None:
    with pytest.raises(DiscoveryError):
        (await discovery().resolve("not a server"))[0]


class Draws:
    """A scripted `randint`: returns the given draws in turn, checking each is in range."""

    def __init__(self, *draws: int) -> None:
        self.draws = list(draws)
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, low: int, high: int) -> int:
        self.ranges.append((low, high))
        draw = self.draws.pop(0)
        assert low <= draw <= high
        return draw


def test_srv_order_is_by_priority_then_a_draw_by_weight() -> None:
    c = SrvRecord(20, 100, 1, "c.example")
    b = SrvRecord(10, 1, 2, "b.example")
    a = SrvRecord(10, 50, 3, "a.example")
    # Priority 10 first: running sums b 1, a 51 over a draw in 0..51; then a alone, then c.
    draws = Draws(30, 1, 100)
    assert order_srv([c, b, a], draws) == [a, b, c]
    assert draws.ranges == [(0, 51), (0, 1), (0, 100)]
    assert order_srv([c, b, a], Draws(1, 50, 0)) == [b, a, c]
    # A weight of 0 goes first in the running sums: chosen first only on a draw of 0.
    zero = SrvRecord(10, 0, 4, "z.example")
    assert order_srv([a, zero], Draws(0, 0)) == [zero, a]
    assert order_srv([a, zero], Draws(1, 0)) == [a, zero]
    assert order_srv([SrvRecord(0, 0, 0, ".")], Draws()) == []  # "decidedly not available"
    assert order_srv([], Draws()) == []


def test_srv_first_choices_follow_the_weights() -> None:
    """RFC 2782's draw over 0..sum inclusive: a record of weight 1 before one of weight 3
    is first on draws 0 and 1, two in five."""
    light, heavy = SrvRecord(0, 1, 1, "light.example"), SrvRecord(0, 3, 2, "heavy.example")
    draws = random.Random(2782).randint
    firsts = [order_srv([light, heavy], draws)[0] for _ in range(10_000)]
    assert 0.37 < firsts.count(light) / len(firsts) < 0.43


async def test_every_srv_target_is_given_in_order() -> None:
    srv = Srv({"_matrix-fed._tcp.example.org": [
        SrvRecord(5, 0, 2, "second.example."), SrvRecord(1, 0, 1, "first.example."),
    ]})
    assert await discovery(srv).resolve("example.org") == [
        Target("first.example", 1, "example.org", "example.org"),
        Target("second.example", 2, "example.org", "example.org"),
    ]


def test_parse_well_known_ignores_the_content_type() -> None:
    answer = WellKnownAnswer(200, b'{"m.server":"a.example:1"}', {})
    assert parse_well_known(answer) == "a.example:1"


# --- caching ----------------------------------------------------------------------------------

async def test_well_known_answers_are_cached_for_their_lifetime() -> None:
    clock = FakeClock()
    wk = WellKnown({"example.org": delegate("m.example.org:1", **{"Cache-Control": "max-age=600"})})
    d = discovery(well_known=wk, clock=clock)
    for _ in range(3):
        assert ((await d.resolve("example.org"))[0]).port == 1
    assert wk.fetched == ["example.org"]
    clock.advance(601)
    wk.answers["example.org"] = delegate("m.example.org:2")
    assert ((await d.resolve("example.org"))[0]).port == 2
    assert wk.fetched == ["example.org"] * 2


async def test_invalid_answers_are_cached_for_an_hour() -> None:
    clock = FakeClock()
    wk = WellKnown({"example.org": WellKnownAnswer(404)})
    d = discovery(well_known=wk, clock=clock)
    (await d.resolve("example.org"))[0]
    clock.advance(WELL_KNOWN_INVALID_S - 1)
    (await d.resolve("example.org"))[0]
    assert len(wk.fetched) == 1
    clock.advance(2)
    (await d.resolve("example.org"))[0]
    assert len(wk.fetched) == 2


async def test_repeated_failures_back_off_exponentially() -> None:
    clock = FakeClock()
    wk = WellKnown()  # never answers
    d = discovery(well_known=wk, clock=clock)
    waits = []
    for _ in range(7):
        (await d.resolve("example.org"))[0]
        fetched = len(wk.fetched)
        waited = 0.0
        while len(wk.fetched) == fetched:
            clock.advance(30)
            waited += 30
            (await d.resolve("example.org"))[0]
        waits.append(waited)
    assert waits == [120.0, 240.0, 480.0, 960.0, 1920.0, 3600.0, 3600.0]


async def test_concurrent_resolutions_share_one_fetch() -> None:
    import asyncio

    wk = WellKnown({"example.org": delegate("m.example.org:1")})
    d = discovery(well_known=wk)
    answers = await asyncio.gather(*(d.resolve("example.org") for _ in range(5)))
    assert {t.port for a in answers for t in a} == {1} and wk.fetched == ["example.org"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, WELL_KNOWN_DEFAULT_S),
        ({"Cache-Control": "public, max-age=7200"}, 7200.0),
        ({"Cache-Control": "max-age=10"}, WELL_KNOWN_MIN_S),
        ({"Cache-Control": "max-age=9999999"}, WELL_KNOWN_MAX_S),
        ({"Cache-Control": "no-store"}, WELL_KNOWN_MIN_S),
        ({"Cache-Control": "max-age=oops"}, WELL_KNOWN_DEFAULT_S),
        ({"Expires": formatdate(1_700_000_000.0 + 3600, usegmt=True)}, 3600.0),
        ({"Expires": "garbage"}, WELL_KNOWN_MIN_S),
        ({"Cache-Control": "max-age=7200", "Expires": formatdate(0, usegmt=True)}, 7200.0),
    ],
)
def test_lifetime_of_a_valid_answer(headers: dict[str, str], expected: float) -> None:
    answer = WellKnownAnswer(200, b'{"m.server": "a.example"}', headers)
    assert well_known_lifetime(answer, 0, 1_700_000_000.0) == expected


def test_server_errors_count_as_no_answer() -> None:
    assert well_known_lifetime(WellKnownAnswer(503), 1, 0.0) == 120.0
    assert well_known_lifetime(WellKnownAnswer(404), 1, 0.0) == WELL_KNOWN_INVALID_S
