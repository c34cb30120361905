"""`GET /media/preview_url`: pages fetched under the address policy, OpenGraph read, the image
re-hosted as mxc://, previews cached; bad URLs are 400 and nothing is fetched when previews are
off.

The pages are served by a local aiohttp server on 127.0.0.1, so the server under test runs with
`media.url_previews.allow_private_addresses` on, except where the policy itself is tested.
"""

from __future__ import annotations

import asyncio
import string
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import strategies as st
from yarl import URL

from homeserver.errors import MatrixError
from homeserver.protocol.addresses import AddressPolicy, IPAddress
from homeserver.services.requester import Requester
from homeserver.services.url_fetcher import FetchFailed, FetchRefused, UnusableUrl, UrlFetcher
from homeserver.services.url_previews import FETCH_SLOTS, QUEUE_LIMIT
from storage import media as media_store
from storage.database import Database
from tests.bad_input import HUGE, assert_sane, collect, segments
from tests.conftest import MakeServer
from tests.fake_clock import FakeClock
from tests.helpers import MatrixApi, User, validate_response
from tests.images import png

pytestmark = pytest.mark.usefixtures("no_server_errors")

V1 = "/_matrix/client/v1/media"
V3 = "/_matrix/media/v3"
ON = {"media.url_previews.enabled": True, "media.url_previews.allow_private_addresses": True}
IMAGE = png(40, 30)
SERVER = "localhost"  # the test servers' name
NOW = 2**63 - 1  # a preview's `ts` meaning "the current preview"
PAGE = """<!doctype html><html><head>
<meta charset="utf-8"><title>Not this one</title>
<meta property="og:title" content="Caf\u00e9  &amp; chat">
<meta property="og:description" content="What the page says about itself">
<meta property="og:image" content="/image.png">
<meta property="og:image:width" content="9999">
</head><body><p>body</p></body></html>"""
PLAIN = """<html><head><title> A plain
page </title><meta name="description" content="No OpenGraph here"></head></html>"""


@dataclass
class Pages:
    """The local web server the previews fetch from, and what it was asked."""

    url: str
    hits: Counter[str] = field(default_factory=Counter)


@pytest.fixture
async def pages() -> AsyncIterator[Pages]:
    served = Pages("")

    async def page(request: web.Request) -> web.StreamResponse:
        served.hits[request.path] += 1
        name = request.match_info["name"]
        if name == "page":
            return web.Response(text=PAGE, content_type="text/html")
        if name == "plain":
            return web.Response(body=PLAIN.encode("latin-1"), content_type="text/html",
                                charset="iso-8859-1")
        if name == "image.png":
            return web.Response(body=IMAGE, content_type="image/png")
        if name == "redirect":
            raise web.HTTPFound("/page")
        if name == "elsewhere":
            # A redirect to another loopback address (a policy below refuses it).
            raise web.HTTPFound(f"http://127.0.0.2:{request.url.port}/page")
        if name == "loop":
            raise web.HTTPFound("/loop")
        if name == "changing":  # a new title each time it is fetched, the same image
            return web.Response(
                text=f"<title>v{served.hits[request.path]}</title>"
                '<meta property="og:image" content="/image.png">',
                content_type="text/html",
            )
        if name == "big":
            return web.Response(body=b"<html>" + b" " * (3 * 1024 * 1024), content_type="text/html")
        if name == "missing":
            raise web.HTTPNotFound()
        return web.Response(text="{}", content_type="application/json")

    app = web.Application()
    app.router.add_get("/{name}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    served.url = f"http://127.0.0.1:{port}"
    yield served
    await runner.cleanup()


async def previewer(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, overrides: dict[str, Any]
) -> tuple[MatrixApi, User]:
    api = MatrixApi((await make_homeserver(overrides)).url, http)
    return api, await api.register("previewer")


async def preview(api: MatrixApi, user: User, url: str, prefix: str = V1) -> tuple[int, Any]:
    return await api.request("GET", f"{prefix}/preview_url", token=user.token, params={"url": url})


async def test_a_page_s_opengraph_and_its_image_re_hosted(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, pages: Pages
) -> None:
    api, user = await previewer(make_homeserver, http, ON)
    status, body = await preview(api, user, pages.url + "/page#section")
    assert status == 200, body
    validate_response("authed-content-repo.yaml", "/media/preview_url", "get", 200, body)
    assert body["og:title"] == "Café & chat"
    assert body["og:description"] == "What the page says about itself"
    # The image is the server's copy; the page's claims about it (width 9999) are dropped.
    assert body["og:image"].startswith(f"mxc://{SERVER}/")
    assert body["og:image:type"] == "image/png"
    assert body["matrix:image:size"] == len(IMAGE)
    assert "og:image:width" not in body
    media_id = body["og:image"].rsplit("/", 1)[1]
    async with api.session.get(
        f"{api.base_url}{V1}/download/{SERVER}/{media_id}",
        headers={"Authorization": f"Bearer {user.token}"},
    ) as resp:
        assert resp.status == 200 and await resp.read() == IMAGE


async def test_title_and_description_stand_in_for_opengraph(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, pages: Pages
) -> None:
    """And the page's charset (ISO-8859-1 here) is the one it is decoded with."""
    api, user = await previewer(make_homeserver, http, ON)
    status, body = await preview(api, user, pages.url + "/plain", prefix=V3)
    assert status == 200, body
    validate_response("content-repo.yaml", "/media/v3/preview_url", "get", 200, body)
    assert body == {"og:title": "A plain page", "og:description": "No OpenGraph here"}


async def test_an_image_url_previews_as_the_image(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, pages: Pages
) -> None:
    api, user = await previewer(make_homeserver, http, ON)
    status, body = await preview(api, user, pages.url + "/image.png")
    assert status == 200, body
    assert body["og:image:type"] == "image/png" and body["og:image"].startswith("mxc://")


async def test_a_preview_is_fetched_once_and_cached(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, pages: Pages
) -> None:
    api, user = await previewer(make_homeserver, http, ON)
    other = await api.register("other_previewer")
    first = await preview(api, user, pages.url + "/redirect")
    second = await preview(api, other, pages.url + "/redirect")
    again = await api.request("GET", f"{V3}/preview_url", token=user.token,
                              params={"url": pages.url + "/redirect", "ts": "1500000000000"})
    assert first == second == again and first[0] == 200
    assert first[1]["og:title"] == "Café & chat"  # the redirect was followed
    assert pages.hits == Counter({"/redirect": 1, "/page": 1, "/image.png": 1})


async def test_previews_are_shared_by_processes_and_kept_across_restarts(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, pages: Pages, db: Database
) -> None:
    """And the image re-hosted for it is the server's own media, no user's upload."""
    api, user = await previewer(make_homeserver, http, ON)
    first = await preview(api, user, pages.url + "/page")
    assert first[0] == 200, first
    # Another process on the same database (or this one, restarted).
    other = MatrixApi((await make_homeserver(ON)).url, http)
    someone = await other.register("someone")
    assert await preview(other, someone, pages.url + "/page") == first
    assert pages.hits == Counter({"/page": 1, "/image.png": 1})
    media_id = first[1]["og:image"].rsplit("/", 1)[1]
    row = await db.run(lambda conn: media_store.get_media(conn, media_id))
    assert row is not None and row.user_id is None


async def test_ts_gets_the_preview_of_its_time(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, pages: Pages
) -> None:
    """A preview is current for an hour; `ts` asks for the one that was current then, which
    is kept a day longer. The page's image, the same bytes each time, is kept once."""
    clock = FakeClock()
    api = MatrixApi((await make_homeserver(ON, clock=clock)).url, http)
    user = await api.register("previewer")
    url = pages.url + "/changing"
    start = clock.now_ms()

    async def title(ts: int | None = None) -> str:
        params = {"url": url} | ({} if ts is None else {"ts": str(ts)})
        status, body = await api.request("GET", f"{V1}/preview_url", token=user.token,
                                         params=params)
        assert status == 200, body
        images.add(body["og:image"])
        return str(body["og:title"])

    images: set[str] = set()
    assert await title() == "v1"
    clock.advance(2 * 3600)
    assert await title() == "v2"  # the first is no longer current: fetched again
    assert await title(start + 60_000) == "v1"  # as it was then
    assert await title(start - 60_000) == "v2"  # none kept that old: the current one
    assert await title(clock.now_ms() + 10**9) == "v2"  # the future: the current one
    assert pages.hits["/changing"] == 2
    clock.advance(30 * 3600)  # a day after both stopped being current
    assert await title() == "v3"
    assert await title(start + 60_000) == "v3"  # the old ones are gone
    assert pages.hits["/changing"] == 3
    assert len(images) == 1 and pages.hits["/image.png"] == 3


async def test_loopback_is_refused_unless_allowed(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, pages: Pages
) -> None:
    """The default policy: nothing is fetched from loopback, by IP literal, by its other URL
    forms (decimal, hex, octal, short) or by a name that resolves to it ("localhost")."""
    api, user = await previewer(make_homeserver, http, {"media.url_previews.enabled": True})
    port = URL(pages.url).port
    forms = ("localhost", "[::1]", "2130706433", "0x7f000001", "0177.0.0.1", "127.1")
    for url in [pages.url + "/page", *(f"http://{host}:{port}/page" for host in forms)]:
        status, body = await preview(api, user, url)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), (url, body)
    assert pages.hits == Counter()


async def test_previews_off_fetch_nothing(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, pages: Pages
) -> None:
    api, user = await previewer(make_homeserver, http, {})
    for prefix in (V1, V3):
        assert await preview(api, user, pages.url + "/page", prefix) == (200, {})
    assert pages.hits == Counter()


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("url", [
    "not a url", "ftp://example.com/file", "javascript:alert(1)", "file:///etc/passwd",
    "http://", "https://exa mple.com/", "http://user:pw@example.com/", "http://example.com:99999/",
    "/relative/path", "https://" + "a" * 3000 + ".com/",
    "http://1.2.3.4.5/", "http://999.1.1.1/", "http://example.123/",
])
async def test_malformed_or_non_http_urls_are_invalid_params(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, url: str, enabled: bool
) -> None:
    api, user = await previewer(make_homeserver, http, {"media.url_previews.enabled": enabled})
    for prefix in (V1, V3):
        status, body = await preview(api, user, url, prefix)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), (prefix, body)


async def test_missing_url_and_bad_ts_are_refused(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    api, user = await previewer(make_homeserver, http, ON)
    status, body = await api.request("GET", f"{V1}/preview_url", token=user.token)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.request(
        "GET", f"{V1}/preview_url", token=user.token,
        params={"url": "https://example.com", "ts": "yesterday"},
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize("name", ["big", "missing", "loop"])
async def test_pages_that_cannot_be_had_are_gateway_errors(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, pages: Pages, name: str
) -> None:
    """Too large, an error status, endless redirects: the site's fault, answered 502 as
    Synapse does, and not cached."""
    api, user = await previewer(make_homeserver, http, ON)
    for _ in range(2):
        status, body = await preview(api, user, f"{pages.url}/{name}")
        assert (status, body["errcode"]) == (502, "M_UNKNOWN"), body
    assert pages.hits[f"/{name}"] >= 2


async def test_non_html_pages_preview_as_nothing(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, pages: Pages
) -> None:
    api, user = await previewer(make_homeserver, http, ON)
    assert await preview(api, user, pages.url + "/data.json") == (200, {})


class OnlyFirstLoopback(AddressPolicy):
    """127.0.0.1 (the page server) is allowed, every other address refused as the default
    policy refuses it: the rest of the loopback range stands for private networks."""

    def refusal(self, ip: IPAddress) -> str | None:
        return None if str(ip) == "127.0.0.1" else AddressPolicy().refusal(ip) or "refused"


async def test_each_redirect_is_checked_again(pages: Pages) -> None:
    fetcher = UrlFetcher(OnlyFirstLoopback())
    try:
        assert (await fetcher.fetch(URL(pages.url + "/page"), 1 << 20, "*/*")).body
        with pytest.raises(FetchRefused, match=r"127\.0\.0\.2 is loopback"):
            await fetcher.fetch(URL(pages.url + "/elsewhere"), 1 << 20, "*/*")
    finally:
        await fetcher.close()
    assert pages.hits["/page"] == 1  # the redirect's target was never asked


async def test_a_name_is_connected_to_at_the_address_that_was_checked(pages: Pages) -> None:
    """"localhost" resolves to 127.0.0.1, allowed here: the connection goes to the address the
    resolver checked. Under the default policy the same name is refused before any connection."""
    fetcher = UrlFetcher(OnlyFirstLoopback())
    port = URL(pages.url).port
    try:
        fetched = await fetcher.fetch(URL(f"http://localhost:{port}/page"), 1 << 20, "*/*")
        assert fetched.url.host == "localhost" and pages.hits["/page"] == 1
    finally:
        await fetcher.close()
    default = UrlFetcher(AddressPolicy())
    try:
        with pytest.raises(FetchRefused, match=r"localhost: 127\.0\.0\.1 is loopback"):
            await default.fetch(URL(f"http://localhost:{port}/page"), 1 << 20, "*/*")
    finally:
        await default.close()


async def test_a_body_past_the_limit_is_not_read(pages: Pages) -> None:
    fetcher = UrlFetcher(OnlyFirstLoopback())
    try:
        with pytest.raises(FetchFailed, match=r"is more than 100$"):
            await fetcher.fetch(URL(pages.url + "/page"), 100, "*/*")
    finally:
        await fetcher.close()


async def test_a_url_the_http_client_refuses_is_the_asker_s_mistake(pages: Pages) -> None:
    """preview_target makes such hosts canonical first; should one get through, the client's
    refusal is not a failure of the site (502) but a bad URL (400)."""
    fetcher = UrlFetcher(OnlyFirstLoopback())
    try:
        with pytest.raises(UnusableUrl, match="2130706433"):
            await fetcher.fetch(URL("http://2130706433/"), 100, "*/*")
    finally:
        await fetcher.close()


url_like = st.one_of(
    segments,
    st.builds(
        "{}://{}{}".format,
        st.sampled_from(["http", "https", "HTTP", "ftp", "file", "javascript", "data", ""]),
        st.text(alphabet=string.printable + "éλ[]@:", max_size=30),
        st.text(alphabet=string.printable + "\x00é%", max_size=30),
    ),
)
# Hosts ending in a number: loopback in its URL forms, or no address at all. None of them is
# looked up or connected to, so none may be a 502.
numeric_host_urls = st.builds(
    "http://{}/".format,
    st.one_of(
        st.sampled_from(["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "0"]),
        st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,4}){4,6}", fullmatch=True),
        st.from_regex(r"(25[6-9]|[3-9][0-9]{2,5})(\.[0-9]{1,3}){0,3}\.?", fullmatch=True),
        st.from_regex(r"[a-z]{1,5}\.[0-9]{1,5}", fullmatch=True),
    ),
)


@pytest.mark.parametrize("enabled", [False, True])
async def test_generated_urls_and_ts_are_answered_sanely(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, enabled: bool
) -> None:
    """Off, nothing is fetched: each URL is either a preview (empty) or 400 M_INVALID_PARAM, on
    both paths, whatever `ts` comes with it. On, under the default address policy (this test
    has no network to fetch from), a URL also reaches the fetcher: it may be refused (403) or
    its host not be found (502), but a URL the HTTP client would refuse as malformed is the
    asker's mistake, 400, never a 5xx."""
    api, user = await previewer(make_homeserver, http, {"media.url_previews.enabled": enabled})
    stamps = [None, "0", "-1", "1.5", "x", *map(str, HUGE)]
    numeric = collect(numeric_host_urls, 30) if enabled else []
    for i, url in enumerate(collect(url_like) + numeric):
        params = {"url": url}
        if (ts := stamps[i % len(stamps)]) is not None:
            params["ts"] = ts
        status, body = await api.request(
            "GET", f"{(V1, V3)[i % 2]}/preview_url", token=user.token, params=params
        )
        is_http = url.lower().startswith(("http://", "https://"))
        if status == 200:
            assert is_http and (enabled or body == {}), params
            continue
        assert_sane(status, body, params, reaches_out=enabled and url not in numeric)
        allowed = {(400, "M_INVALID_PARAM")} | (
            {(403, "M_FORBIDDEN"), (502, "M_UNKNOWN")} if enabled and is_http else set()
        )
        assert (status, body["errcode"]) in allowed, (params, body)


async def test_fetches_and_urls_in_flight_are_bounded(
    make_homeserver: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FETCH_SLOTS pages are fetched at once; past QUEUE_LIMIT distinct URLs in flight the
    answer is 429 at once, and a URL already in flight joins its fetch instead.

    The previews are asked of the service in-process so that all of them are in flight before
    the first page is answered: each looks in the database first and then registers its fetch,
    which the test watches for (the service's `_fetch` is called as a fetch is registered)
    before asking for more."""
    release = asyncio.Event()
    arrived = asyncio.Event()
    running = peak = 0
    hits: Counter[str] = Counter()

    async def held(request: web.Request) -> web.Response:
        nonlocal running, peak
        hits[request.path] += 1
        running += 1
        peak = max(peak, running)
        arrived.set()
        await release.wait()
        running -= 1
        return web.Response(text=f"<title>{request.path}</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{name}", held)
    runner = web.AppRunner(app)
    await runner.setup()
    # Two hosts, so that the connection pool's per-host bound is not what limits the fetches.
    for host in ("127.0.0.1", "127.0.0.2"):
        await web.TCPSite(runner, host, 0).start()
    bases = [f"http://{host}:{port}" for host, port in runner.addresses]
    try:
        server = await make_homeserver(ON)
        previews = server.hs.url_previews
        assert previews is not None
        who = Requester("@previewer:localhost", "DEVICE")
        urls = [f"{bases[i % 2]}/p{i}" for i in range(QUEUE_LIMIT)]
        registered = asyncio.Event()
        fetch, started = previews._fetch, Counter[str]()

        def watched(url: URL) -> Coroutine[Any, Any, dict[str, Any]]:
            started[str(url)] += 1
            if len(started) == QUEUE_LIMIT:
                registered.set()
            return fetch(url)

        monkeypatch.setattr(previews, "_fetch", watched)
        # The pages are held until the test releases them, not for the 10 s a fetch may take:
        # on a loaded machine registering all the fetches can take longer than that.
        monkeypatch.setattr(previews.fetcher, "timeout", aiohttp.ClientTimeout(total=300))
        tasks = [asyncio.ensure_future(previews.preview(who, url, NOW)) for url in urls]
        await registered.wait()
        joined = asyncio.ensure_future(previews.preview(who, urls[0], NOW))
        await arrived.wait()
        with pytest.raises(MatrixError) as refused:
            async with asyncio.timeout(30):  # only to fail: it answers at once or never
                await previews.preview(who, f"{bases[0]}/one-too-many", NOW)
        assert (refused.value.status, refused.value.errcode) == (429, "M_LIMIT_EXCEEDED")
        release.set()
        answers = await asyncio.gather(*tasks, joined)
    finally:
        release.set()
        await runner.cleanup()
    assert [a["og:title"] for a in answers] == [f"/p{i}" for i in range(QUEUE_LIMIT)] + ["/p0"]
    assert peak == FETCH_SLOTS
    assert hits == Counter({f"/p{i}": 1 for i in range(QUEUE_LIMIT)})
