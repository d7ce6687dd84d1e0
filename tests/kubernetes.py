"""Render ``deploy/kubernetes`` with kustomize and check its wiring, without a cluster.

:func:`check_wiring` looks for what would otherwise fail only in a running cluster, or never:

- selectors: a workload's selector matches its pod labels; each Service selects the pods of
  exactly one workload;
- ports: every Service port targets a port its pods declare and listen on (a lesslabels
  command listens on its ``LESSLABELS_PORT`` / ``--port``); every address a container is given
  (``host:port``, ``dns:///host:port``, a URL's host) names a Service and a port it exposes
  (hosts with a dot are outside the rendering and not checked);
- settings: every ``LESSLABELS_*`` variable and ``--flag`` of a lesslabels command is one that
  command reads (its ``--help``, as for the compose file);
- probes: each long-running container has liveness and readiness probes on a port it listens
  on; the gRPC servers' are native gRPC probes;
- secrets: every ``secretKeyRef`` names a Secret and key of the rendering; every lesslabels
  container reads the public token, and each gRPC server the internal token too, from one and
  the same Secret key, not empty; they listen beyond loopback, which a server allows only with
  a token, and never with ``--insecure``;
- scale and resources: the scorer's Service is headless with more than one replica behind it,
  the trainer has a GPU, every container requests CPU and memory;
- metrics: every lesslabels container serves Prometheus metrics on a declared port, and its pod's
  ``prometheus.io/scrape`` and ``prometheus.io/port`` annotations point there;
- state: the paths of the lesslabels state settings (checkpoints, the trainer's jobs, which
  default to a folder of the checkpoints, a SQLite database) and PostgreSQL's data are on
  persistent volume claims; the trainer and the scorer share one ReadWriteMany claim; the pool's
  database URL comes from a Secret and, when it names the in-cluster PostgreSQL, carries the
  user, password and database that server is given.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import pathlib
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator

import yaml

from lesslabels.common.config import env_name, is_loopback
from tests.integration.compose import ComposeError, accepted_variables

ROOT = pathlib.Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "deploy" / "kubernetes"
#: The images built from this repository's Dockerfile (compose's names).
IMAGES = frozenset({"lesslabels", "lesslabels-trainer"})
#: The lesslabels commands that serve gRPC (with grpc.health.v1); ``web`` serves HTTP.
GRPC_SERVERS = frozenset({"pool", "trainer", "scorer", "coordinator"})
#: Settings whose paths hold state: they must be on persistent volume claims.
STATE_FLAGS = ("--checkpoint-dir", "--jobs-dir", "--database-url")
#: The servers' --host default.
DEFAULT_HOST = "127.0.0.1"
POSTGRES_DEFAULT_PGDATA = "/var/lib/postgresql/data"


class RenderError(Exception):
    """kustomize could not render the folder."""


def renderer() -> list[str] | None:
    """The command that renders a kustomization folder (given last); None without kubectl and kustomize."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def render(directory: str | pathlib.Path) -> list[dict]:
    """The objects of ``kubectl kustomize DIRECTORY`` (or ``kustomize build``)."""
    argv = renderer()
    if argv is None:
        raise RenderError("neither kubectl nor kustomize is installed")
    proc = subprocess.run([*argv, str(directory)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RenderError(f"`{' '.join(argv)} {directory}` failed: {proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@functools.cache
def entrypoint() -> tuple[str, ...]:
    """The ENTRYPOINT of the Dockerfile: what runs the ``args`` of a container without ``command``."""
    match = re.search(r"^ENTRYPOINT (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)
    if match is None:
        raise RenderError("the Dockerfile has no ENTRYPOINT in exec form")
    return tuple(json.loads(match.group(1)))


def repository(image: str) -> str:
    """``registry:5000/team/lesslabels:1.0`` -> ``lesslabels``."""
    name = image.split("@")[0].rsplit("/", 1)[-1]
    return name.split(":")[0]


@dataclasses.dataclass
class Container:
    workload: dict
    spec: dict
    init: bool

    @property
    def name(self) -> str:
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}[{self.spec['name']}]"

    @property
    def pod(self) -> dict:
        return self.workload["spec"]["template"]["spec"]

    @property
    def argv(self) -> list[str]:
        args = [str(a) for a in self.spec.get("args") or []]
        if "command" in self.spec:
            return [str(a) for a in self.spec["command"]] + args
        return [*entrypoint(), *args] if repository(self.spec["image"]) in IMAGES else args

    @property
    def command(self) -> str | None:
        """The lesslabels command it runs (``pool``, ``web``...); None for any other program."""
        argv = self.argv
        return argv[1] if len(argv) > 1 and argv[0] == "lesslabels" else None

    @property
    def declared(self) -> dict[str, int]:
        """Its container ports, by name (unnamed ones by number)."""
        return {str(p.get("name", p["containerPort"])): int(p["containerPort"]) for p in self.spec.get("ports") or []}

    def port(self, port: int | str) -> int | None:
        """A port number, or the number of a named container port (None: no such name)."""
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        return self.declared.get(str(port))

    def secret_ref(self, variable: str) -> dict | None:
        for entry in self.spec.get("env") or []:
            if entry["name"] == variable:
                return (entry.get("valueFrom") or {}).get("secretKeyRef")
        return None


class Rendering:
    """The rendered objects, indexed; values of environment variables resolved from Secrets."""

    def __init__(self, docs: list[dict]):
        self.workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
        self.services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
        self.secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
        self.claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
        self.containers = [
            Container(w, spec, init)
            for w in self.workloads
            for init, key in ((True, "initContainers"), (False, "containers"))
            for spec in w["spec"]["template"]["spec"].get(key) or []
        ]

    def secret_data(self, name: str) -> dict[str, str] | None:
        secret = self.secrets.get(name)
        if secret is None:
            return None
        data = {k: base64.b64decode(v or "").decode() for k, v in (secret.get("data") or {}).items()}
        data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
        return data

    def env(self, container: Container) -> dict[str, str | None]:
        """Its environment; a value from a Secret resolved, None where the Secret or key is missing."""
        values: dict[str, str | None] = {}
        for entry in container.spec.get("env") or []:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                values[entry["name"]] = str(entry.get("value", ""))
            else:
                values[entry["name"]] = (self.secret_data(ref["name"]) or {}).get(ref["key"])
        return values

    def setting(self, container: Container, flag: str) -> str | None:
        """The value a lesslabels command gets for ``flag``: from its arguments, else its variable."""
        argv = container.argv
        for i, arg in enumerate(argv):
            if arg == flag and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(flag + "="):
                return arg[len(flag) + 1 :]
        return self.env(container).get(env_name(flag))

    def listens(self, container: Container) -> set[int]:
        """The ports it serves: a lesslabels command's --port, another program's declared ports."""
        if container.command is None:
            return set(container.declared.values())
        port = self.setting(container, "--port")
        return {int(port)} if port and port.isdigit() else set()

    def selected(self, service: dict) -> list[dict]:
        """The workloads whose pods the Service selects."""
        selector = service["spec"].get("selector") or {}
        return [w for w in self.workloads if _matches(selector, _pod_labels(w))]

    def claim(self, container: Container, path: str) -> str | None:
        """The persistent volume claim ``path`` is stored on (None: not on one), named for messages."""
        for mount in sorted(container.spec.get("volumeMounts") or [], key=lambda m: -len(m["mountPath"])):
            root = mount["mountPath"].rstrip("/")
            if path == root or path.startswith(root + "/"):
                templates = container.workload["spec"].get("volumeClaimTemplates") or []
                if any(t["metadata"]["name"] == mount["name"] for t in templates):
                    return f"volumeClaimTemplate {mount['name']}"
                for volume in container.pod.get("volumes") or []:
                    if volume["name"] == mount["name"] and "persistentVolumeClaim" in volume:
                        return volume["persistentVolumeClaim"]["claimName"]
                return None
        return None


def _pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"].get("labels") or {}


def _matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _name(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def _path(value: str) -> str | None:
    """The absolute path a setting names: ``/checkpoints``, ``sqlite:////data/pool.db``; else None."""
    match = re.fullmatch(r"sqlite:///(/[^?]*)(?:\?.*)?", value)
    if match:
        return match.group(1)
    return value.rstrip("/") if value.startswith("/") else None


def _addresses(value: str) -> list[tuple[str, int | None]]:
    """The (host, port) a value names: ``host:port``, ``dns:///host:port`` or a URL's host."""
    match = re.fullmatch(r"(?:dns:///)?([A-Za-z0-9][A-Za-z0-9.-]*):(\d+)", value)
    if match:
        return [(match.group(1), int(match.group(2)))]
    if "://" in value:
        parts = urllib.parse.urlsplit(value)
        if parts.hostname:
            return [(parts.hostname, parts.port)]
    return []


# ---------------------------------------------------------------- the checks


def check_selectors(r: Rendering) -> Iterator[str]:
    for w in r.workloads:
        selector = w["spec"].get("selector", {}).get("matchLabels") or {}
        if not _matches(selector, _pod_labels(w)):
            yield f"{_name(w)}: selector {selector} does not match its pod labels {_pod_labels(w)}"
    for name, service in r.services.items():
        selected = r.selected(service)
        if len(selected) != 1:
            yield (
                f"Service/{name}: selector {service['spec'].get('selector')} selects the pods of "
                f"{len(selected)} workloads {[_name(w) for w in selected]}, not one"
            )


def check_service_ports(r: Rendering) -> Iterator[str]:
    for name, service in r.services.items():
        selected = r.selected(service)
        if len(selected) != 1:
            continue  # check_selectors says so
        containers = [c for c in r.containers if c.workload is selected[0] and not c.init]
        for port in service["spec"].get("ports") or []:
            target = port.get("targetPort", port["port"])
            found = [(c, c.port(target)) for c in containers if c.port(target) in c.declared.values()]
            if not found:
                yield (
                    f"Service/{name}: port {port['port']} targets {target}, "
                    f"which no container of {_name(selected[0])} declares"
                )
            for c, number in found:
                if number not in r.listens(c):
                    yield (
                        f"Service/{name}: port {port['port']} targets {number} of {c.name}, "
                        f"which listens on {sorted(r.listens(c))}"
                    )


def check_addresses(r: Rendering) -> Iterator[str]:
    for c in r.containers:
        given = [(f"argument {a}", a) for a in c.argv] + [(f"{k}={v}", v) for k, v in r.env(c).items() if v]
        for what, value in given:
            for host, port in _addresses(value):
                if "." in host:
                    continue
                service = r.services.get(host)
                if service is None:
                    yield f"{c.name}: {what} names {host}, which is not a Service"
                    continue
                exposed = sorted(int(p["port"]) for p in service["spec"].get("ports") or [])
                if port is not None and port not in exposed:
                    yield f"{c.name}: {what}: Service/{host} exposes {exposed}, not {port}"


def check_settings(r: Rendering) -> Iterator[str]:
    for c in r.containers:
        if c.command is None:
            continue
        try:
            known = accepted_variables(tuple(c.argv[:2]))
        except ComposeError as exc:  # its message goes on with the end of the help text
            yield f"{c.name}: {str(exc).partition(': ')[0]}"
            continue
        for variable in r.env(c):
            if variable.startswith("LESSLABELS_") and variable not in known:
                yield f"{c.name}: {variable} is not a setting of `lesslabels {c.command}`"
        for arg in c.argv[2:]:
            flag = arg.split("=")[0]
            if flag.startswith("--") and not {env_name(flag), env_name(flag.replace("--no-", "--", 1))} & known:
                yield f"{c.name}: {flag} is not a flag of `lesslabels {c.command}`"


def check_probes(r: Rendering) -> Iterator[str]:
    for c in r.containers:
        if c.init:
            continue
        for kind in ("livenessProbe", "readinessProbe"):
            if kind not in c.spec:
                yield f"{c.name}: no {kind}"
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = c.spec.get(kind)
            if not probe:
                continue
            for handler in ("grpc", "httpGet", "tcpSocket"):
                if handler in probe and c.port(probe[handler]["port"]) not in r.listens(c):
                    yield (
                        f"{c.name}: {kind} probes port {probe[handler]['port']}, "
                        f"but it listens on {sorted(r.listens(c))}"
                    )
            if c.command in GRPC_SERVERS and "grpc" not in probe:
                yield f"{c.name}: {kind} is not a gRPC health probe (grpc: {{port: N}})"
            if "grpc" in probe and c.command not in GRPC_SERVERS:
                yield f"{c.name}: {kind} is a gRPC probe, but it serves no gRPC health"


def check_secret_refs(r: Rendering) -> Iterator[str]:
    for c in r.containers:
        for entry in c.spec.get("env") or []:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                continue
            data = r.secret_data(ref["name"])
            if data is None:
                yield f"{c.name}: {entry['name']} reads Secret/{ref['name']}, which is not in the rendering"
            elif ref["key"] not in data:
                yield (
                    f"{c.name}: {entry['name']} reads key {ref['key']} of Secret/{ref['name']}, "
                    f"which has {sorted(data)}"
                )


def check_tokens_and_hosts(r: Rendering) -> Iterator[str]:
    sources: dict[str, set[tuple[str, str]]] = {"LESSLABELS_TOKEN": set(), "LESSLABELS_INTERNAL_TOKEN": set()}
    for c in r.containers:
        if c.command is None:
            continue
        tokens = ["LESSLABELS_TOKEN"] + (["LESSLABELS_INTERNAL_TOKEN"] if c.command in GRPC_SERVERS else [])
        for variable in tokens:
            ref = c.secret_ref(variable)
            if ref is None:
                yield f"{c.name}: {variable} does not come from a Secret (secretKeyRef)"
                continue
            sources[variable].add((ref["name"], ref["key"]))
            if r.env(c).get(variable) == "":
                yield f"{c.name}: {variable} is empty (key {ref['key']} of Secret/{ref['name']})"
        if c.declared:
            if r.setting(c, "--port") is None:
                yield f"{c.name}: sets no LESSLABELS_PORT or --port, so the port it listens on is its default"
            host = r.setting(c, "--host") or DEFAULT_HOST
            if is_loopback(host):
                yield f"{c.name}: listens on {host}, which other pods cannot reach (LESSLABELS_HOST=0.0.0.0)"
        insecure = r.setting(c, "--insecure") or ""
        if "--insecure" in c.argv or insecure.strip().lower() in {"1", "true", "yes", "on"}:
            yield f"{c.name}: --insecure (LESSLABELS_INSECURE) lets anyone who reaches it call it: give it the tokens"
    for variable, found in sources.items():
        if len(found) > 1:
            yield (
                f"{variable} comes from different Secret keys {sorted(found)}: "
                "the services would refuse each other's calls"
            )


def check_scale_and_resources(r: Rendering) -> Iterator[str]:
    commands = {c.command: c for c in r.containers if c.command}
    for command in ("scorer", "trainer"):
        if command not in commands:
            yield f"no workload runs `lesslabels {command}`"
    if "scorer" in commands:
        scorer = commands["scorer"].workload
        if int(scorer["spec"].get("replicas", 1)) < 2:
            yield f"{_name(scorer)}: {scorer['spec'].get('replicas', 1)} replica(s); the scorer runs several"
        replicas = int(scorer["spec"].get("replicas", 1))
        coordinator = commands.get("coordinator")
        if coordinator is not None:
            env = r.env(coordinator)
            address = env.get("LESSLABELS_SCORER_ADDRESS") or ""
            shards = int(env.get("LESSLABELS_SCORE_SHARDS") or 0) or len(address.split(","))
            if shards < replicas:
                yield (
                    f"{coordinator.name}: a round is scored in {shards} part(s) (LESSLABELS_SCORE_SHARDS) but "
                    f"{_name(scorer)} runs {replicas} replicas: give at least as many shards as replicas"
                )
        services = [s for s in r.services.values() if any(w is scorer for w in r.selected(s))]
        if not services:
            yield f"{_name(scorer)}: no Service selects its pods"
        for service in services:
            if service["spec"].get("clusterIP") != "None":
                yield (
                    f"{_name(service)}: not headless (clusterIP: None), so clients see one virtual IP "
                    "instead of resolving every scorer replica"
                )
    if "trainer" in commands:
        trainer = commands["trainer"]
        gpus = (trainer.spec.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu", 0)
        if int(gpus) < 1:
            yield f"{trainer.name}: no GPU (resources.limits nvidia.com/gpu: 1)"
    for c in r.containers:
        requests = (c.spec.get("resources") or {}).get("requests") or {}
        missing = [resource for resource in ("cpu", "memory") if resource not in requests]
        if missing:
            yield f"{c.name}: no resource requests for {' and '.join(missing)}"


def check_state(r: Rendering) -> Iterator[str]:
    for w in r.workloads:
        for volume in w["spec"]["template"]["spec"].get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim is not None and claim not in r.claims:
                yield (
                    f"{_name(w)}: volume {volume['name']} names PersistentVolumeClaim/{claim}, "
                    "which is not in the rendering"
                )
    checkpoints: dict[str, str | None] = {}
    for c in r.containers:
        if c.command in ("trainer", "scorer"):
            folder = r.setting(c, "--checkpoint-dir")
            if folder is None:
                yield f"{c.name}: sets no LESSLABELS_CHECKPOINT_DIR (the default is inside the container)"
            else:
                checkpoints[c.command] = r.claim(c, folder)
        for flag in STATE_FLAGS if c.command else ():
            value = r.setting(c, flag)
            path = _path(value) if value else None
            if path is not None and r.claim(c, path) is None:
                yield f"{c.name}: {env_name(flag)}={value} is not on a persistent volume claim"
        if repository(c.spec["image"]) == "postgres" and not c.init:
            pgdata = r.env(c).get("PGDATA") or POSTGRES_DEFAULT_PGDATA
            if r.claim(c, pgdata) is None:
                yield f"{c.name}: PostgreSQL's data ({pgdata}) is not on a persistent volume claim"
    if len(checkpoints) == 2 and len(set(checkpoints.values())) != 1:
        yield f"the trainer and the scorer keep checkpoints on different claims: {checkpoints}"
    shared = r.claims.get(checkpoints.get("trainer") or "")
    if shared is not None and "ReadWriteMany" not in shared["spec"].get("accessModes", []):
        yield f"{_name(shared)}: the trainer and the scorer's replicas mount it, so it must be ReadWriteMany"


def check_database(r: Rendering) -> Iterator[str]:
    for c in r.containers:
        if c.command != "pool":
            continue
        if c.secret_ref("LESSLABELS_DATABASE_URL") is None:
            yield f"{c.name}: LESSLABELS_DATABASE_URL does not come from a Secret (it holds the password)"
        url = urllib.parse.urlsplit(r.env(c).get("LESSLABELS_DATABASE_URL") or "")
        service = r.services.get(url.hostname or "")
        if service is None:
            continue  # SQLite, or a server outside the rendering
        given = {
            "user": urllib.parse.unquote(url.username or ""),
            "password": urllib.parse.unquote(url.password or ""),
            "database": url.path.lstrip("/"),
        }
        for server in r.containers:
            if server.init or server.workload not in r.selected(service):
                continue
            env = r.env(server)
            user = env.get("POSTGRES_USER") or "postgres"
            expected = {
                "user": user,
                "password": env.get("POSTGRES_PASSWORD"),
                "database": env.get("POSTGRES_DB") or user,
            }
            for what, value in expected.items():
                if given[what] != value:
                    yield f"{c.name}: the database URL's {what} is not the one {server.name} is given"


def check_metrics(r: Rendering) -> Iterator[str]:
    """Every lesslabels container serves metrics (``--metrics-port``) on a port it declares, and
    its pod carries the ``prometheus.io`` annotations that send Prometheus there."""
    for c in r.containers:
        if c.command is None or c.init:
            continue
        port = r.setting(c, "--metrics-port")
        if not port or not port.isdigit() or int(port) == 0:
            yield f"{c.name}: no --metrics-port (LESSLABELS_METRICS_PORT): Prometheus cannot scrape it"
            continue
        if int(port) not in c.declared.values():
            yield f"{c.name}: its metrics port {port} is not a declared container port"
        annotations = c.workload["spec"]["template"]["metadata"].get("annotations") or {}
        if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != port:
            yield (
                f"{c.name}: the pod's prometheus.io annotations (scrape {annotations.get('prometheus.io/scrape')!r}, "
                f"port {annotations.get('prometheus.io/port')!r}) do not point at its metrics port {port}"
            )


def check_wiring(docs: list[dict]) -> list[str]:
    """Every wiring mistake found in the rendered objects (none: an empty list)."""
    r = Rendering(docs)
    return [
        *check_selectors(r),
        *check_service_ports(r),
        *check_addresses(r),
        *check_settings(r),
        *check_probes(r),
        *check_secret_refs(r),
        *check_tokens_and_hosts(r),
        *check_scale_and_resources(r),
        *check_state(r),
        *check_database(r),
        *check_metrics(r),
    ]
