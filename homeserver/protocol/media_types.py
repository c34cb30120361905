"""What a media item's type and file name may be (client-server-api "Content repository").

Pure. Both come from strangers: a client uploading, or another server answering a download.
Each is echoed in the `Content-Type` and `Content-Disposition` headers of every download, so
only values that cannot break out of a header or name a path are kept.
"""

from __future__ import annotations

import re

__all__ = ["MAX_FILENAME_CHARS", "is_file_name", "is_media_type"]

MAX_FILENAME_CHARS = 255
MAX_MEDIA_TYPE_CHARS = 255

# RFC 9110 media type: token "/" token, then parameters in printable ASCII.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z\-]+"
_CONTENT_TYPE_RE = re.compile(rf"{_TOKEN}/{_TOKEN}(\s*;[\x20-\x7e]*)?")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def is_media_type(value: str) -> bool:
    """Whether `value` is a media type (with parameters) fit to serve as a Content-Type."""
    return len(value) <= MAX_MEDIA_TYPE_CHARS and _CONTENT_TYPE_RE.fullmatch(value) is not None


def is_file_name(name: str) -> bool:
    """Whether `name` is at most MAX_FILENAME_CHARS characters, without control characters."""
    return len(name) <= MAX_FILENAME_CHARS and _CONTROL_RE.search(name) is None
