"""The media an event's content points at (client-server-api "m.room.message msgtypes":
`m.image`, `m.file`, `m.audio`, `m.video`; "Sending encrypted attachments"; `m.sticker`).

Where a message keeps its `mxc://` URIs: `content.url` with `content.info.thumbnail_url`, or,
encrypted, `content.file.url` with `content.info.thumbnail_file.url`. An edit
(`m.new_content`) holds the same fields again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

MXC = "mxc://"


def mxc_uris(content: Mapping[str, Any]) -> set[str]:
    """The `mxc://` URIs of a message's content, its replacement content included."""
    found = set(_uris(content))
    new_content = content.get("m.new_content")
    if isinstance(new_content, Mapping):
        found.update(_uris(new_content))
    return found


def local_media_ids(content: Mapping[str, Any], server_name: str) -> set[str]:
    """The media IDs of the URIs in `content` that name media of `server_name`."""
    prefix = f"{MXC}{server_name}/"
    return {
        uri.removeprefix(prefix) for uri in mxc_uris(content)
        if uri.startswith(prefix) and len(uri) > len(prefix) and "/" not in uri[len(prefix):]
    }


def _uris(content: Mapping[str, Any]) -> Iterator[str]:
    info = content.get("info")
    info = info if isinstance(info, Mapping) else {}
    for value in (
        content.get("url"), info.get("thumbnail_url"),
        _file_url(content.get("file")), _file_url(info.get("thumbnail_file")),
    ):
        if isinstance(value, str) and value.startswith(MXC):
            yield value


def _file_url(file: Any) -> Any:
    """The `url` of an `EncryptedFile` object, if it is one."""
    return file.get("url") if isinstance(file, Mapping) else None
