"""The pure part of URL previews: which URLs may be previewed, and what a page says of itself."""

from __future__ import annotations

import pytest
from yarl import URL

from homeserver.protocol.url_previews import (
    MAX_PROPERTIES,
    MAX_VALUE_LENGTH,
    opengraph,
    page_charset,
    preview_target,
)

PAGE = URL("https://example.com/blog/post")


@pytest.mark.parametrize(("text", "expected"), [
    ("https://example.com", "https://example.com"),
    ("http://example.com:8080/a?b=c#frag", "http://example.com:8080/a?b=c"),
    ("https://bücher.de/x", "https://xn--bcher-kva.de/x"),
    ("http://[2001:db8::1]/", "http://[2001:db8::1]/"),
    ("HTTPS://EXAMPLE.COM/", "https://example.com/"),
    # A host ending in a number is an IPv4 address in a URL form: fetched by its canonical one.
    ("http://2130706433/", "http://127.0.0.1/"),
    ("http://0x7f000001:8080/a", "http://127.0.0.1:8080/a"),
    ("http://0177.0.0.1/", "http://127.0.0.1/"),
    ("http://127.1/", "http://127.0.0.1/"),
    ("http://0x7f.0.1/", "http://127.0.0.1/"),
    ("http://8.8.8.8./", "http://8.8.8.8/"),
    ("http://134744072/", "http://8.8.8.8/"),
    ("http://4294967295/", "http://255.255.255.255/"),
    ("http://123.example/", "http://123.example/"),
    ("http://example.0xg/", "http://example.0xg/"),
])
def test_http_urls_are_previewed_without_their_fragment(text: str, expected: str) -> None:
    assert str(preview_target(text)) == expected


@pytest.mark.parametrize("text", [
    "not a url", "example.com", "/path", "ftp://example.com/", "file:///etc/passwd",
    "javascript:alert(1)", "data:text/html,hi", "http://", "http:///path", "https://exa mple.com",
    "http://-bad.example/", "http://user:pw@example.com/", "http://user@example.com/",
    "http://example.com:0/", "http://example.com:99999/", "https://" + "a" * 2100 + ".com",
    # Ending in a number but no IPv4 address (aiohttp refuses these as malformed too).
    "http://1.2.3.4.5/", "http://999.1.1.1/", "http://4294967296/", "http://1.256.1/",
    "http://example.123/", "http://1.08/", "http://1..2/", "http://0x1g.0x1/",
])
def test_everything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        preview_target(text)


def test_opengraph_comes_first() -> None:
    html = """<head><title>Title tag</title><meta name="description" content="plain">
    <meta property="og:title" content="OG title"><meta property="og:description" content="OG">
    <meta property="og:site_name" content="Blog"><meta property="og:image" content="/a.png">
    <meta property="og:image:width" content="10"></head>"""
    assert opengraph(html, PAGE) == {
        "og:title": "OG title", "og:description": "OG", "og:site_name": "Blog",
        "og:image": "https://example.com/a.png",
    }


def test_title_and_description_fill_in() -> None:
    html = "<title>\n  Spaced\n out </title><meta name=Description content='the  text'>"
    assert opengraph(html, PAGE) == {"og:title": "Spaced out", "og:description": "the text"}


def test_the_first_title_counts_and_entities_are_decoded() -> None:
    html = "<title>A &amp; B</title><svg><title>icon</title></svg>"
    assert opengraph(html, PAGE) == {"og:title": "A & B"}


@pytest.mark.parametrize(("image", "expected"), [
    ("img/x.png", "https://example.com/blog/img/x.png"),
    ("//cdn.example.net/x.png", "https://cdn.example.net/x.png"),
    ("javascript:alert(1)", None),
    ("data:image/png;base64,AAAA", None),
])
def test_the_image_is_made_absolute_or_dropped(image: str, expected: str | None) -> None:
    found = opengraph(f'<meta property="og:image" content="{image}">', PAGE)
    assert found.get("og:image") == expected


def test_og_image_url_stands_in_for_og_image() -> None:
    found = opengraph('<meta property="og:image:url" content="/u.png">', PAGE)
    assert found == {"og:image": "https://example.com/u.png"}


def test_what_is_read_from_a_page_is_bounded() -> None:
    metas = "".join(f'<meta property="og:k{i}" content="v">' for i in range(100))
    long_title = "<title>" + "t" * 10 * MAX_VALUE_LENGTH + "</title>"
    found = opengraph(metas + long_title, PAGE)
    assert len([k for k in found if k.startswith("og:k")]) == MAX_PROPERTIES
    assert len(found["og:title"]) == MAX_VALUE_LENGTH


@pytest.mark.parametrize(("content_type", "head", "expected"), [
    ("text/html; charset=ISO-8859-1", b"<meta charset=utf-8>", "ISO-8859-1"),
    ('text/html; charset="windows-1252"', b"", "windows-1252"),
    ("text/html", b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">',
     "koi8-r"),
    ("text/html", b"<meta charset='shift_jis'>", "shift_jis"),
    (None, b"<html>", "utf-8"),
])
def test_the_charset_comes_from_the_header_then_the_page(
    content_type: str | None, head: bytes, expected: str
) -> None:
    assert page_charset(content_type, head) == expected
