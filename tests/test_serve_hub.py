"""`ltzoo serve-hub` / LocalHub never report serving a port that another process answers on."""

import socket
from pathlib import Path

import pytest

import ltzoo_cli as cli
from ltzoo import hub_server

RELEASES = Path(__file__).resolve().parents[1] / "releases"


@pytest.fixture
def busy_port():
    """A port on 127.0.0.1 that another listener holds for the test's duration."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_a_hub_on_a_port_another_process_holds_is_refused_before_anything_starts(busy_port, tmp_path):
    hub = hub_server.LocalHub(RELEASES, port=busy_port, workdir=tmp_path / "olah")
    with pytest.raises(hub_server.HubServerError, match=f"port {busy_port} on 127.0.0.1 is in use by another process"):
        hub.start()
    assert hub._proc is None and not (tmp_path / "olah").exists()


def test_serve_hub_on_a_busy_port_prints_one_error_line_and_no_endpoint(busy_port, capsys):
    assert cli.main(["serve-hub", str(RELEASES), "--port", str(busy_port)]) == 2
    out, err = capsys.readouterr()
    assert "HF_ENDPOINT" not in out and "serving" not in out
    assert err.startswith(f"error: port {busy_port} on 127.0.0.1 is in use") and err.count("\n") == 1


def test_a_free_port_is_reported_free_and_a_held_one_not(busy_port):
    assert not hub_server.port_is_free(busy_port)
    assert hub_server.port_is_free(hub_server.free_port())
