"""MJPG over HTTP against real servers on loopback, broken in every way a camera link breaks."""

import shutil
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest

from edge_app.sources.mjpeg import MjpegSource
from edge_app.sources.multipart import MultipartParser
from edge_app.vision.frames import LatestSlot, jpeg_size
from tests.services.streams import (
    BOUNDARY,
    ScriptedMjpegServer,
    free_port,
    good,
    headers,
    jpeg,
    part,
)


def collect(source, seconds, consume_every=0.0):
    """Run a source for a while; return the frames taken and the slot."""
    slot, stop, got = LatestSlot(), threading.Event(), []
    t = threading.Thread(target=source.run, args=(slot, stop), daemon=True)
    t.start()
    end = time.time() + seconds
    while time.time() < end:
        f = slot.take(0.05)
        if f is not None:
            got.append(f)
            time.sleep(consume_every)
    stop.set()
    t.join(5)
    return got, slot


def fast_source(url, **kw):
    return MjpegSource(url, timeout=2.0, reconnect_min=0.05, reconnect_max=0.2, **kw)


def test_good_stream_delivers_decodable_frames():
    srv = ScriptedMjpegServer([good(30, 0.01)])
    try:
        frames, _ = collect(fast_source(srv.url), 1.0)
    finally:
        srv.close()
    assert len(frames) >= 25
    img = frames[0].decode()
    assert img.shape == (240, 320, 3) and abs(int(img.mean()) - 200) < 10
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted():
    srv = ScriptedMjpegServer([good(60, 0.005)])
    try:
        frames, slot = collect(fast_source(srv.url), 0.8, consume_every=0.1)
    finally:
        srv.close()
    assert slot.dropped >= 20
    assert slot.dropped + len(frames) <= slot.put_count
    assert max(b.seq - a.seq for a, b in zip(frames, frames[1:])) > 1


def test_broken_streams_are_survived_and_counted():
    good_jpeg = jpeg()

    def truncated_jpeg(h):
        headers(h)
        h.wfile.write(part(good_jpeg[: len(good_jpeg) // 2]))  # no EOI
        h.wfile.write(b"!!garbage between parts!!\r\n" + part(good_jpeg))
        h.wfile.flush()
        time.sleep(0.3)

    def closes_mid_frame(h):
        headers(h)
        h.wfile.write(part(good_jpeg))
        h.wfile.write(part(good_jpeg)[: 200])
        h.wfile.flush()

    def not_found(h):
        h.send_error(404)

    def wrong_type(h):
        headers(h, "text/html")
        h.wfile.write(b"<html>camera login</html>")

    def no_boundary_param(h):
        headers(h, "multipart/x-mixed-replace")
        for _ in range(3):
            h.wfile.write(part(good_jpeg, length=False))
        h.wfile.flush()
        time.sleep(0.3)

    srv = ScriptedMjpegServer([truncated_jpeg, closes_mid_frame, not_found, wrong_type,
                               no_boundary_param, good(200, 0.01)])
    src = fast_source(srv.url)
    try:
        frames, _ = collect(src, 2.5)
    finally:
        srv.close()
    c = src.counts
    assert c["corrupt"] == 1 and c["garbage_bytes"] >= 20
    assert c["truncated"] >= 1
    assert c["http_errors"] == 1 and c["bad_content_type"] == 1
    assert c["reconnects"] >= 5
    assert c["frames"] >= 1 + 1 + 3 + 20  # every good frame of every session got through
    assert all(f.decode() is not None for f in frames)


def test_endless_part_keeps_memory_bounded():
    limit = 200_000

    def endless(h):
        headers(h)
        h.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode())
        chunk = b"\x00" * 65536
        for _ in range(60):  # ~4 MB without a boundary
            h.wfile.write(chunk)
        h.wfile.write(b"\r\n" + part(jpeg()))
        h.wfile.flush()
        time.sleep(0.3)

    srv = ScriptedMjpegServer([endless, good(100, 0.01)])
    src = fast_source(srv.url, max_frame_bytes=limit)
    peak = []
    original = MultipartParser.feed

    def spy(self, data):
        out = original(self, data)
        peak.append(len(self.buf))
        return out
    MultipartParser.feed = spy
    try:
        frames, _ = collect(src, 1.5)
    finally:
        MultipartParser.feed = original
        srv.close()
    assert src.counts["oversize"] >= 1
    assert max(peak) <= limit + 2 * 65536
    assert frames and src.counts["frames"] >= 2  # the frame after the endless part arrived


def test_parser_resynchronises_byte_by_byte():
    j = jpeg()
    stream = part(j) + b"noise" + part(j, length=False) + part(j) + f"--{BOUNDARY}".encode()
    p = MultipartParser(BOUNDARY)
    out = []
    for i in range(len(stream)):
        out += p.feed(stream[i:i + 1])
    assert [len(b) for b in out] == [len(j)] * 3 and p.counts["garbage_bytes"] == 5
    assert jpeg_size(j) == (240, 320)


def test_bad_url_is_rejected():
    with pytest.raises(ValueError, match="expected an http"):
        MjpegSource("rtsp://camera/stream")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is installed by scripts/setup")
def test_ffmpeg_mpjpeg_server_stream():
    port = free_port()
    ff = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                           "testsrc=size=320x240:rate=15", "-t", "20", "-f", "mpjpeg",
                           "-q:v", "5",
                           "-content_type", "multipart/x-mixed-replace;boundary=ffmpeg",
                           "-listen", "1", f"http://127.0.0.1:{port}/stream.mjpg"],
                          stdin=subprocess.DEVNULL)
    try:
        # ffmpeg serves a single client: the source retries until it listens
        src = fast_source(f"http://127.0.0.1:{port}/stream.mjpg")
        frames, _ = collect(src, 4.0)
    finally:
        ff.kill()
        ff.wait()
    assert len(frames) >= 10
    img = frames[-1].decode()
    assert img is not None and img.shape == (240, 320, 3)
    assert cv2.Laplacian(img, cv2.CV_64F).var() > 10  # the test pattern, not a blank frame
    assert np.mean([f.decode().mean() for f in frames[:3]]) > 20


def test_a_lying_content_length_costs_one_frame_not_the_stream():
    """A part claiming 3,999,999 bytes is cut at the next boundary that follows a whole
    JPEG, so the frames after it arrive at once instead of being swallowed."""
    from edge_app.sources.multipart import MultipartParser
    frames = [jpeg(seq=i) for i in range(6)]
    liar = part(frames[0]).replace(f"Content-Length: {len(frames[0])}".encode(),
                                   b"Content-Length: 3999999")
    p = MultipartParser(BOUNDARY)
    got = p.feed(liar + b"".join(part(f) for f in frames[1:]))
    assert got[0] == frames[0] and len(got) >= 5  # the last may wait for its successor
    assert got[1:] == frames[1:len(got)] and p.counts["bad_length"] == 1


def test_a_preamble_is_not_taken_for_the_missing_boundary():
    from edge_app.sources.multipart import MultipartParser
    frames = [jpeg(seq=i) for i in range(4)]
    stream = b"-- camera firmware 1.2 --\r\nhello\r\n" + b"".join(part(f) for f in frames)
    p = MultipartParser(None)  # no boundary in the Content-Type
    got = []
    for i in range(0, len(stream), 97):  # in small pieces, as a network delivers
        got += p.feed(stream[i:i + 97])
    assert got == frames[:len(got)] and len(got) >= 3


def test_a_trickling_stream_is_reconnected():
    """A server that sends one byte every 0.2 s never lets a read time out; the source
    reconnects when no whole frame came for its timeout."""
    def trickle(h):
        headers(h)
        for b in part(jpeg())[:-200]:
            h.wfile.write(bytes([b]))
            h.wfile.flush()
            time.sleep(0.2)
    srv = ScriptedMjpegServer([trickle, good(200, 0.02)])
    src = MjpegSource(srv.url, timeout=1.0, reconnect_min=0.05)
    slot, stop = LatestSlot(), threading.Event()
    t = threading.Thread(target=src.run, args=(slot, stop), daemon=True)
    t.start()
    try:
        deadline = time.time() + 10
        while src.counts["frames"] < 5 and time.time() < deadline:
            time.sleep(0.05)
        assert src.counts["frames"] >= 5 and src.counts["reconnects"] >= 1
        assert "no whole frame" in src.last_error
    finally:
        stop.set()
        t.join(5)
        srv.close()
