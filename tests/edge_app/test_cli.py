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
