"""URL previews (client-server-api "Content repository", `GET /media/preview_url`): which URLs
may be previewed, and what a page says about itself (OpenGraph, with `<title>` and
`<meta name="description">` as fallbacks).

Pure: the service fetches, this reads. The page is untrusted input of any size the fetch limit
lets through, so everything read from it is bounded: a few dozen properties, each value cut
short.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from yarl import URL

from homeserver.protocol.addresses import ip_literal, numeric_ipv4

__all__ = ["MAX_URL_LENGTH", "opengraph", "page_charset", "preview_target"]

MAX_URL_LENGTH = 2048
MAX_PROPERTIES = 32
MAX_VALUE_LENGTH = 1000
# Properties the server replaces: og:image becomes an mxc:// URI, its size and type the stored
# copy's (the page's own claims about them may be wrong).
IMAGE_PROPERTIES = ("og:image:url", "og:image:secure_url", "og:image:type", "og:image:width",
                    "og:image:height", "og:image:alt")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.?)*")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([a-zA-Z0-9_:.-]+)""", re.IGNORECASE)


def preview_target(text: str) -> URL:
    """The URL to fetch for `text`, without its fragment; ValueError saying why it cannot be.

    Only absolute http and https URLs with a host are previewed, and none carrying a user name
    or password (they would be sent to the site on the user's behalf). A host ending in a
    number is an IPv4 address in one of its URL forms (`http://2130706433/`): it is replaced
    by the canonical address, or refused if it is none.
    """
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"URLs longer than {MAX_URL_LENGTH} characters are not previewed")
    try:
        url = URL(text)
        port = url.port
    except (ValueError, TypeError) as e:
        raise ValueError(f"not a URL: {e}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("only http and https URLs are previewed")
    host = url.raw_host
    if not host or not (_HOSTNAME.fullmatch(host) or ip_literal(host) is not None):
        raise ValueError("the URL has no valid host")
    if ip_literal(host) is None and (address := numeric_ipv4(host)) is not None:
        url = url.with_host(str(address))
    if url.user is not None or url.password is not None:
        raise ValueError("URLs with a user name or password are not previewed")
    if port is None or not 1 <= port <= 65535:
        raise ValueError("the URL's port is out of range")
    return url.with_fragment(None)


def page_charset(content_type: str | None, head: bytes) -> str:
    """The page's encoding: the Content-Type's charset, else a `<meta charset>` near the top,
    else UTF-8 (which the decoder then reads leniently)."""
    if content_type:
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value.strip('"'):
                return value.strip('"')
    found = _CHARSET.search(head[:2048])
    return found.group(1).decode("ascii") if found else "utf-8"


class _PageReader(HTMLParser):
    """Collects `<meta property|name="og:…">`, the first `<title>` and the description."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.properties: dict[str, str] = {}
        self.title: str | None = None
        self.description: str | None = None
        self._in_title = False
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and self.title is None:
            self._in_title = True
        if tag != "meta":
            return
        values = {key: value for key, value in attrs if value is not None}
        content = values.get("content")
        key = (values.get("property") or values.get("name") or "").strip().lower()
        if content is None or not key:
            return
        if key.startswith("og:") and len(self.properties) < MAX_PROPERTIES:
            self.properties.setdefault(key, _clean(content))
        elif key == "description" and self.description is None:
            self.description = _clean(content)

    def handle_data(self, data: str) -> None:
        if self._in_title and sum(map(len, self._title_parts)) < MAX_VALUE_LENGTH:
            self._title_parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.title = _clean("".join(self._title_parts))


def _clean(value: str) -> str:
    return " ".join(value.split())[:MAX_VALUE_LENGTH]


def opengraph(html: str, page_url: URL) -> dict[str, str]:
    """The page's OpenGraph properties, `og:title` and `og:description` filled from `<title>`
    and the description when the page has none, and `og:image` made absolute against
    `page_url` (left out unless it is http or https). The image's own properties
    (IMAGE_PROPERTIES) are dropped: the service sets them from the copy it stores."""
    reader = _PageReader()
    reader.feed(html)
    reader.close()
    found = {k: v for k, v in reader.properties.items() if v and k not in IMAGE_PROPERTIES}
    if "og:title" not in found and reader.title:
        found["og:title"] = reader.title
    if "og:description" not in found and reader.description:
        found["og:description"] = reader.description
    image = found.pop("og:image", None) or reader.properties.get("og:image:url")
    if image:
        try:
            absolute = page_url.join(URL(image))
        except ValueError:
            absolute = None
        if absolute is not None and absolute.scheme in ("http", "https") and absolute.host:
            found["og:image"] = str(absolute)
    return found
