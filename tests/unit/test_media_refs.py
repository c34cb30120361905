"""Which media an event's content points at (homeserver/protocol/media_refs.py)."""

from __future__ import annotations

from homeserver.protocol.media_refs import local_media_ids, mxc_uris


def test_plain_encrypted_and_replacement_fields_are_found() -> None:
    content = {
        "msgtype": "m.image", "url": "mxc://here/a", "info": {
            "thumbnail_url": "mxc://here/b", "thumbnail_file": {"url": "mxc://here/c"},
        },
        "file": {"url": "mxc://there/d"},
        "m.new_content": {"msgtype": "m.image", "url": "mxc://here/e"},
    }
    assert mxc_uris(content) == {
        "mxc://here/a", "mxc://here/b", "mxc://here/c", "mxc://there/d", "mxc://here/e"
    }
    assert local_media_ids(content, "here") == {"a", "b", "c", "e"}


def test_malformed_fields_are_ignored() -> None:
    content = {"url": 5, "info": "x", "file": ["mxc://here/a"], "m.new_content": "y"}
    assert mxc_uris(content) == set()
    assert local_media_ids({"url": "mxc://here/"}, "here") == set()
    assert local_media_ids({"url": "mxc://here/a/b"}, "here") == set()
    assert local_media_ids({"url": "https://here/a"}, "here") == set()
