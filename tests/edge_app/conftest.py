import socket

import pytest

from edge_app.tools.contract_model import build, save


@pytest.fixture(scope="session")
def dark_model(tmp_path_factory):
    """A real IR under the model contract (448 px) that marks dark pixels as cracks."""
    return save(build(448, 60.0), tmp_path_factory.mktemp("ir") / "dark.xml")


@pytest.fixture(scope="session")
def small_dark_model(tmp_path_factory):
    return save(build(64, 60.0), tmp_path_factory.mktemp("ir64") / "dark64.xml")


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A datagram socket where systemd would listen, named in NOTIFY_SOCKET."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()
