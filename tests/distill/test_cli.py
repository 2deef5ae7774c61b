"""crack-distill's command line: --version and --help everywhere."""

import pytest

from crack_common import project_version


def test_version(cli):
    r = cli("distill.cli", ["--version"])
    assert r.returncode == 0 and r.stdout.strip() == f"crack-distill {project_version()}"
    assert project_version() != "unknown"


@pytest.mark.parametrize("args", [[], ["synth"], ["data"], ["data", "check"]])
def test_help_on_every_subcommand(cli, args):
    r = cli("distill.cli", [*args, "--help"])
    assert r.returncode == 0 and r.stdout.startswith("usage: crack-distill")


def test_unknown_subcommand_is_rejected(cli):
    r = cli("distill.cli", ["frobnicate"])
    assert r.returncode == 2 and "invalid choice" in r.stderr


SHARED = [  # (option, value, dotted key in the printed config, expected)
    (["--work", "runs/exp1"], "work", "runs/exp1"),
    (["--teacher", "t.pth"], "teacher", "t.pth"),
    (["--data", "some/set:2"], "data.sources", ["some/set:2"]),
    (["--teacher-device", "cuda:1"], "cache.teacher_device", "cuda:1"),
    (["--views", "3"], "cache.views", 3),
    (["--noise-mix", "0.25"], "cache.noise_mix", 0.25),
    (["--epochs", "7"], "train.epochs", 7),
    (["--device", "cuda"], "train.device", "cuda"),
    (["--temperature", "dynamic"], "train.temperature", "dynamic"),
    (["--no-kd"], "train.kd", False),
    (["--student-init", "w.pth"], "student.init", "w.pth"),
    (["--int8"], "export.int8", True),
    (["--set", "train.lr=0.002"], "train.lr", 0.002),
]


@pytest.mark.parametrize("option, key, expected", SHARED)
@pytest.mark.parametrize("position", ["before", "after"])
def test_shared_options_work_before_and_after_the_subcommand(option, key, expected, position):
    import io
    from contextlib import redirect_stdout

    import yaml

    from distill.cli import main
    argv = option + ["config"] if position == "before" else ["config"] + option
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(argv) == 0
    node = yaml.safe_load(out.getvalue())
    for part in key.split("."):
        node = node[part]
    assert node == expected


def test_errors_are_one_line_with_journald_priorities_under_systemd(cli, tmp_path):
    import os
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    r = cli("distill.cli", ["export", "--checkpoint", str(bad), "--work", str(tmp_path)],
            env={**os.environ, "JOURNAL_STREAM": "8:1234"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("<") for ln in lines) and lines[-1].startswith("<3>")
    r = cli("distill.cli", ["export", "--checkpoint", str(bad), "--work", str(tmp_path), "-v"])
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_progress_bars_are_off_when_output_is_not_a_terminal(cli, tmp_path):
    r = cli("distill.cli", ["synth", "--out", str(tmp_path / "s"), "--count", "3", "--size",
                            "64", "--workers", "1"])
    assert r.returncode == 0, r.stderr
    assert "%|" not in r.stderr and "img/s" not in r.stderr  # no bar in a pipe or a log
    from crack_common.progress import bar
    b = bar(range(3), enabled=True)  # pytest's stderr is not a TTY either: auto-off
    assert list(b) == [0, 1, 2] and b.disable


def tiny_trained_work(cli, tmp_path):
    """(data folder, work folder) of a one-epoch HrSegNet-B16 trained on 6 made pairs."""
    from tests.distill.helpers import make_data
    data = make_data(tmp_path / "data", count=6)
    work = tmp_path / "work"
    r = cli("distill.cli", ["train", "--data", str(data), "--work", str(work), "--no-kd",
                            "--student", "hrsegnet_b16", "--set", "size=64", "--set",
                            "train.epochs=1", "--set", "train.batch=2", "--set",
                            "data.val_ratio=0.34", "--set", "export.size=64", "--quiet"])
    assert r.returncode == 0, r.stderr
    return data, work


def test_the_work_folder_remembers_its_data_and_student(cli, tmp_path):
    """`export --work W --int8` after `train --work W --data D --student S`: the data for
    calibration and the student come from W's own config.yaml; flags still override."""
    data, work = tiny_trained_work(cli, tmp_path)
    r = cli("distill.cli", ["export", "--work", str(work), "--int8", "--checkpoint",
                            str(work / "checkpoints" / "last.pth")], timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"settings of {work / 'config.yaml'}" in r.stderr
    for name in ("student.xml", "student.yaml", "student_int8.xml", "student_int8.yaml"):
        assert (work / "export" / name).is_file(), name
    r = cli("distill.cli", ["config", "--work", str(work), "--student", "pct"])
    assert "name: pct" in r.stdout and str(data) in r.stdout  # a flag beats the memory


def test_export_check_fails_loudly_when_the_ncs2_runtime_cannot_check(cli, tmp_path):
    import os

    import yaml

    _, work = tiny_trained_work(cli, tmp_path)
    env = {**os.environ, "CRACK_CAR_PY39": str(tmp_path / "no-python39")}
    r = cli("distill.cli", ["export", "--work", str(work), "--check", "--checkpoint",
                            str(work / "checkpoints" / "last.pth")], env=env)
    assert r.returncode == 1
    assert "OpenVINO 2022.3 (MYRIAD) check did not run" in r.stderr
    card = yaml.safe_load((work / "export" / "student.yaml").read_text())
    assert card["export_check"]["openvino 2022.3 (MYRIAD)"].startswith("not run")


def test_an_ir_is_scored_without_torch_and_a_missing_extra_is_one_line(tmp_path):
    """predict on an IR needs no PyTorch; a command that needs a package that is not
    installed says which extra brings it, in one line, no traceback."""
    import subprocess
    import sys

    import cv2
    import numpy as np

    from crack_common.cli_util import missing_module_hint
    from tests.conftest import REPO
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    no_torch = ("import sys; sys.modules['torch'] = None; from distill.cli import main; "
                "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", no_torch, "predict",
                        str(REPO / "models" / "crack-hrsegnet-b16.xml"), str(photo)],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "p.png" in r.stdout
    r = subprocess.run([sys.executable, "-c", no_torch, "describe", "--student"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "'torch', which comes with the 'distill' extra" in r.stderr
    assert "'serve' extra" in missing_module_hint(ModuleNotFoundError(name="uvicorn"))
    assert missing_module_hint(ModuleNotFoundError(name="something_else")) is None


def test_each_subcommand_shows_only_its_own_options(cli):
    import re

    from distill.cli import OWN_OPTIONS
    shared = set().union(*OWN_OPTIONS.values())
    for name, own in OWN_OPTIONS.items():
        r = cli("distill.cli", [name, "--help"])
        assert r.returncode == 0
        shown = {o for o in shared if re.search(rf"(?<![\w-]){o}(?![\w-])", r.stdout)}
        assert shown == own, name
    # a recipe passed whole to every stage still parses (scripts/research/train_*)
    r = cli("distill.cli", ["export", "--work", "nowhere", "--student", "pct", "--kd", "cwd",
                            "--temperature", "3", "--device", "cpu"])
    assert r.returncode == 1 and "unrecognized arguments" not in r.stderr
    r = cli("distill.cli", ["flips", "--help"])
    assert "(default: h)" in r.stdout  # defaults are shown


def test_eval_without_photos_says_how_to_give_them(cli, tmp_path):
    r = cli("distill.cli", ["eval", "models/crack-hrsegnet-b16.xml", "--work",
                            str(tmp_path / "w")])
    assert r.returncode == 1
    assert "nothing to score: give dataset folders after the model" in r.stderr
    assert "--data DIR to score its validation split" in r.stderr
