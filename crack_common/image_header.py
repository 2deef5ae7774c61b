"""The width and height a JPEG or PNG says it has, read from its header before anything
decodes it: a few hundred bytes can claim 20000x20000 pixels, which a decoder would
allocate (gigabytes) before it found out the rest is missing.

Hand-written rather than a library call: OpenCV only tells after decoding, and Pillow
is no dependency of the car."""

from __future__ import annotations

import struct
from typing import Optional, Tuple

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic ...): not
# DHT (C4), JPG (C8) or DAC (CC)
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageTooLarge(ValueError):
    """An image whose header claims more pixels than allowed."""


def image_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) from a PNG's IHDR or a JPEG's start-of-frame; None when the bytes
    are neither, or the header is cut short."""
    if data.startswith(PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        return struct.unpack(">II", data[16:24])
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in SOF_MARKERS:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def check_pixels(data: bytes, max_pixels: int) -> Tuple[int, int]:
    """(width, height) of a JPEG or PNG no larger than `max_pixels`; ValueError when the
    header cannot be read, ImageTooLarge when it claims more."""
    size = image_size(data)
    if size is None:
        raise ValueError(f"the body ({len(data)} bytes) is not a JPEG or PNG with a "
                         "readable header")
    w, h = size
    if w == 0 or h == 0:
        raise ValueError(f"the image claims {w}x{h} pixels")
    if w * h > max_pixels:
        raise ImageTooLarge(f"the image claims {w}x{h} pixels; the limit is {max_pixels:,}")
    return w, h
