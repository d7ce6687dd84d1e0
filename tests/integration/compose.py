"""Run the services of ``docker-compose.yml``: as local processes, or with ``docker compose``.

:class:`LocalTopology` needs no Docker engine. It reads the compose file and, for each service,
runs the image's ``ENTRYPOINT`` (read from the service's Dockerfile) followed by its
``command``, with its ``environment``, as a child process:

- every service gets a free loopback port: ``pool:50051`` in any value becomes
  ``127.0.0.1:<pool's port>``; a service's own ``LESSLABELS_PORT`` / ``--port`` and the
  ``127.0.0.1:50051`` its health check probes become its port; ``LESSLABELS_HOST`` becomes loopback;
  its ``LESSLABELS_METRICS_PORT`` becomes another free port (``metrics_ports``);
- services of a profile (``observability``: Prometheus, Grafana, Jaeger) are left out, as
  ``docker compose up`` leaves them without ``--profile``;
- each named volume becomes a temporary folder, and paths under a service's mount point
  (``sqlite:////data/pool.db``, ``PGDATA``) point into it;
- a service that runs an image nobody builds here (``postgres``) runs its local stand-in
  (``STAND_INS``: for ``postgres``, ``tests.integration.postgres_image`` on this machine's PostgreSQL
  binaries, set up from the service's own ``POSTGRES_*`` environment);
- services start in ``depends_on`` order; one with a ``service_healthy`` dependency starts once
  that dependency's health check (the compose file's own command, run here) passes;
- ``restart`` policies apply: a service that dies after it was healthy is started again.

Before anything starts, :func:`check_wiring` checks what would otherwise fail late or silently:
dependencies that exist and have no cycle, ``service:port`` references to real services and
ports, each one backed by a ``service_healthy`` dependency, health checks that probe the
service's own port, every ``LESSLABELS_*`` variable accepted by the service's command
(``lesslabels <service> --help`` lists them; a misspelt one would be ignored by the service), and
state (``LESSLABELS_*`` paths, ``PGDATA``) on volumes.

:class:`DockerTopology` offers the same interface over a real ``docker compose up``, or
``podman-compose up`` (``engine="podman"``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import itertools
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CPU_OVERRIDE = ROOT / "docker-compose.cpu.yml"
RESTARTING_POLICIES = ("always", "unless-stopped", "on-failure")
#: Images run without Docker: the repository's name -> the command that stands in for it locally
#: (``--port`` is set to the service's local port).
#: deploy/base-images.sh's Debian-made stand-in (lesslabels-postgres) reads the same variables as postgres.
STAND_INS = {
    name: [sys.executable, "-m", "tests.integration.postgres_image", "--port"]
    for name in ("postgres", "lesslabels-postgres")
}


class ComposeError(Exception):
    """The compose file is wrong, or a service did not come up as it says."""


# ---------------------------------------------------------------- reading the file


class _Loader(yaml.SafeLoader):
    """YAML with Compose's ``!reset`` / ``!override`` tags (used by override files)."""


def _override(loader: yaml.SafeLoader, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_Loader.add_constructor("!reset", lambda loader, node: None)
_Loader.add_constructor("!override", _override)

_VARIABLE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_EXPRESSION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.S)


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``,
    ``${VAR?error}``, ``${VAR:+alt}``, ``${VAR+alt}`` and ``$$``."""

    def substitute(match: re.Match) -> str:
        if match.group(1):
            return "$"
        if match.group(3):
            return variables.get(match.group(3), "")
        expression = _EXPRESSION.fullmatch(match.group(2))
        if expression is None:
            raise ComposeError(f"invalid interpolation ${{{match.group(2)}}}")
        name, operator, argument = expression.groups()
        value = variables.get(name)
        if operator is None:
            return value or ""
        missing = value is None or (operator.startswith(":") and value == "")
        kind = operator[-1]
        if kind == "-":
            return interpolate(argument, variables) if missing else value
        if kind == "?":
            if missing:
                raise ComposeError(f"required variable {name} is missing a value: {argument}")
            return value
        return "" if missing else interpolate(argument, variables)

    return _VARIABLE.sub(substitute, text)


def _interpolate_tree(node, variables):
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    return node


def load(path: str | os.PathLike, variables: Mapping[str, str]) -> dict:
    """The compose file as a dict, variables interpolated (from ``variables`` only, not the caller's environment)."""
    path = pathlib.Path(path)
    try:
        document = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ComposeError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise ComposeError(f"{path}: no services")
    return _interpolate_tree(document, variables)


@dataclasses.dataclass(frozen=True)
class Mount:
    volume: str  # a named volume, or a host path for a bind mount
    target: str
    read_only: bool
    named: bool


@dataclasses.dataclass
class Service:
    name: str
    argv: list[str]  # entrypoint + command
    environment: dict[str, str]
    depends_on: dict[str, str]  # service -> condition
    healthcheck: list[str]  # the command, [] when none
    healthcheck_timeout: float
    port: int  # the port it listens on inside its container
    published: list[int]  # container ports published to the host
    mounts: list[Mount]
    restart: str
    image: str = ""  # the image it runs when nothing here builds it ("postgres:17"), else ""

    @property
    def image_name(self) -> str:
        """The image's repository without registry, tag or digest: ``postgres`` for ``docker.io/library/postgres:17``."""
        return self.image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]


def _duration(text, default: float) -> float:
    if text is None:
        return default
    total, units = 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    if not parts:
        raise ComposeError(f"bad duration {text!r}")
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


def _entrypoint(name: str, spec: dict, base_dir: pathlib.Path) -> list[str]:
    if "entrypoint" in spec:
        value = spec["entrypoint"]
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
    build = spec.get("build")
    if build is None:
        if not spec.get("image"):
            raise ComposeError(f"service {name}: no build, no image and no entrypoint")
        return []  # the image's own entrypoint: run by its stand-in (STAND_INS)
    context = base_dir / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
    if not dockerfile.exists():
        raise ComposeError(f"service {name}: {dockerfile} not found")
    entrypoint: list[str] = []
    for line in dockerfile.read_text().splitlines():
        if line.strip().upper().startswith("ENTRYPOINT"):
            rest = line.strip()[len("ENTRYPOINT") :].strip()
            try:
                entrypoint = [str(v) for v in json.loads(rest)]
            except json.JSONDecodeError:
                entrypoint = ["/bin/sh", "-c", rest]
    return entrypoint


def _port(value) -> int:
    """The container side of ``expose`` / ``ports`` entries: 50053, "50053", "8080:50053", "127.0.0.1::50053"."""
    if isinstance(value, dict):
        return int(value["target"])
    text = str(value).split("/")[0]
    return int(text.rsplit(":", 1)[-1])


def parse(document: dict, base_dir: str | os.PathLike = ROOT) -> dict[str, Service]:
    """The services Compose starts by default: those of a profile (``observability``) are left
    out, as ``docker compose up`` leaves them without ``--profile``."""
    base_dir = pathlib.Path(base_dir)
    declared_volumes = set((document.get("volumes") or {}).keys())
    services: dict[str, Service] = {}
    for name, spec in document["services"].items():
        spec = spec or {}
        if spec.get("profiles"):
            continue
        command = spec.get("command") or []
        command = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
        raw_env = spec.get("environment") or {}
        if isinstance(raw_env, list):
            raw_env = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw_env)
        environment = {
            str(k): ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in raw_env.items()
        }
        raw_deps = spec.get("depends_on") or {}
        depends_on = (
            {d: "service_started" for d in raw_deps}
            if isinstance(raw_deps, list)
            else {d: (c or {}).get("condition", "service_started") for d, c in raw_deps.items()}
        )
        check = spec.get("healthcheck") or {}
        test = check.get("test") or []
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        if check.get("disable") or (test and test[0] == "NONE"):
            healthcheck = []
        elif test and test[0] == "CMD":
            healthcheck = [str(t) for t in test[1:]]
        elif test and test[0] == "CMD-SHELL":
            healthcheck = ["/bin/sh", "-c", str(test[1])]
        else:
            healthcheck = [str(t) for t in test]
        ports = [_port(p) for p in spec.get("expose") or []]
        published = [_port(p) for p in spec.get("ports") or []]
        listening = sorted(set(ports) | set(published))
        if len(listening) != 1:
            raise ComposeError(f"service {name}: expected exactly one port in expose/ports, found {listening}")
        mounts = []
        for volume in spec.get("volumes") or []:
            if isinstance(volume, dict):
                source, target, ro = volume.get("source", ""), volume["target"], bool(volume.get("read_only"))
            else:
                parts = str(volume).split(":")
                source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
                ro = len(parts) > 2 and "ro" in parts[2].split(",")
            named = not source.startswith((".", "/", "~"))
            if named and source not in declared_volumes:
                raise ComposeError(f"service {name}: volume {source!r} is not declared under top-level volumes")
            mounts.append(Mount(source, target, ro, named))
        services[name] = Service(
            name=name,
            argv=_entrypoint(name, spec, base_dir) + command,
            environment=environment,
            depends_on=depends_on,
            healthcheck=healthcheck,
            healthcheck_timeout=_duration(check.get("timeout"), 30.0),
            port=listening[0],
            published=published,
            mounts=mounts,
            restart=str(spec.get("restart", "no")),
            image="" if spec.get("build") is not None else str(spec.get("image", "")),
        )
    return services


def start_order(services: Mapping[str, Service]) -> list[str]:
    """Dependencies first (the file's order among equals); unknown dependencies and cycles are errors."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ComposeError("dependency cycle: " + " -> ".join(path + (name,)))
        state[name] = "visiting"
        for dependency in services[name].depends_on:
            if dependency not in services:
                raise ComposeError(f"service {name} depends on {dependency!r}, which is not a service")
            visit(dependency, path + (name,))
        state[name] = "done"
        order.append(name)

    for name in services:
        visit(name, ())
    return order


def dependency_closure(services: Mapping[str, Service], names: Iterable[str]) -> list[str]:
    wanted: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name not in wanted:
            wanted.add(name)
            stack.extend(services[name].depends_on)
    return [n for n in start_order(services) if n in wanted]


# ---------------------------------------------------------------- checks before starting anything


def local_argv(argv: list[str]) -> list[str]:
    """The image runs ``lesslabels ...``; here that is this interpreter on this checkout."""
    if argv and argv[0] == "lesslabels":
        return [sys.executable, "-m", "lesslabels", *argv[1:]]
    if argv and argv[0].startswith("pg_") and shutil.which(argv[0]) is None:
        from tests.postgres import find_bin  # the health check of the postgres service: pg_isready

        bindir = find_bin()
        if bindir is not None and (bindir / argv[0]).exists():
            return [str(bindir / argv[0]), *argv[1:]]
    return list(argv)


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any LESSLABELS_* (they must come from the compose file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LESSLABELS_")}
    env.update(extra or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@functools.lru_cache(maxsize=32)
def accepted_variables(argv: tuple[str, ...]) -> frozenset[str]:
    """The LESSLABELS_* variables the command reads, from its ``--help`` (every flag names its variable)."""
    env = child_environment({"COLUMNS": "2000", "OMP_NUM_THREADS": "1"})
    proc = subprocess.run(local_argv(list(argv)) + ["--help"], capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise ComposeError(
            f"`{shlex.join(argv)} --help` failed with code {proc.returncode}: "
            f"{(proc.stderr or proc.stdout).strip()[-800:]}"
        )
    return frozenset(re.findall(r"env\s+(LESSLABELS_[A-Z0-9_]+)", proc.stdout))


def _references(text: str, services: Mapping[str, Service]) -> list[tuple[str, int]]:
    return [
        (host, int(port))
        for host, port in re.findall(r"(?<![\w.-])([A-Za-z][\w.-]*):(\d+)\b", text)
        if host in services
    ]


def _container_path(value: str) -> str | None:
    """The absolute path a setting names: ``/checkpoints``, ``sqlite:////data/pool.db``; else None."""
    match = re.fullmatch(r"sqlite:///(/[^?]*)(?:\?.*)?", value)
    if match:
        return match.group(1)
    return value.rstrip("/") if value.startswith("/") else None


def check_wiring(services: Mapping[str, Service], *, check_variables: bool = True) -> None:
    """Raise ComposeError listing every wiring mistake found without starting anything."""
    problems: list[str] = []
    if check_variables:
        # One `--help` per distinct command, side by side (each imports its service, torch included).
        commands = {tuple(s.argv) for s in services.values() if any(k.startswith("LESSLABELS_") for k in s.environment)}
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(accepted_variables, c) for c in commands]:
                with contextlib.suppress(ComposeError):
                    future.result()
    try:
        start_order(services)
    except ComposeError as exc:
        problems.append(str(exc))
    for service in services.values():
        values = [*service.argv, *service.environment.values()]
        for value in values:
            for host, port in _references(value, services):
                target = services[host]
                if port != target.port:
                    problems.append(
                        f"service {service.name} refers to {host}:{port}, but {host} listens on {target.port}"
                    )
                elif host != service.name and service.depends_on.get(host) != "service_healthy":
                    problems.append(
                        f"service {service.name} calls {host} but has no depends_on {host} with "
                        f"condition: service_healthy"
                    )
        if not service.healthcheck:
            problems.append(f"service {service.name} has no healthcheck")
        elif not any(
            re.search(rf"(?:127\.0\.0\.1|localhost|\[::1\]):{service.port}\b", part) for part in service.healthcheck
        ):
            problems.append(
                f"service {service.name}: healthcheck {shlex.join(service.healthcheck)} does not probe "
                f"its own port {service.port}"
            )
        for variable, value in service.environment.items():
            path = _container_path(value) if variable.startswith("LESSLABELS_") or variable == "PGDATA" else None
            if path is not None and not any(
                path == m.target.rstrip("/") or path.startswith(m.target.rstrip("/") + "/") for m in service.mounts
            ):
                problems.append(
                    f"service {service.name}: {variable}={value} is not on a volume "
                    f"(its data would be lost with the container)"
                )
        port_setting = service.environment.get("LESSLABELS_PORT")
        if port_setting is not None and port_setting != str(service.port):
            problems.append(f"service {service.name}: LESSLABELS_PORT={port_setting} but it exposes {service.port}")
        if check_variables and any(k.startswith("LESSLABELS_") for k in service.environment):
            try:
                known = accepted_variables(tuple(service.argv))
            except ComposeError as exc:
                problems.append(f"service {service.name}: {exc}")
            else:
                for variable in sorted(service.environment):
                    if variable.startswith("LESSLABELS_") and variable not in known:
                        problems.append(
                            f"service {service.name}: {variable} is not a setting of "
                            f"`{shlex.join(service.argv)}` (it reads {', '.join(sorted(known))})"
                        )
    if problems:
        raise ComposeError("docker-compose wiring:\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------- local processes


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when the test process dies (a killed test run leaks no
    services): through util-linux's ``setpriv --pdeathsig`` where it exists. Not a ``preexec_fn``:
    Python code in a child forked from this many-threaded process (grpc, logging) runs the
    interpreter's fork handlers and crashed there now and then ("Fatal Python error: Aborted" in
    logging's lock re-initialisation), so a service never started."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)


def _tail(path: pathlib.Path, lines: int = 25) -> str:
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "    (no log)"


class LocalTopology:
    """The compose file's services as local processes (see the module docstring).

    ``variables``: what Compose would interpolate from the shell / ``.env`` (the only source:
    the caller's LESSLABELS_* do not leak in). ``env``: extra environment under each service's
    own (e.g. ``OMP_NUM_THREADS``). ``workdir``: logs, volumes and working folders.
    """

    backend = "local"

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        compose_file: str | os.PathLike = COMPOSE_FILE,
        variables: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 120.0,
        check_variables: bool = True,
    ):
        self.compose_file = pathlib.Path(compose_file)
        self.workdir = pathlib.Path(workdir).resolve()
        self.variables = dict(variables or {})
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        document = load(self.compose_file, self.variables)
        self.compose = document["services"]
        self.services = parse(document, self.compose_file.parent)
        check_wiring(self.services, check_variables=check_variables)
        for service in self.services.values():
            if service.image and service.image_name not in STAND_INS:
                raise ComposeError(
                    f"service {service.name} runs image {service.image}, which has no local stand-in "
                    f"(known: {', '.join(sorted(STAND_INS))})"
                )
        self.ports = {name: free_port() for name in self.services}
        #: Each service's own metrics port (in containers they all use the same one).
        self.metrics_ports = {name: free_port() for name in self.services}
        self.processes: dict[str, subprocess.Popen] = {}
        self.restart_counts: dict[str, int] = {name: 0 for name in self.services}
        self._healthy_once: set[str] = set()
        self._stopping: set[str] = set()
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._monitor = threading.Thread(target=self._supervise, name="compose-supervisor", daemon=True)
        self._monitor.start()

    # ------------------------------------------------------------ addresses and rewriting

    def address(self, name: str) -> str:
        """Where this process reaches the service (in Docker: only published ports are reachable)."""
        return f"127.0.0.1:{self.ports[name]}"

    def public_address(self, name: str) -> str:
        if not self.services[name].published:
            raise ComposeError(f"service {name} publishes no port")
        return self.address(name)

    def volume_dir(self, volume: str) -> pathlib.Path:
        return self.workdir / "volumes" / volume

    def log_path(self, name: str) -> pathlib.Path:
        return self.workdir / "logs" / f"{name}.log"

    def logs(self, name: str) -> str:
        return self.log_path(name).read_text(errors="replace") if self.log_path(name).exists() else ""

    def _rewrite(self, service: Service, value: str) -> str:
        for other in self.services.values():
            value = re.sub(rf"(?<![\w.-]){re.escape(other.name)}:{other.port}\b", self.address(other.name), value)
        value = re.sub(
            rf"(?<![\w.-])(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]):{service.port}\b",
            self.address(service.name),
            value,
        )
        for mount in service.mounts:
            local = (
                str(self.volume_dir(mount.volume))
                if mount.named
                else str((self.compose_file.parent / mount.volume).resolve())
            )
            value = re.sub(
                rf"(?<![^:=/,\s]){re.escape(mount.target.rstrip('/'))}(?=/|$)", lambda m, local=local: local, value
            )
        return value

    def command(self, name: str) -> list[str]:
        service = self.services[name]
        if service.image:
            return [*STAND_INS[service.image_name], str(self.ports[name])]
        argv = [self._rewrite(service, a) for a in service.argv]
        for flag in ("--port",):
            if flag in argv[:-1]:
                argv[argv.index(flag) + 1] = str(self.ports[name])
        for flag in ("--host",):
            if flag in argv[:-1]:
                argv[argv.index(flag) + 1] = "127.0.0.1"
        return local_argv(argv)

    def environment(self, name: str) -> dict[str, str]:
        service = self.services[name]
        env = child_environment(self.extra_env)
        for key, value in service.environment.items():
            if key == "LESSLABELS_PORT" and value == str(service.port):
                value = str(self.ports[name])
            elif key == "LESSLABELS_METRICS_PORT" and value not in ("", "0"):
                value = str(self.metrics_ports[name])
            elif key == "LESSLABELS_HOST":
                value = "127.0.0.1"
            env[key] = self._rewrite(service, value)
        return env

    def health_command(self, name: str) -> list[str]:
        service = self.services[name]
        return local_argv([self._rewrite(service, a) for a in service.healthcheck])

    # ------------------------------------------------------------ life cycle

    def up(self, names: Iterable[str] | None = None) -> LocalTopology:
        """Start ``names`` (all by default) and their dependencies, each once its dependencies are healthy."""
        for name in dependency_closure(self.services, names or self.services):
            if not self.is_running(name):
                self.start(name, with_deps=False, wait=True)
        return self

    def start(self, name: str, *, with_deps: bool = True, wait: bool = True) -> None:
        """``docker compose up -d [--no-deps] [--wait] NAME``."""
        if with_deps:
            for dependency, condition in self.services[name].depends_on.items():
                if not self.is_running(dependency):
                    self.start(dependency, with_deps=True, wait=True)
                elif condition == "service_healthy":
                    self.wait_healthy(dependency)
        with self._lock:
            self._stopping.discard(name)
            self._spawn(name)
        if wait:
            self.wait_healthy(name)

    def _spawn(self, name: str) -> None:
        for mount in self.services[name].mounts:
            if mount.named:
                self.volume_dir(mount.volume).mkdir(parents=True, exist_ok=True)
        cwd = self.workdir / "home" / name
        cwd.mkdir(parents=True, exist_ok=True)
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "ab") as log:
            log.write(f"--- start {shlex.join(self.command(name))}\n".encode())
            log.flush()
            self.processes[name] = subprocess.Popen(
                die_with_parent(self.command(name)),
                env=self.environment(name),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def run(
        self, name: str, args: list[str], *, binds: Mapping[str, str] | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess:
        """``docker compose run --rm --no-deps -v HOST:CONTAINER NAME ARGS``: a one-off command
        with the service's entrypoint and environment; ``binds`` maps host folders to container paths."""
        service = self.services[name]
        argv = [self._rewrite(service, a) for a in service.argv[: len(service.argv) - self._command_length(name)]]
        for arg in args:
            for host, target in (binds or {}).items():
                if arg == target or arg.startswith(target.rstrip("/") + "/"):
                    arg = str(host) + arg[len(target.rstrip("/")) :]
            argv.append(self._rewrite(service, arg))
        env = self.environment(name)
        cwd = self.workdir / "home" / f"{name}-run"
        cwd.mkdir(parents=True, exist_ok=True)
        return subprocess.run(local_argv(argv), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def _command_length(self, name: str) -> int:
        command = self.compose[name].get("command") or []
        return len(shlex.split(command) if isinstance(command, str) else command)

    def is_running(self, name: str) -> bool:
        proc = self.processes.get(name)
        return proc is not None and proc.poll() is None

    def health(self, name: str) -> tuple[bool, str]:
        """Run the service's health check once: (passed, its output)."""
        service = self.services[name]
        try:
            proc = subprocess.run(
                self.health_command(name),
                capture_output=True,
                text=True,
                env=child_environment(self.extra_env),
                timeout=service.healthcheck_timeout + 10,
            )
        except subprocess.TimeoutExpired:
            return False, "health check timed out"
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def wait_healthy(self, name: str, timeout: float | None = None) -> None:
        limit = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        output = ""
        while True:
            proc = self.processes.get(name)
            if proc is None:
                raise ComposeError(f"service {name} was never started")
            code = proc.poll()
            if code is not None and name not in self._healthy_once:
                raise ComposeError(
                    f"service {name} exited with code {code} while starting "
                    f"({shlex.join(self.command(name))}); end of its log:\n{_tail(self.log_path(name))}"
                )
            if code is None:
                ok, output = self.health(name)
                if ok:
                    self._healthy_once.add(name)
                    return
            if time.monotonic() > deadline:
                raise ComposeError(
                    f"service {name} not healthy after {limit:.0f}s (last health check: {output!r}); "
                    f"end of its log:\n{_tail(self.log_path(name))}"
                )
            time.sleep(0.3)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill the service's process as a crash would: its restart policy decides what happens next."""
        proc = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def restarts(self, name: str) -> int:
        return self.restart_counts[name]

    def _supervise(self) -> None:
        """Docker's restart policy: a service that was healthy and died is started again."""
        while not self._closed.wait(0.2):
            with self._lock:
                for name, proc in list(self.processes.items()):
                    code = proc.poll()
                    if code is None or name in self._stopping or name not in self._healthy_once:
                        continue
                    policy = self.services[name].restart
                    if policy.startswith(RESTARTING_POLICIES) and not (policy.startswith("on-failure") and code == 0):
                        with open(self.log_path(name), "ab") as log:
                            log.write(f"--- exited with code {code}; restart policy {policy}\n".encode())
                        self.restart_counts[name] += 1
                        self._spawn(name)

    def stop(self, name: str, grace: float = 15.0) -> None:
        """``docker compose stop NAME``: SIGTERM, then SIGKILL after the grace period; no restart."""
        with self._lock:
            self._stopping.add(name)
        proc = self.processes.get(name)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def down(self) -> None:
        """Stop everything, dependents first."""
        self._closed.set()
        self._monitor.join(timeout=5)
        for name in reversed(start_order(self.services)):
            self.stop(name)

    def __enter__(self) -> LocalTopology:
        return self

    def __exit__(self, *exc) -> None:
        self.down()


# ---------------------------------------------------------------- a real container engine


def stand_in_unavailable_reason(services: Mapping[str, Service]) -> str | None:
    """None when every image-only service (``postgres``) of ``services`` can run as a local stand-in, else why not."""
    from tests.postgres import find_bin

    if any(s.image_name in STAND_INS for s in services.values() if s.image) and find_bin() is None:
        return "the postgres service's local stand-in needs the PostgreSQL server binaries (apt-get install postgresql)"
    return None


def docker_unavailable_reason() -> str | None:
    """None when ``docker compose`` and an engine are usable, else why not."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if compose.returncode != 0:
        return "the docker compose plugin is not installed (`docker compose version` failed)"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        first = ((info.stderr or info.stdout).strip().splitlines() or ["docker info failed"])[0]
        return f"no Docker engine reachable ({first[:160]})"
    return None


#: podman's settings for hosts like CI's (runc, lowered rlimits): used when CONTAINERS_CONF is unset.
PODMAN_CONF = ROOT / "deploy" / "podman" / "containers.conf"


def podman_environment() -> dict[str, str]:
    """This process's environment for podman and podman-compose: ``CONTAINERS_CONF`` defaults to
    deploy/podman/containers.conf where runc is installed (it names runc)."""
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env and PODMAN_CONF.exists() and shutil.which("runc"):
        env["CONTAINERS_CONF"] = str(PODMAN_CONF)
    return env


def podman_compose_command() -> list[str] | None:
    """podman-compose: $LESSLABELS_PODMAN_COMPOSE, else deploy/podman-setup.sh's .venv-compose, else PATH."""
    for candidate in (
        os.environ.get("LESSLABELS_PODMAN_COMPOSE", ""),
        str(ROOT / ".venv-compose" / "bin" / "podman-compose"),
        shutil.which("podman-compose") or "",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return [candidate]
    return None


def podman_unavailable_reason() -> str | None:
    """None when podman and podman-compose are usable, else why not (running a container is checked
    once an image exists: :meth:`DockerTopology.check_runs`)."""
    if shutil.which("podman") is None:
        return "podman is not installed (deploy/podman-setup.sh installs it)"
    if podman_compose_command() is None:
        return "podman-compose is not installed (deploy/podman-setup.sh installs it into .venv-compose)"
    info = subprocess.run(
        ["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"],
        capture_output=True,
        text=True,
        env=podman_environment(),
    )
    if info.returncode != 0:
        first = ((info.stderr or info.stdout).strip().splitlines() or ["podman info failed"])[0]
        return f"podman cannot run here ({first[:200]})"
    return None


def engine_unavailable_reason(engine: str) -> str | None:
    return podman_unavailable_reason() if engine == "podman" else docker_unavailable_reason()


_PROJECTS = itertools.count(1)


class DockerTopology:
    """The same interface over a real compose run: ``docker compose``, or ``podman-compose`` with
    ``engine="podman"`` (project ``lesslabels-it-<pid>-<n>``).

    Test-only override: the pool and trainer are published on loopback too (only scorer and
    coordinator are public in the real file) so the suite can import data and check the pool;
    ``mounts`` are host folders bind-mounted read-only at the same path into trainer and scorer,
    as their model folders (the tiny test model). The CPU override drops the GPU reservation.

    podman-compose does not gate start-up on health checks (podman 4.3 cannot wait for them, and
    without systemd it never runs them): ``up`` starts everything at once and then runs each
    service's health check itself, as ``docker compose up --wait`` would, until all pass. Container
    state (running, restart count, published port, host PID) comes from the engine's ``inspect``.
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        compose_file: str | os.PathLike = COMPOSE_FILE,
        variables: Mapping[str, str] | None = None,
        mounts: Iterable[str] = (),
        startup_timeout: float = 900.0,
        engine: str = "docker",
        check_variables: bool = True,
    ):
        if engine not in ("docker", "podman"):
            raise ValueError(f"engine must be docker or podman, not {engine!r}")
        self.engine = engine
        self.compose_file = pathlib.Path(compose_file)
        self.workdir = pathlib.Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.startup_timeout = startup_timeout
        self.variables = dict(variables or {})
        self.services = parse(load(self.compose_file, self.variables), self.compose_file.parent)
        check_wiring(self.services, check_variables=check_variables)
        self.project = f"lesslabels-it-{os.getpid()}-{next(_PROJECTS)}"
        # Own image tags: never replace the images of a real deployment on the same host.
        self.variables.setdefault("LESSLABELS_VERSION", "integration-test")
        for name in self.services:
            if self.services[name].published:
                self.variables.setdefault(f"LESSLABELS_{name.upper()}_PUBLIC_PORT", str(free_port()))
        override: dict = {"services": {}}
        for name, service in self.services.items():
            entry: dict = {}
            if not service.published:
                entry["ports"] = [f"127.0.0.1::{service.port}"]
            binds = [f"{path}:{path}:ro" for path in mounts]
            if binds and name in ("trainer", "scorer"):
                entry["volumes"] = binds
                # Base models come only from the bundled one, the checkpoint store and the model folders.
                entry["environment"] = {"LESSLABELS_MODEL_DIR": os.pathsep.join(str(path) for path in mounts)}
            if entry:
                override["services"][name] = entry
        self.override_file = self.workdir / "docker-compose.test.yml"
        self.override_file.write_text(yaml.safe_dump(override))
        self.files = [self.compose_file, CPU_OVERRIDE, self.override_file]
        self._containers: dict[str, str] = {}

    @property
    def backend(self) -> str:
        return self.engine

    # ------------------------------------------------------------ the two command-line tools

    def _environment(self) -> dict[str, str]:
        env = podman_environment() if self.engine == "podman" else dict(os.environ)
        env = {k: v for k, v in env.items() if not k.startswith("LESSLABELS_")}
        env.update(self.variables)
        return env

    def _compose(self, *args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
        if self.engine == "podman":
            argv = [*(podman_compose_command() or ["podman-compose"]), "-p", self.project]
        else:
            argv = ["docker", "compose", "-p", self.project]
        for path in self.files:
            argv += ["-f", str(path)]
        proc = subprocess.run(
            argv + list(args),
            capture_output=True,
            text=True,
            env=self._environment(),
            timeout=timeout or self.startup_timeout,
            cwd=self.compose_file.parent,
        )
        if check and proc.returncode != 0:
            raise ComposeError(
                f"{self.engine} compose {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def _engine(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.engine, *args], capture_output=True, text=True, env=self._environment(), timeout=timeout
        )
        if check and proc.returncode != 0:
            raise ComposeError(f"{self.engine} {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc

    def container(self, name: str) -> str:
        """The id of the service's container (the one ``up`` made; a restart keeps it)."""
        if name not in self._containers:
            proc = self._engine(
                "ps",
                "-a",
                "-q",
                "--no-trunc",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                "--filter",
                f"label=com.docker.compose.service={name}",
            )
            ids = proc.stdout.split()
            if len(ids) != 1:
                raise ComposeError(f"service {name}: expected one container, found {ids}")
            self._containers[name] = ids[0]
        return self._containers[name]

    def inspect(self, name: str, template: str) -> str:
        return self._engine("inspect", "--format", template, self.container(name)).stdout.strip()

    # ------------------------------------------------------------ life cycle

    def build(self) -> None:
        """Build the images the file builds (``compose build``), each image once: services that
        share an image (pool, scorer, coordinator and web share ``lesslabels``) are built by the
        first of them, one at a time (podman-compose would otherwise build every service's copy
        of the same image side by side)."""
        document = load(self.compose_file, self.variables)
        builders: dict[str, str] = {}
        for name, spec in document["services"].items():
            if (spec or {}).get("build") is not None:
                builders.setdefault(str(spec.get("image", name)), name)
        for name in builders.values():
            self._compose(*(["--parallel", "1"] if self.engine == "podman" else []), "build", name)

    def check_runs(self, image: str) -> str | None:
        """None when the engine runs a container of ``image`` here, else why not."""
        proc = self._engine("run", "--rm", "--entrypoint", "true", image, check=False, timeout=120)
        if proc.returncode != 0:
            return f"{self.engine} cannot run a container here: {(proc.stderr or proc.stdout).strip()[-400:]}"
        return None

    def up(self, names: Iterable[str] | None = None) -> DockerTopology:
        names = list(names or [])
        if self.engine == "docker":
            self._compose("up", "-d", "--build", "--wait", *names)
            return self
        self._compose("up", "-d", *names)
        for name in dependency_closure(self.services, names or self.services):
            self.wait_healthy(name)
        return self

    def start(self, name: str, *, with_deps: bool = True, wait: bool = True) -> None:
        no_deps = [] if with_deps else ["--no-deps"]
        if self.engine == "docker":
            self._compose("up", "-d", *no_deps, *(["--wait"] if wait else []), name)
            return
        self._compose("up", "-d", *no_deps, name)
        if wait:
            for dependency in dependency_closure(self.services, [name]) if with_deps else [name]:
                self.wait_healthy(dependency)

    def run(
        self, name: str, args: list[str], *, binds: Mapping[str, str] | None = None, timeout: float = 300.0
    ) -> subprocess.CompletedProcess:
        volumes = [a for host, target in (binds or {}).items() for a in ("-v", f"{host}:{target}:ro")]
        return self._compose("run", "--rm", "--no-deps", *volumes, name, *args, check=False, timeout=timeout)

    def address(self, name: str) -> str:
        port = self.services[name].port
        published = self._engine("port", self.container(name), f"{port}/tcp").stdout.strip().splitlines()[0]
        return "127.0.0.1:" + published.rsplit(":", 1)[1]

    def public_address(self, name: str) -> str:
        if not self.services[name].published:
            raise ComposeError(f"service {name} publishes no port")
        return self.address(name)

    def is_running(self, name: str) -> bool:
        try:
            return self.inspect(name, "{{.State.Running}}") == "true"
        except ComposeError:
            return False

    def health(self, name: str) -> tuple[bool, str]:
        """Run the service's health check once in its container (``compose exec``)."""
        try:
            proc = self._engine("exec", self.container(name), *self.services[name].healthcheck, check=False, timeout=60)
        except (ComposeError, subprocess.TimeoutExpired) as exc:
            return False, str(exc)
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def wait_healthy(self, name: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while True:
            ok, output = self.health(name)
            if ok:
                return
            if time.monotonic() > deadline:
                raise ComposeError(f"service {name} not healthy: {output}\n{self.logs(name)[-3000:]}")
            time.sleep(1.0)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill the container's first process (``init: true``'s init, with the service under it) from
        the host, as a crash or the kernel's OOM killer would: the container exits and its restart
        policy applies (``docker kill`` / ``podman kill`` count as a manual stop and skip it)."""
        pid = int(self.inspect(name, "{{.State.Pid}}"))
        if pid <= 0:
            raise ComposeError(f"service {name} is not running")
        os.kill(pid, sig)

    def restarts(self, name: str) -> int:
        return int(self.inspect(name, "{{.RestartCount}}"))

    def stop(self, name: str, grace: float = 15.0) -> None:
        self._compose("stop", "-t", str(int(grace)), name)

    def logs(self, name: str) -> str:
        try:
            proc = self._engine("logs", self.container(name), check=False)
        except ComposeError as exc:
            return str(exc)
        return proc.stdout + proc.stderr

    def volumes(self) -> list[str]:
        """The project's named volumes that exist now."""
        proc = self._engine(
            "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.project}", check=False
        )
        return proc.stdout.split()

    def down(self) -> None:
        self._compose("down", "-v", "--remove-orphans", "-t", "10", check=False)
        self._containers.clear()

    def __enter__(self) -> DockerTopology:
        return self

    def __exit__(self, *exc) -> None:
        self.down()
