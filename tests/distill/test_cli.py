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
