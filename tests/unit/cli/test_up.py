"""``lesslabels up`` before it starts anything: the ports it was given, and the line that points
the other commands at it. Nothing here starts a service."""

from __future__ import annotations

import contextlib
import socket

import pytest

from lesslabels.cli import main as cli_main
from lesslabels.cli.common import SERVICES, ArgumentParser, add_client_flags
from lesslabels.cli.stack import LocalStack, export_line, port_taken


@contextlib.contextmanager
def listening(reuseport: bool):
    """A socket listening on a free loopback port, as another stack's gRPC server (SO_REUSEPORT) or
    another program would hold it."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        if reuseport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _up(tmp_path, *flags):
    ports = [arg for name in SERVICES for arg in (f"--{name}-port", "0")]
    return cli_main.main(["up", "--state-dir", str(tmp_path / "state"), *ports, *flags])


def test_a_port_another_stack_holds_fails_fast_naming_it_and_starts_nothing(tmp_path, capsys):
    with listening(reuseport=True) as port:
        assert port_taken("127.0.0.1", port)
        assert _up(tmp_path, "--pool-port", str(port), "--no-web") == 1
    captured = capsys.readouterr()
    assert f"port {port} (pool) on 127.0.0.1 already in use" in captured.err
    assert "--pool-port" in captured.err and "nothing was started" in captured.err
    assert "ready" not in captured.out and "resumed" not in captured.out and "Traceback" not in captured.err
    state = tmp_path / "state"
    assert not (state / "logs").exists() and not (state / "pool.sqlite3").exists()
    # The state folder is not left locked: another up may take it at once.
    stack = LocalStack(state)
    stack.lock()
    stack.unlock()


def test_every_taken_port_is_named_the_web_port_too(tmp_path, capsys):
    with listening(reuseport=False) as web, listening(reuseport=True) as scorer:
        assert _up(tmp_path, "--scorer-port", str(scorer), "--web-port", str(web)) == 1
    err = capsys.readouterr().err
    assert f"ports {scorer} (scorer), {web} (web)" in err


def test_a_free_port_is_not_taken():
    with listening(reuseport=False) as port:
        pass
    assert not port_taken("127.0.0.1", port)


def test_the_export_line_names_every_service_the_commands_read(monkeypatch):
    stack = LocalStack("unused", ports={})
    stack.ports = {"pool": 1001, "trainer": 1002, "scorer": 1003, "coordinator": 1004, "web": 1005}
    line = export_line(stack)
    assert line.startswith("export ")
    assigned = dict(part.split("=", 1) for part in line.removeprefix("export ").split())
    assert assigned == {
        "LESSLABELS_POOL_ADDRESS": "127.0.0.1:1001",
        "LESSLABELS_TRAINER_ADDRESS": "127.0.0.1:1002",
        "LESSLABELS_SCORER_ADDRESS": "127.0.0.1:1003",
        "LESSLABELS_COORDINATOR_ADDRESS": "127.0.0.1:1004",
    }
    # `label export` and `labelstudio export` take the scorer (and coordinator) from these variables.
    for name, value in assigned.items():
        monkeypatch.setenv(name, value)
    parser = ArgumentParser()
    add_client_flags(parser, "coordinator", "scorer", "pool")
    args = parser.parse_args([])
    assert (args.scorer_address, args.coordinator_address, args.pool_address) == (
        "127.0.0.1:1003",
        "127.0.0.1:1004",
        "127.0.0.1:1001",
    )


def test_metrics_ports_follow_the_base_in_a_fixed_order_and_reach_every_command_line():
    stack = LocalStack("unused", ports={}, web_port=0, metrics_port=9100)
    assert stack.metrics_ports == {"pool": 9100, "trainer": 9101, "scorer": 9102, "coordinator": 9103, "web": 9104}
    stack.ports = {"pool": 1001, "trainer": 1002, "scorer": 1003, "coordinator": 1004, "web": 1005}
    for name, port in stack.metrics_ports.items():
        line = stack.command_line(name)
        assert line[line.index("--metrics-port") + 1] == str(port), name
    # Off by default: no flag, no port.
    plain = LocalStack("unused", ports={}, web_port=None)
    plain.ports = dict(stack.ports)
    assert plain.metrics_ports == {} and "--metrics-port" not in plain.command_line("pool")
    assert LocalStack("unused", web_port=None, metrics_port=9100).metrics_ports == {
        "pool": 9100,
        "trainer": 9101,
        "scorer": 9102,
        "coordinator": 9103,
    }


def test_a_taken_metrics_port_fails_fast_and_starts_nothing(tmp_path, capsys):
    with listening(reuseport=False) as port:
        assert _up(tmp_path, "--no-web", "--metrics-port", str(port - 2)) == 1
    err = capsys.readouterr().err
    assert f"metrics port {port} (scorer metrics) on 127.0.0.1 already in use" in err
    assert "--metrics-port" in err and "nothing was started" in err
    assert not (tmp_path / "state" / "logs").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--metrics-port", "-1"], "--metrics-port -1: must be within 0..65531"),
        (["--metrics-port", "65533"], "--metrics-port 65533: must be within 0..65531"),
        (["--metrics-port", "50049"], "include 50051, a service port"),
    ],
)
def test_impossible_metrics_ports_are_refused_before_anything_starts(tmp_path, capsys, flags, message):
    ports = ["--pool-port", "50051", "--trainer-port", "0", "--scorer-port", "0", "--coordinator-port", "0"]
    assert cli_main.main(["up", "--state-dir", str(tmp_path / "state"), *ports, "--no-web", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "state").exists()
