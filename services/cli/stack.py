"""``lesslabels up``: the four services (and the web app) as local processes, an SQLite file and a checkpoint folder.

:class:`LocalStack` is the reusable part (``demo`` and the tests use it): it starts
``lesslabels pool|trainer|scorer|coordinator`` as child processes, waits until each answers
health SERVING, and stops them on exit: SIGTERM in reverse start order, a grace period, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import IO

from lesslabels.cli.common import SERVICES, ArgumentParser, CliError, command
from lesslabels.common import errors
from lesslabels.common.channels import wait_until_serving
from lesslabels.common.config import DEFAULT_PORTS, add_flag, env_name, open_bind_refusal

DEFAULT_STATE_DIR = ".lesslabels"
DEFAULT_WEB_PORT = 8080


class StackError(CliError):
    """A service did not start; the message carries the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_taken(host: str, port: int) -> bool:
    """Whether ``host:port`` cannot be bound now. The probe binds without SO_REUSEPORT, so a port a
    gRPC server (which sets it) or any other program listens on counts as taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _tail(path: pathlib.Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


class LocalStack:
    """Pool, trainer, scorer and coordinator as child processes sharing one state folder.

    ``ports``: service -> port (0 or missing = a free port). ``env``: extra environment for
    every child (e.g. ``OMP_NUM_THREADS``). Logs go to ``<state_dir>/logs/<service>.log``.
    ``web_port``: also start the web labelling app there (0 = a free port; None = no web app).
    ``metrics_port``: N > 0 serves each process's Prometheus metrics, on N, N+1, ... in the order
    pool, trainer, scorer, coordinator, web (``metrics_ports``); 0 = none.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike,
        *,
        ports: Mapping[str, int] | None = None,
        host: str = "127.0.0.1",
        token: str = "",
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 180.0,
        grace_seconds: float = 10.0,
        python: str = sys.executable,
        web_port: int | None = None,
        model_dirs: tuple[str, ...] = (),
        metrics_port: int = 0,
    ):
        self.web_port = web_port
        self.metrics_port = metrics_port
        self.model_dirs = tuple(model_dirs)
        self.state_dir = pathlib.Path(state_dir).resolve()
        self.host = host
        self.token = token
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.grace_seconds = grace_seconds
        self.python = python
        self._wanted_ports = dict(ports or {})
        self.ports: dict[str, int] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self._lock_file: IO[str] | None = None

    # ------------------------------------------------------------------ layout

    @property
    def lock_path(self) -> pathlib.Path:
        return self.state_dir / "stack.lock"

    def lock(self) -> None:
        """Take the state folder for this stack (an exclusive ``flock`` on ``stack.lock``, released
        when this process ends); StackError, touching nothing else, when another stack holds it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StackError(
                f"another 'lesslabels up' (process {holder}) is already running on {self.state_dir}: stop it "
                f"first (Ctrl-C in its terminal, or 'kill {holder}'), or give another --state-dir; nothing was "
                "started and its database was not touched"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def unlock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.state_dir / 'pool.sqlite3'}"

    @property
    def checkpoint_dir(self) -> pathlib.Path:
        return self.state_dir / "checkpoints"

    @property
    def log_dir(self) -> pathlib.Path:
        return self.state_dir / "logs"

    def address(self, service: str) -> str:
        return f"{self.host}:{self.ports[service]}"

    @property
    def addresses(self) -> dict[str, str]:
        return {name: self.address(name) for name in self.ports}

    @property
    def metrics_ports(self) -> dict[str, int]:
        """Process -> its metrics port (none without ``metrics_port``; the web app's only with it)."""
        if not self.metrics_port:
            return {}
        names = [*SERVICES, *(["web"] if self.web_port is not None else [])]
        return {name: self.metrics_port + i for i, name in enumerate(names)}

    def _metrics_args(self, name: str) -> list[str]:
        port = self.metrics_ports.get(name)
        return ["--metrics-port", str(port)] if port else []

    @property
    def web_url(self) -> str:
        return f"http://{self.address('web')}/"

    def command_line(self, service: str) -> list[str]:
        a = self.address
        if service == "web":
            return [
                self.python,
                "-m",
                "lesslabels",
                "web",
                "--host",
                self.host,
                "--port",
                str(self.ports["web"]),
                "--coordinator-address",
                a("coordinator"),
                "--pool-address",
                a("pool"),
                "--scorer-address",
                a("scorer"),
                "--log-level",
                "WARNING",
                *self._metrics_args("web"),
            ]
        models = [arg for folder in self.model_dirs for arg in ("--model-dir", folder)]
        extra = {
            "pool": ["--database-url", self.database_url],
            "trainer": ["--pool-address", a("pool"), "--checkpoint-dir", str(self.checkpoint_dir), *models],
            "scorer": ["--pool-address", a("pool"), "--checkpoint-dir", str(self.checkpoint_dir), *models],
            "coordinator": [
                "--pool-address",
                a("pool"),
                "--trainer-address",
                a("trainer"),
                "--scorer-address",
                a("scorer"),
            ],
        }[service]
        return [
            self.python,
            "-m",
            "lesslabels",
            service,
            "--host",
            self.host,
            "--port",
            str(self.ports[service]),
            *extra,
            *self._metrics_args(service),
        ]

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        if self.token:
            env["LESSLABELS_TOKEN"] = self.token
        # The children must import this checkout's packages whatever the caller's working folder.
        root = str(pathlib.Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    # ------------------------------------------------------------------ life cycle

    def check_ports(self) -> None:
        """StackError naming every asked-for port already taken, before anything starts: a service
        that cannot bind would otherwise leave its clients talking to whatever holds the port
        (another stack, whose runs this one would then report as its own)."""
        wanted = dict(self._wanted_ports)
        if self.web_port:
            wanted["web"] = self.web_port
        taken = [(name, port) for name, port in wanted.items() if port and port_taken(self.host, port)]
        metrics = [
            (f"{name} metrics", port) for name, port in self.metrics_ports.items() if port_taken(self.host, port)
        ]
        if metrics:
            listed = ", ".join(f"{port} ({name})" for name, port in metrics)
            raise StackError(
                f"metrics port{'s' if len(metrics) > 1 else ''} {listed} on {self.host} already in use: choose "
                f"another --metrics-port (it takes {len(self.metrics_ports)} ports from there); nothing was started"
            )
        if taken:
            listed = ", ".join(f"{port} ({name})" for name, port in taken)
            flags = " ".join(f"--{name}-port" for name, _ in taken)
            raise StackError(
                f"port{'s' if len(taken) > 1 else ''} {listed} on {self.host} already in use, by another "
                f"'lesslabels up' or another program: stop it, or choose free ports ({flags} N, or 0 for any "
                "free port); nothing was started"
            )

    def start(self) -> LocalStack:
        self.lock()  # before anything reaches the database, the logs or the ports
        try:
            self.check_ports()
        except StackError:
            self.unlock()
            raise
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            self.ports[name] = self._wanted_ports.get(name) or free_port(self.host)
        env = self.child_env()
        try:
            # All at once: each service waits for its own dependencies, and torch imports overlap.
            for name in SERVICES:
                self._spawn(name, env)
            deadline = time.monotonic() + self.startup_timeout
            for name in SERVICES:
                self._wait_serving(name, deadline)
            if self.web_port is not None:
                self.ports["web"] = self.web_port or free_port(self.host)
                self._spawn("web", env)
                self._wait_web(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, env: Mapping[str, str]) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            self.processes[name] = subprocess.Popen(
                self.command_line(name),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=self.state_dir,
                # Own session: Ctrl-C reaches only this process, which then stops the children in order.
                start_new_session=True,
            )
        finally:
            log.close()

    def _wait_web(self, deadline: float) -> None:
        proc, log = self.processes["web"], self.log_dir / "web.log"
        while True:
            if proc.poll() is not None:
                raise StackError(
                    f"the web app exited with code {proc.returncode} while starting; end of {log}:\n{_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"the web app did not answer {self.web_url}healthz within {self.startup_timeout:.0f}s; "
                    f"end of its log:\n{_tail(log)}"
                )
            try:
                with urllib.request.urlopen(self.web_url + "healthz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)

    def _wait_serving(self, name: str, deadline: float) -> None:
        proc = self.processes[name]
        while True:
            if proc.poll() is not None:
                raise StackError(
                    f"the {name} service exited with code {proc.returncode} while starting; "
                    f"end of {self.log_dir / (name + '.log')}:\n{_tail(self.log_dir / (name + '.log'))}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StackError(
                    f"the {name} service did not answer health SERVING within {self.startup_timeout:.0f}s;"
                    f" end of its log:\n{_tail(self.log_dir / (name + '.log'))}"
                )
            try:
                wait_until_serving(self.address(name), timeout=min(2.0, remaining), token=self.token)
                return
            except errors.Unavailable:
                continue

    def stop(self) -> None:
        """SIGTERM every child (coordinator first), wait up to the grace period, then SIGKILL."""
        order = [n for n in ("web", *reversed(SERVICES)) if n in self.processes]
        for name in order:
            proc = self.processes[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for name in order:
            proc = self.processes[name]
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self.processes.clear()
        self.unlock()

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise StackError(
                    f"the {name} service exited with code {proc.returncode}; end of its log:\n"
                    f"{_tail(self.log_dir / (name + '.log'))}"
                )

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def state_dir_flag(parser, default: str = DEFAULT_STATE_DIR) -> None:
    add_flag(parser, "--state-dir", default=default, help="folder of the SQLite database, checkpoints and logs")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt in the main thread, so the stack's exit path runs."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resumed_runs_text(runs) -> str:
    """What ``up`` says about the runs its coordinator picked up from the state folder."""
    if not runs:
        return "no unfinished runs to resume"
    described = [
        f"run {r.id} ({r.config.dataset}, {r.state.lower().replace('_', ' ')} at round {r.round})" for r in runs
    ]
    return f"resumed {len(runs)} unfinished run(s): " + ", ".join(described)


def export_line(stack: LocalStack) -> str:
    """The shell line that points every client command at this stack: each service's address
    variable (the scorer's too, which ``label export`` and ``labelstudio export`` ask for the
    model's suggestions)."""
    return "export " + " ".join(
        f"{env_name(f'--{name}-address')}={stack.address(name)}" for name in SERVICES if name in stack.ports
    )


def _resumed_runs(stack: LocalStack) -> str:
    from lesslabels.cli.client import Client
    from lesslabels.contract.vocabulary import ACTIVE_RUN_STATES

    try:
        with Client(stack.address("coordinator"), token=stack.token, timeout=10) as client:
            return resumed_runs_text(client.list_runs(states=tuple(ACTIVE_RUN_STATES)))
    except CliError as exc:
        return f"could not list the resumed runs ({exc})"


@command
def up_main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="lesslabels up", description="Run the four services and the web app locally until Ctrl-C."
    )
    state_dir_flag(parser)
    parser.add_argument("--host", default="127.0.0.1", help="interface the services listen on")
    for name in SERVICES:
        parser.add_argument(
            f"--{name}-port",
            type=int,
            default=DEFAULT_PORTS[name],
            help=f"{name} port (0 = any free port) [%(default)s]",
        )
    parser.add_argument(
        "--web-port",
        type=int,
        default=DEFAULT_WEB_PORT,
        help="port of the web labelling app (0 = any free port) [%(default)s]",
    )
    parser.add_argument("--no-web", action="store_true", help="do not start the web labelling app")
    add_flag(parser, "--token", default="", help="bearer token the services require")
    parser.add_argument(
        "--model-dir",
        action="append",
        default=[],
        help="a folder of base models runs may name (repeatable; given to the trainer and the scorer)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics from this port on: pool N, trainer N+1, scorer N+2, coordinator N+3, "
        "web N+4 (0 = no metrics) [%(default)s]",
    )
    parser.add_argument("--startup-timeout", type=float, default=180.0, help="seconds to wait for each service")
    args = parser.parse_args(argv)
    refusal = open_bind_refusal(args.host, args.token, offer_insecure=False)
    if refusal:
        raise CliError(f"--host {args.host}: {refusal}", exit_code=2)
    if not 0 <= args.web_port <= 65535:
        raise CliError(f"--web-port {args.web_port}: must be within 0..65535", exit_code=2)
    if not 0 <= args.metrics_port <= 65535 - len(SERVICES):
        raise CliError(
            f"--metrics-port {args.metrics_port}: must be within 0..{65535 - len(SERVICES)} (0 = no metrics)",
            exit_code=2,
        )
    if args.metrics_port:
        asked = {getattr(args, f"{name}_port") for name in SERVICES} | {args.web_port}
        clash = sorted(asked & set(range(args.metrics_port, args.metrics_port + len(SERVICES) + 1)))
        if clash:
            raise CliError(
                f"--metrics-port {args.metrics_port}: its ports {args.metrics_port}..{args.metrics_port + len(SERVICES)} "
                f"include {', '.join(map(str, clash))}, a service port; choose another",
                exit_code=2,
            )
    for name in SERVICES:
        port = getattr(args, f"{name}_port")
        if not 0 <= port <= 65535:
            raise CliError(f"--{name}-port {port}: must be within 0..65535", exit_code=2)
    stack = LocalStack(
        args.state_dir,
        host=args.host,
        token=args.token,
        startup_timeout=args.startup_timeout,
        ports={name: getattr(args, f"{name}_port") for name in SERVICES},
        web_port=None if args.no_web else args.web_port,
        model_dirs=tuple(str(pathlib.Path(d).resolve()) for d in args.model_dir),
        metrics_port=args.metrics_port,
    )
    with sigterm_as_interrupt():
        print(
            f"starting pool, trainer, scorer, coordinator{'' if args.no_web else ' and the web app'} "
            f"(state in {stack.state_dir}) ...",
            flush=True,
        )
        try:
            with stack:
                for name, address in stack.addresses.items():
                    if name != "web":
                        print(f"  {name:<12} {address}", flush=True)
                if "web" in stack.ports:
                    print(f"  {'web':<12} {stack.web_url}  (label in the browser)", flush=True)
                if stack.metrics_ports:
                    scraped = ", ".join(f"{name} {stack.host}:{port}" for name, port in stack.metrics_ports.items())
                    print(f"  metrics      {scraped} (/metrics)", flush=True)
                print(f"logs in {stack.log_dir}", flush=True)
                print(_resumed_runs(stack), flush=True)
                print(export_line(stack), flush=True)
                print("ready; Ctrl-C stops them", flush=True)
                while True:
                    stack.check_alive()
                    time.sleep(1.0)
        except KeyboardInterrupt:
            print("stopped", flush=True)
            return 0
