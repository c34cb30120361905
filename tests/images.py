"""Small real images (PNG bytes made with Pillow) for media upload and thumbnail tests."""

from __future__ import annotations

import io

from PIL import Image


def png(width: int, height: int, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    image = Image.new(mode, (width, height), "red" if mode != "RGBA" else (255, 0, 0, 128))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def image_of(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


