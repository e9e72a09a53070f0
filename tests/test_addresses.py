"""Every address perfbench connects to passes the loopback allow-list, refused before any connection:
the Dask scheduler, the agent's and the memory endpoint's URLs (targets: test_engine.py, test_cli.py)."""

from __future__ import annotations

import socket

import pytest

from perfbench import cli, shapes
from perfbench.agent import AgentCollector
from perfbench.errors import ConfigError, UnsafeTargetError
from perfbench.load import run_load
from perfbench.profilers.tracemalloc import TracemallocCollector
from perfbench.safety import check_address, is_loopback_host


@pytest.fixture
def no_connections_off_loopback(monkeypatch):
    """Fails the test on any attempt to connect a socket to a host that is not loopback."""
    tried: list = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(address) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not is_loopback_host(str(host)):
            tried.append(address)
            raise AssertionError(f"connected to {address}")

    def connect(self, address):
        guard(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        guard(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield tried
    assert not tried


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "127.0.0.1:8786", "tcp://[::1]:8786",
                                     "tls://localhost:8786", "inproc://192.0.2.1/1/2"])
def test_loopback_scheduler_addresses_pass(address):
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "10.0.0.5:8786", "tls://scheduler.example:8786",
                                     "tcp://[2001:db8::1]:8786", "tcp://127.0.0.1.example:1"])
def test_other_scheduler_addresses_are_refused_unless_allowed(address):
    with pytest.raises(UnsafeTargetError, match="not loopback.*--allow-host"):
        check_address(address, what="Dask scheduler")
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    assert check_address(address, [host.upper()]) == address


@pytest.mark.parametrize("address", ["tcp://:8786", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:x"])
def test_malformed_scheduler_addresses(address):
    with pytest.raises(ConfigError):
        check_address(address)


def test_run_load_refuses_a_remote_scheduler_before_connecting(tmp_path, monkeypatch, no_connections_off_loopback):
    from perfbench.distributed import coordinator

    monkeypatch.setattr(coordinator, "connect", lambda scheduler: pytest.fail("connected to the scheduler"))
    with pytest.raises(UnsafeTargetError, match="Dask scheduler host '10.0.0.5' is not loopback"):
        run_load("http://127.0.0.1:9", shapes.constant(1, 1), scheduler="tcp://10.0.0.5:8786", runs_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_cli_refuses_a_remote_scheduler_with_exit_2(tmp_path, capsys, monkeypatch, no_connections_off_loopback):
    from perfbench.distributed import coordinator

    monkeypatch.setattr(coordinator, "connect", lambda scheduler: pytest.fail("connected to the scheduler"))
    code = cli.main(["run", "http://127.0.0.1:9", "--scheduler", "tcp://10.0.0.5:8786", "--duration", "1",
                     "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--allow-host 10.0.0.5" in err
    assert not (tmp_path / "runs").exists()


def test_agent_and_memory_endpoint_urls_are_refused_off_loopback(no_connections_off_loopback):
    with pytest.raises(UnsafeTargetError, match="'10.0.0.7' is not loopback"):
        AgentCollector("t" * 16, url="http://10.0.0.7:8080")
    AgentCollector("t" * 16, url="http://10.0.0.7:8080", allow_hosts=("10.0.0.7",))  # named: allowed
    with pytest.raises(UnsafeTargetError, match="'10.0.0.7' is not loopback"):
        TracemallocCollector("http://10.0.0.7:8080", "t" * 16)

    class Service:  # an object with a URL, as a started ServiceProcess or DemoProcess
        url = "http://10.0.0.7:8080"
        memory_token = "t" * 16

    with pytest.raises(UnsafeTargetError):
        TracemallocCollector(Service())
