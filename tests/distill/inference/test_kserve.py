"""The car's remote inference over the KServe v2 protocol (`remote:kserve+http://HOST:PORT/
v2/models/NAME`), against a protocol-conformant server on loopback: the model's metadata
read, logits equal to local inference in binary and in JSON answers, wrong URLs and
wrong models refused by name, and a car run that infers there and falls back to its own
device when the server dies."""

import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from edge_app.config import load_car_config
from edge_app.model.ir_model import IRModel
from edge_app.model.remote_infer import KServeClient, RemoteError, make_client
from edge_app.sources.mjpeg import MjpegSource
from edge_app.tools.contract_model import build, save
from tests.conftest import REPO
from tests.services.car_run import PipelineRun
from tests.services.streams import ScriptedMjpegServer, good


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KServe:
    def __init__(self, model, *extra):
        self.port = free_port()
        self.url = f"kserve+http://127.0.0.1:{self.port}/v2/models/crack"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.services.kserve",
                                      str(model), "--port", str(self.port), *extra],
                                     cwd=REPO, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/health/ready",
                                       timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the KServe test server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save(build(448, 60.0), tmp_path_factory.mktemp("kserve") / "dark.xml")


def frame_with_a_line():
    img = np.full((448, 448, 3), 170, np.uint8)
    img[200:206, 40:400] = 30
    return img


@pytest.mark.parametrize("answers", ["binary", "json"])
def test_logits_over_kserve_v2_equal_local_inference(model, answers):
    srv = KServe(model, *(["--json-only"] if answers == "json" else []))
    try:
        client = make_client(srv.url, timeout=10)
        assert isinstance(client, KServeClient)
        info = client.health()["model"]
        assert info["name"] == "crack" and info["size"] == 448
        img = frame_with_a_line()
        logits, _ = client.segment(img)
        want = IRModel(model).infer(img)
        assert logits.shape == (2, 448, 448) and logits.dtype == np.float32
        assert np.abs(logits - want).max() < 0.05
        assert ((logits[1] > logits[0]) == (want[1] > want[0])).mean() > 0.999
        assert (logits[1] > logits[0])[200:206, 60:380].mean() > 0.9  # it found the line
    finally:
        srv.kill()


def test_wrong_urls_and_models_are_refused_by_name(model):
    with pytest.raises(ValueError, match="the path must be /v2/models/NAME"):
        KServeClient("kserve+http://127.0.0.1:1/models/crack")
    srv = KServe(model)
    try:
        other = KServeClient(srv.url.replace("/crack", "/other"), timeout=5)
        with pytest.raises(RemoteError, match="is not ready"):
            other.health()
    finally:
        srv.kill()
    with pytest.raises(RemoteError):
        KServeClient(srv.url, timeout=1).health()  # nobody there any more


def test_a_car_infers_over_kserve_and_falls_back_when_the_server_dies(model):
    srv = KServe(model)
    cfg = load_car_config(None, [{
        "inference": {"model": str(model), "device": f"remote:{srv.url}",
                      "remote_timeout_s": 1.0, "remote_retry_s": 0.3},
        "drive": {"frame_timeout_s": 3.0}, "server": {"enabled": False}}])
    stream = ScriptedMjpegServer([good(100000, 0.01, line=8)])
    run = PipelineRun(cfg, MjpegSource(stream.url, reconnect_min=0.05))
    pipe, results = run.pipe, run.results
    try:
        run.wait_for("remote", 10)
        assert pipe.infer.model["name"] == "crack"
        srv.kill()
        run.wait_for("local", 10, run.mark())
    finally:
        run.stop()
        stream.close()
        srv.kill()
    assert pipe.fault is None
    assert [r.index for r in results] == list(range(len(results)))  # no frame lost
    assert all(r.mask.any() for r in results[5:])
