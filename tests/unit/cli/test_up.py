"""``lesslabels up`` before it starts anything: the ports it was given, and the line that points
the other commands at it. Nothing here starts a service."""

from __future__ import annotations

import contextlib
import socket

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
