"""crack-distill serve for real on loopback (uvicorn in its own process) with a small IR:
masks equal in-process inference, dynamic batching under concurrent load, refusals with
reasons, and the car's remote path: fallback to the local device when the server is
killed mid-run, back to the server after its restart, and replay through the server."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from edge_app.config import load_car_config
from edge_app.model.ir_model import IRModel
from edge_app.model.remote_infer import RemoteClient
from edge_app.sources.mjpeg import MjpegSource
from edge_app.tools.contract_model import build, save
from edge_app.vision.measure import crack_mask
from tests.conftest import REPO
from tests.services.car_run import PipelineRun
from tests.services.streams import ScriptedMjpegServer, good, jpeg

KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`crack-distill serve` in a subprocess on a fixed loopback port."""

    def __init__(self, model, port, *extra):
        self.model, self.port, self.extra = model, port, extra
        self.url = f"http://127.0.0.1:{port}"
        self.proc = None

    def start(self):
        env = {**os.environ, "CRACK_SERVE_KEYS": KEY}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "distill.cli", "serve", str(self.model), "--port",
             str(self.port), *self.extra], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stderr.read()) from None
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def post(url, body, key=KEY, query=""):
    req = urllib.request.Request(url + "/v1/segment" + query, data=body, method="POST",
                                 headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read(), {k.lower(): v for k, v in e.headers.items()}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save(build(448, 60.0), tmp_path_factory.mktemp("serve") / "dark.xml")


@pytest.fixture(scope="module")
def server(model):
    s = Server(model, free_port(), "--max-wait-ms", "40", "--max-batch", "8",
               "--max-bytes", "300000").start()
    yield s
    s.kill()


def test_masks_match_in_process_inference_and_measurements_come_on_request(server, model):
    body = jpeg(line=12)
    status, png, headers = post(server.url, body)
    assert status == 200 and headers["content-type"] == "image/png"
    mask = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    img = cv2.resize(cv2.imdecode(np.frombuffer(body, np.uint8), 1), (448, 448),
                     interpolation=cv2.INTER_LINEAR)
    want = crack_mask(IRModel(model).infer(img), 0.5)
    assert mask.shape == (448, 448) and mask.any()
    assert np.array_equal(mask > 0, want > 0)
    from crack_common.files import sha256_file
    assert headers["x-model-sha256"] == sha256_file(model)
    status, data, _ = post(server.url, body, query="?measure=1")
    out = json.loads(data)
    assert status == 200 and len(out["cracks"]) == 1 and out["crack_ratio"] > 0
    again = cv2.imdecode(np.frombuffer(base64.b64decode(out["png"]), np.uint8), 0)
    assert np.array_equal(again, mask)


def test_a_multipart_upload_is_accepted_as_curl_sends_it(server, tmp_path):
    """curl -F file=@photo.jpg: the same mask as the raw body; other form fields and a
    form without the image are handled."""
    import shutil
    import subprocess
    body = jpeg(line=12)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(body)
    want = post(server.url, body)[1]
    assert shutil.which("curl"), "curl is part of the test machine"
    r = subprocess.run(["curl", "-s", "-H", f"X-API-Key: {KEY}", "-F", "note=road 7",
                        "-F", f"file=@{photo}", "-o", str(tmp_path / "out.png"),
                        "-w", "%{http_code}", server.url + "/v1/segment"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "200" and (tmp_path / "out.png").read_bytes() == want
    r = subprocess.run(["curl", "-s", "-H", f"X-API-Key: {KEY}", "-F", "note=no image",
                        "-w", "\n%{http_code}", server.url + "/v1/segment"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.endswith("400") and "a form upload without a file" in r.stdout


def test_refusals_say_why(server):
    assert post(server.url, jpeg(), key="")[0] == 401
    assert post(server.url, jpeg(), key="wrong")[0] == 401
    status, data, _ = post(server.url, b"not an image at all")
    assert status == 400 and b"not a JPEG or PNG" in data
    assert post(server.url, b"")[0] == 400
    assert post(server.url, b"\xff" * 400_000)[0] == 413
    assert post(server.url, jpeg(), query="?format=gif")[0] == 400
    health = json.loads(urllib.request.urlopen(server.url + "/healthz").read())
    assert health["model"]["size"] == 448 and health["status"] == "ok"


def test_a_request_with_two_body_lengths_is_refused(server):
    """Content-Length and Transfer-Encoding together: 400 (RFC 9112), never a guess."""
    body = jpeg(line=12)
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    head = (f"POST /v1/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n"
            f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(head + chunked)
        reply = s.recv(65536)
    assert reply.split()[1] == b"400", reply[:200]


def test_slow_clients_neither_hold_the_server_nor_stay(model):
    """Slowloris for real: 60 clients from 127.0.0.2 that add a header line every second
    never finish a request. The per-address cap keeps slots for everyone else (a request
    from 127.0.0.1 is answered at once) and the head deadline closes every slow one."""
    srv = Server(model, free_port(), "--head-timeout", "2").start()
    closed = []

    def slow():
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        t0 = time.monotonic()
        try:
            s.connect(("127.0.0.1", srv.port))
            s.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            s.settimeout(1.0)
            while time.monotonic() - t0 < 15:
                try:
                    s.recv(4096)  # an answer (503) or the close: either way it is over
                    break
                except socket.timeout:
                    s.sendall(b"X-Padding: a\r\n")
        except OSError:
            pass
        closed.append(time.monotonic() - t0)
        s.close()

    attackers = [threading.Thread(target=slow, daemon=True) for _ in range(60)]
    try:
        for t in attackers:
            t.start()
        time.sleep(1.0)
        t0 = time.monotonic()
        assert post(srv.url, jpeg(line=12))[0] == 200
        assert time.monotonic() - t0 < 2.0
        for t in attackers:
            t.join(20)
        assert len(closed) == 60 and max(closed) < 5.0, sorted(closed)[-5:]
    finally:
        srv.kill()


def rss_mb(pid):
    from pathlib import Path
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_decompression_bomb_is_refused_before_decoding(server):
    """A JPEG of a few hundred bytes claiming 20000x20000 px (and a PNG likewise) gets 413
    from its header, and the server's memory does not grow by the gigabytes a decoder
    would allocate for it."""
    from tests.crack_common.test_image_header import claiming
    before = rss_mb(server.proc.pid)
    for ext in (".jpg", ".png"):
        ok, buf = cv2.imencode(ext, np.full((64, 64, 3), 128, np.uint8))
        bomb = claiming(buf.tobytes(), 20000, 20000)
        assert len(bomb) < 5000
        with ThreadPoolExecutor(3) as pool:  # three at once, as the review sent them
            answers = list(pool.map(lambda b: post(server.url, b), [bomb] * 3))
        assert all(a[0] == 413 and b"20000x20000" in a[1] for a in answers), answers
    assert rss_mb(server.proc.pid) - before < 100
    assert post(server.url, jpeg(line=12))[0] == 200  # still serving


def metric(url, name):
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def test_concurrent_requests_are_batched(server):
    n0, s0 = metric(server.url, "crack_serve_batch_size_count"), \
        metric(server.url, "crack_serve_batch_size_sum")
    body = jpeg(line=6)
    with ThreadPoolExecutor(16) as pool:
        codes = [r[0] for r in pool.map(lambda _: post(server.url, body), range(32))]
    assert codes == [200] * 32
    runs = metric(server.url, "crack_serve_batch_size_count") - n0
    images = metric(server.url, "crack_serve_batch_size_sum") - s0
    assert images == 32 and runs < 32 and images / runs >= 2  # several images per run
    assert metric(server.url, "crack_serve_requests_total") >= 32


def test_car_falls_back_to_local_when_the_server_dies_and_returns_after_restart(model):
    srv = Server(model, free_port()).start()
    cfg = load_car_config(None, [{
        "inference": {"model": str(model), "device": f"remote:{srv.url}",
                      "remote_api_key": KEY, "remote_timeout_s": 1.0,
                      "remote_retry_s": 0.3},
        "drive": {"frame_timeout_s": 3.0}, "server": {"enabled": False}}])
    stream = ScriptedMjpegServer([good(100000, 0.01, line=8)])
    run = PipelineRun(cfg, MjpegSource(stream.url, reconnect_min=0.05))
    pipe, results = run.pipe, run.results
    try:
        run.wait_for("remote", 20)
        srv.kill()  # mid-run
        run.wait_for("local", 20, run.mark())
        srv.start()  # same port
        run.wait_for("remote", 20, run.mark())
    finally:
        run.stop()
        stream.close()
        srv.kill()
    assert pipe.fault is None
    paths = [r.path for r in results]
    assert [r.index for r in results] == list(range(len(results)))  # no frame lost
    first_local = paths.index("local")
    assert "remote" in paths[first_local:]  # came back
    assert all(r.mask.any() for r in results[5:])  # every path found the line
    assert pipe.infer.counts["remote_failed"] >= 1


def test_replay_through_the_server(model, tmp_path):
    from tests.conftest import run_cli
    r = run_cli("edge_app.cli", ["run", "--source", "demo", "--model", str(model), "--sim",
                                 "--record", str(tmp_path), "--port", "0", "--fast",
                                 "--max-frames", "10", "--json"])
    assert r.returncode == 0, r.stderr
    run_dir = json.loads(r.stdout.strip().splitlines()[-1])["run_dir"]
    srv = Server(model, free_port()).start()
    try:
        from edge_app.review.replay import replay
        out = replay(run_dir, None, f"remote:{srv.url}", api_key=KEY)
    finally:
        srv.kill()
    local = replay(run_dir, model)
    # the frames travel as JPEG: masks of a dark-pixel model move a little at the edges
    assert out["frames"] == 10 and out["mask_iou_mean"] > 0.85
    assert abs(out["mask_iou_mean"] - local["mask_iou_mean"]) < 0.1
    assert out["model"].startswith("remote:")
    client = RemoteClient(srv.url, KEY, timeout=0.5)
    from edge_app.model.remote_infer import RemoteError
    with pytest.raises(RemoteError):
        client.health()  # the server is gone: a clear error, not a hang
