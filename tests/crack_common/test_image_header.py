"""Image sizes read from JPEG and PNG headers, before any decoder allocates for them."""

import struct

import cv2
import numpy as np
import pytest

from crack_common.image_header import ImageTooLarge, check_pixels, image_size


def encoded(ext, w=37, h=23, flags=()):
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img, list(flags))
    assert ok
    return buf.tobytes()


def claiming(data, w, h):
    """DATA with its header rewritten to claim w x h pixels (the body left as it is)."""
    b = bytearray(data)
    if data.startswith(b"\x89PNG"):
        b[16:24] = struct.pack(">II", w, h)
        return bytes(b)
    i = 2
    while b[i + 1] not in (0xC0, 0xC2):
        i += 2 + struct.unpack(">H", b[i + 2:i + 4])[0]
    b[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(b)


@pytest.mark.parametrize("data", [
    encoded(".jpg"), encoded(".jpg", flags=(cv2.IMWRITE_JPEG_PROGRESSIVE, 1)), encoded(".png")])
def test_sizes_of_real_images(data):
    assert image_size(data) == (37, 23)
    assert check_pixels(data, 37 * 23) == (37, 23)
    with pytest.raises(ImageTooLarge, match="37x23"):
        check_pixels(data, 37 * 23 - 1)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_a_bomb_is_refused_by_its_header(ext):
    bomb = claiming(encoded(ext), 20000, 20000)
    assert len(bomb) < 5000 and image_size(bomb) == (20000, 20000)
    with pytest.raises(ImageTooLarge, match="20000x20000"):
        check_pixels(bomb, 4096 * 4096)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8", b"\xff\xd8\xff\xda\x00",
                                  encoded(".jpg")[:20], encoded(".png")[:20],
                                  b"\xff\xd8" + b"\xff\xe0\xff\xff" * 3])
def test_unreadable_headers_are_no_size(data):
    assert image_size(data) is None
    with pytest.raises(ValueError, match="readable header"):
        check_pixels(data, 10**9)
