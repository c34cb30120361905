"""Thumbnails with Pillow: which size to make for a request, and making it (spec: "Thumbnails").

Theory of operation. A request names a width, a height and a method. `target_for` snaps it to
the smallest of the spec's recommended sizes that is at least as large (so most clients share a
few cached thumbnails per image) or keeps it as asked when none fits. `render` then decodes
the image in a worker thread and returns one of:

- the source itself, when it already fits the request and is a still PNG, JPEG, GIF or WebP
  (the spec: "servers should return the original content rather than thumbnail it");
- "scale": the image shrunk to fit inside the box, aspect ratio kept;
- "crop": the image scaled to cover the box and cut to its centre, so it has the requested
  aspect ratio. Where the source is smaller than the box in one dimension, only the cut is
  made: the spec forbids upscaling.

Decoding is where hostile files bite, so only the common raster formats are opened, the pixel
count is checked from the header before any pixel is decoded (413 beyond
`media.max_image_pixels`), JPEGs are decoded at reduced scale (`draft`) when the thumbnail is
much smaller, and animated images are thumbnailed from their first frame.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

METHODS = ("crop", "scale")
# The sizes the spec recommends servers produce.
STANDARD_SIZES = ((32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"),
                  (800, 600, "scale"))
# Formats opened at all: each decoder is attack surface, and these cover what clients send.
_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
# Formats a source may be served in unchanged as its own thumbnail.
_SERVABLE = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class NotAnImage(Exception):
    """The content cannot be decoded as an image this server thumbnails."""


class ImageTooLarge(Exception):
    """The image has more pixels than the server is willing to decode."""


@dataclass(frozen=True, slots=True)
class ThumbnailSize:
    width: int
    height: int
    method: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A made thumbnail; `data` is None when the source itself is the thumbnail."""

    data: bytes | None
    content_type: str


def target_for(width: int, height: int, method: str) -> ThumbnailSize:
    """The size to make for a request: the smallest standard size that covers it (for crop,
    only one of the same aspect ratio), else the request itself."""
    covering = [
        (w, h) for w, h, m in STANDARD_SIZES
        if m == method and w >= width and h >= height and (m == "scale" or w * height == h * width)
    ]
    if covering:
        w, h = min(covering, key=lambda size: size[0] * size[1])
        return ThumbnailSize(w, h, method)
    return ThumbnailSize(width, height, method)


def is_standard(size: ThumbnailSize) -> bool:
    return (size.width, size.height, size.method) in STANDARD_SIZES


def largest_standard(method: str) -> ThumbnailSize:
    w, h, m = max((s for s in STANDARD_SIZES if s[2] == method), key=lambda s: s[0] * s[1])
    return ThumbnailSize(w, h, m)


def render(source: Path, size: ThumbnailSize, max_pixels: int) -> Rendered:
    """Make the thumbnail of the image file `source` (blocking: run it in a thread)."""
    try:
        with Image.open(source, formats=_FORMATS) as image:
            return _render(image, size, max_pixels)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(str(e)) from e
    except ImageTooLarge:
        raise
    except Exception as e:  # Pillow on hostile input: any failure means "not an image we can do"
        raise NotAnImage(str(e)) from e


def _render(image: Image.Image, size: ThumbnailSize, max_pixels: int) -> Rendered:
    raw_w, raw_h = image.size
    if raw_w * raw_h > max_pixels:
        raise ImageTooLarge(f"{raw_w}x{raw_h} pixels")
    rotated = image.getexif().get(_EXIF_ORIENTATION, 1) in _ROTATED_ORIENTATIONS
    w, h = (raw_h, raw_w) if rotated else (raw_w, raw_h)
    source_type = _SERVABLE.get(image.format or "")
    if (w <= size.width and h <= size.height and source_type is not None
            and not getattr(image, "is_animated", False)):
        return Rendered(None, source_type)
    need_w, need_h = _decode_size(w, h, size)
    # Decode no more pixels than the result needs (JPEG only; a no-op for other formats).
    image.draft(None, (need_h, need_w) if rotated else (need_w, need_h))
    image = ImageOps.exif_transpose(image)
    image = _crop(image, size) if size.method == "crop" else _scale(image, size)
    return _encode(image, as_jpeg=source_type == "image/jpeg")


def _decode_size(w: int, h: int, size: ThumbnailSize) -> tuple[int, int]:
    """The smallest decoded size from which the thumbnail can still be made at full quality."""
    if size.method == "crop":
        factor = max(size.width / w, size.height / h)
    else:
        factor = min(size.width / w, size.height / h)
    factor = min(factor, 1.0)
    return max(1, math.ceil(w * factor)), max(1, math.ceil(h * factor))


def _scale(image: Image.Image, size: ThumbnailSize) -> Image.Image:
    image.thumbnail((size.width, size.height), Image.Resampling.LANCZOS)  # never enlarges
    return image


def _crop(image: Image.Image, size: ThumbnailSize) -> Image.Image:
    w, h = image.size
    if w >= size.width and h >= size.height:
        return ImageOps.fit(image, (size.width, size.height), Image.Resampling.LANCZOS)
    # Smaller than the box in one dimension: cut the largest centred region of the requested
    # aspect ratio, without scaling up.
    if w * size.height > h * size.width:
        cut_w, cut_h = max(1, round(h * size.width / size.height)), h
    else:
        cut_w, cut_h = w, max(1, round(w * size.height / size.width))
    left, top = (w - cut_w) // 2, (h - cut_h) // 2
    return image.crop((left, top, left + cut_w, top + cut_h))


def _encode(image: Image.Image, *, as_jpeg: bool) -> Rendered:
    """JPEG for photos (small), PNG for everything else (keeps transparency)."""
    out = io.BytesIO()
    if as_jpeg:
        image.convert("RGB").save(out, "JPEG", quality=85)
        return Rendered(out.getvalue(), "image/jpeg")
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA")
    image.save(out, "PNG", optimize=False)
    return Rendered(out.getvalue(), "image/png")
