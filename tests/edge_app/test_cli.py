"""crack-car's command line, on the real OpenVINO runtime of this interpreter."""

import json
import subprocess
import sys

import pytest

from crack_common import project_version


def test_version(cli):
    r = cli("edge_app.cli", ["--version"])
    assert r.returncode == 0 and r.stdout.strip() == f"crack-car {project_version()}"


@pytest.mark.parametrize("args", [[], ["devices"]])
def test_help_on_every_subcommand(cli, args):
    r = cli("edge_app.cli", [*args, "--help"])
    assert r.returncode == 0 and r.stdout.startswith("usage: crack-car")


def test_devices_lists_the_cpu_of_the_installed_runtime(cli):
    from edge_app.model.ov_runtime import import_openvino
    r = cli("edge_app.cli", ["devices", "--json"])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "CPU" in [d["device"] for d in out["devices"]]
    assert out["openvino"] == import_openvino().get_version()
    if sys.version_info < (3, 10):  # the car-runtime leg
        assert out["openvino"].startswith("2022.3")


def test_edge_app_never_imports_torch(cli):
    code = ("import sys, edge_app.cli, edge_app.model.ov_runtime, crack_common.metrics, "
            "crack_common.noise; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_model_whose_weights_differ_from_its_card_is_refused(cli, tmp_path, dark_model):
    """A copy of an IR with bytes of its .bin changed still loads and runs, so the car
    checks the .bin against the card's sha256 at start: refused with the reason, or run
    with --allow-modified-model, when detections carry the real hash."""
    import hashlib
    import shutil

    import yaml
    for ext in (".xml", ".bin"):
        shutil.copyfile(dark_model.with_suffix(ext), tmp_path / f"m{ext}")
    data = bytearray((tmp_path / "m.bin").read_bytes())
    card = {"name": "m", "files": {"xml": "m.xml", "bin": "m.bin",
                                   "bin_sha256": hashlib.sha256(bytes(data)).hexdigest()}}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(card))
    args = ["run", "--source", "demo", "--sim", "--model", str(tmp_path / "m.xml"),
            "--max-frames", "3", "--no-record", "--port", "0", "--json"]
    r = cli("edge_app.cli", args)
    assert r.returncode == 0, r.stderr  # the intact copy runs
    import re
    consts = [(int(m[2]), int(m[1])) for m in re.finditer(
        r'element_type="f(?:16|32)"[^>]*?offset="(\d+)"[^>]*?size="(\d+)"',
        (tmp_path / "m.xml").read_text())]
    size, offset = max(consts)  # the largest float constant: weights, not a shape
    data[offset + size // 2] ^= 0x01  # a damaged copy: one low bit of a weight flipped
    (tmp_path / "m.bin").write_bytes(bytes(data))
    real = hashlib.sha256(bytes(data)).hexdigest()
    r = cli("edge_app.cli", args)
    assert r.returncode != 0 and "its model card names" in r.stderr
    assert "--allow-modified-model" in r.stderr
    r = cli("edge_app.cli", [*args, "--allow-modified-model"])
    assert r.returncode == 0, r.stderr
    assert "running it anyway" in r.stderr
    assert json.loads(r.stdout)["model_sha256"] == real


def test_an_unreadable_model_card_is_named_not_read_as_empty(cli, tmp_path, dark_model):
    import shutil
    for ext in (".xml", ".bin"):
        shutil.copyfile(dark_model.with_suffix(ext), tmp_path / f"m{ext}")
    (tmp_path / "m.yaml").write_text("threshold: 0.4\nseed_threshold: [0.9\n")  # torn
    r = cli("edge_app.cli", ["run", "--source", "demo", "--sim", "--model",
                             str(tmp_path / "m.xml"), "--max-frames", "2", "--no-record",
                             "--port", "0"])
    assert r.returncode != 0 and "m.yaml: the model card is not valid YAML" in r.stderr


def test_a_wrong_flag_is_reported_with_the_subcommands_usage(cli):
    r = cli("edge_app.cli", ["run", "--bogus"])
    assert r.returncode == 2
    assert r.stderr.startswith("usage: crack-car run ")
    assert "crack-car run: error: unrecognized arguments: --bogus" in r.stderr


def test_a_closed_pipe_is_not_an_error():
    import subprocess
    import sys
    # the reader is gone before the schema is written: the write meets a closed pipe
    p = subprocess.run(["bash", "-c", "set -o pipefail; "
                        f"{sys.executable} -m edge_app.cli config --schema | true"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == ""
