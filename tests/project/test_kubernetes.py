"""deploy/kubernetes, rendered by kustomize with the Secrets' files filled in, passes the wiring
checks of tests/kubernetes.py and runs what docker-compose.yml runs; a rendering with one mistake
fails them, naming it. Rendering is local: no cluster, no network."""

from __future__ import annotations

import base64
import copy
import re
import shutil

import pytest

from tests.integration.compose import COMPOSE_FILE, load, parse
from tests.integration.values import VARIABLES
from tests.kubernetes import MANIFESTS, Rendering, RenderError, check_wiring, render, renderer

needs_kustomize = pytest.mark.skipif(
    renderer() is None, reason="neither kubectl nor kustomize is installed, so deploy/kubernetes cannot be rendered"
)

#: The files git ignores and kustomize turns into Secrets, as a user fills them in.
SECRET_FILES = {
    "tokens.env": {"token": "test-public-token", "internal-token": "test-internal-token", "web-secret": "test-web"},
    "postgres.env": {
        "user": "lesslabels",
        "password": "test-pg-password",
        "database": "lesslabels",
        "database-url": "postgresql+psycopg://lesslabels:test-pg-password@postgres:5432/lesslabels",
    },
}


def manifests_copy(tmp_path, secret_files=SECRET_FILES):
    """deploy/kubernetes copied to ``tmp_path`` (without any local secret files) plus ``secret_files``."""
    target = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, target, ignore=shutil.ignore_patterns("*.env"))
    for name, values in secret_files.items():
        (target / name).write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return target


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict]:
    return render(manifests_copy(tmp_path_factory.mktemp("k8s")))


@needs_kustomize
def test_the_rendering_passes_every_check(rendered):
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in rendered if d["kind"] != "Secret")
    assert kinds == [
        "Deployment/coordinator",
        "Deployment/pool",
        "Deployment/scorer",
        "Deployment/trainer",
        "Deployment/web",
        "PersistentVolumeClaim/checkpoints",
        "Service/coordinator",
        "Service/pool",
        "Service/postgres",
        "Service/scorer",
        "Service/trainer",
        "Service/web",
        "StatefulSet/postgres",
    ]
    # Generated Secrets: named with a hash of their content, which every reference follows.
    assert sorted(re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"]) for d in rendered if d["kind"] == "Secret") == [
        "lesslabels-postgres",
        "lesslabels-tokens",
    ]
    assert check_wiring(rendered) == []


@needs_kustomize
def test_it_runs_what_compose_runs_with_the_same_images_and_ports(rendered):
    compose = load(COMPOSE_FILE, VARIABLES)["services"]
    services = parse(load(COMPOSE_FILE, VARIABLES))
    r = Rendering(rendered)
    ours = {c.command: (c.spec["image"], r.listens(c)) for c in r.containers if c.command}
    assert ours == {s.argv[1]: (compose[name]["image"], {s.port}) for name, s in services.items() if not s.image}
    # The pool's PostgreSQL: the same official image in both.
    # Fully qualified, as the compose file names it (podman resolves no short names without a registry list).
    databases = {c.spec["image"] for c in r.containers if c.spec["image"].rsplit("/", 1)[-1].startswith("postgres:")}
    assert databases == {compose["postgres"]["image"]} == {"docker.io/library/postgres:16"}


@needs_kustomize
def test_the_secret_files_are_required(tmp_path):
    with pytest.raises(RenderError, match=r"tokens\.env"):
        render(manifests_copy(tmp_path, {}))


def test_the_example_secret_files_list_every_key():
    for name, values in SECRET_FILES.items():
        lines = (MANIFESTS / f"{name}.example").read_text().splitlines()
        keys = [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]
        assert keys == list(values), name


# ---------------------------------------------------------------- one mistake each


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(docs, name, kind="Deployment"):
    return find(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def env(docs, name, variable, kind="Deployment"):
    return next(e for e in container(docs, name, kind)["env"] if e["name"] == variable)


def set_env(docs, name, variable, value):
    env = container(docs, name)["env"]
    env[:] = [e for e in env if e["name"] != variable] + ([{"name": variable, "value": value}] if value else [])


def set_secret(docs, prefix, key, value):
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].startswith(prefix))
    secret["data"][key] = base64.b64encode(value.encode()).decode()


def service_port(docs, name):
    return find(docs, "Service", name)["spec"]["ports"][0]


MISTAKES = {
    "deployment-selector": (
        lambda d: find(d, "Deployment", "pool")["spec"]["selector"]["matchLabels"].update({"tier": "db"}),
        r"Deployment/pool: selector .* does not match its pod labels",
    ),
    "service-selects-nothing": (
        lambda d: find(d, "Service", "trainer")["spec"]["selector"].update({"app.kubernetes.io/name": "trainr"}),
        r"Service/trainer: selector .* selects the pods of 0 workloads",
    ),
    "service-selects-everything": (
        lambda d: find(d, "Service", "pool")["spec"].update(selector={"app.kubernetes.io/part-of": "lesslabels"}),
        r"Service/pool: selector .* selects the pods of 6 workloads",
    ),
    "service-target-port": (
        lambda d: service_port(d, "pool").update(targetPort="http"),
        r"Service/pool: port 50051 targets http, which no container of Deployment/pool declares",
    ),
    "container-port-not-served": (
        lambda d: container(d, "coordinator")["ports"][0].update(containerPort=50055),
        r"Service/coordinator: port 50054 targets 50055 of Deployment/coordinator\[coordinator\], "
        r"which listens on \[50054\]",
    ),
    "address-port": (
        lambda d: service_port(d, "trainer").update(port=50055),
        r"coordinator\[coordinator\]: LESSLABELS_TRAINER_ADDRESS=trainer:50052: "
        r"Service/trainer exposes \[50055\], not 50052",
    ),
    "address-host": (
        lambda d: set_env(d, "web", "LESSLABELS_SCORER_ADDRESS", "dns:///scorr:50053"),
        r"web\[web\]: LESSLABELS_SCORER_ADDRESS=dns:///scorr:50053 names scorr, which is not a Service",
    ),
    "database-host": (
        lambda d: set_secret(d, "lesslabels-postgres", "database-url", "postgresql+psycopg://u:p@postgress:5432/db"),
        r"pool\[pool\]: LESSLABELS_DATABASE_URL=\S+ names postgress, which is not a Service",
    ),
    "unknown-variable": (
        lambda d: set_env(d, "trainer", "LESSLABELS_POOL_ADRESS", "pool:50051"),
        r"trainer\[trainer\]: LESSLABELS_POOL_ADRESS is not a setting of `lesslabels trainer`",
    ),
    "unknown-flag": (
        lambda d: container(d, "scorer").update(args=["scorer", "--cache-sise", "3"]),
        r"scorer\[scorer\]: --cache-sise is not a flag of `lesslabels scorer`",
    ),
    "unknown-command": (
        lambda d: container(d, "coordinator").update(args=["coordinater"]),
        r"coordinator\[coordinator\]: `lesslabels coordinater --help` failed",
    ),
    "probe-port": (
        lambda d: container(d, "pool")["readinessProbe"]["grpc"].update(port=50052),
        r"pool\[pool\]: readinessProbe probes port 50052, but it listens on \[50051\]",
    ),
    "http-probe-port": (
        lambda d: container(d, "web")["livenessProbe"]["httpGet"].update(port=8081),
        r"web\[web\]: livenessProbe probes port 8081, but it listens on \[8080\]",
    ),
    "no-probe": (
        lambda d: container(d, "scorer").pop("livenessProbe"),
        r"scorer\[scorer\]: no livenessProbe",
    ),
    "not-a-grpc-probe": (
        lambda d: container(d, "trainer").update(livenessProbe={"tcpSocket": {"port": 50052}}),
        r"trainer\[trainer\]: livenessProbe is not a gRPC health probe",
    ),
    "grpc-probe-on-http": (
        lambda d: container(d, "web").update(readinessProbe={"grpc": {"port": 8080}}),
        r"web\[web\]: readinessProbe is a gRPC probe, but it serves no gRPC health",
    ),
    "missing-secret": (
        lambda d: env(d, "coordinator", "LESSLABELS_TOKEN")["valueFrom"]["secretKeyRef"].update(name="tokens"),
        r"coordinator\[coordinator\]: LESSLABELS_TOKEN reads Secret/tokens, which is not in the rendering",
    ),
    "missing-key": (
        lambda d: env(d, "postgres", "POSTGRES_PASSWORD", "StatefulSet")["valueFrom"]["secretKeyRef"].update(
            key="pass"
        ),
        r"postgres\[postgres\]: POSTGRES_PASSWORD reads key pass of Secret/lesslabels-postgres-\w+, which has",
    ),
    "token-literal": (
        lambda d: set_env(d, "scorer", "LESSLABELS_INTERNAL_TOKEN", "abc"),
        r"scorer\[scorer\]: LESSLABELS_INTERNAL_TOKEN does not come from a Secret",
    ),
    "token-other-key": (
        lambda d: env(d, "web", "LESSLABELS_TOKEN")["valueFrom"]["secretKeyRef"].update(key="internal-token"),
        r"LESSLABELS_TOKEN comes from different Secret keys .*: the services would refuse each other's calls",
    ),
    "token-empty": (
        lambda d: set_secret(d, "lesslabels-tokens", "internal-token", ""),
        r"pool\[pool\]: LESSLABELS_INTERNAL_TOKEN is empty",
    ),
    "loopback": (
        lambda d: set_env(d, "pool", "LESSLABELS_HOST", None),
        r"pool\[pool\]: listens on 127\.0\.0\.1, which other pods cannot reach",
    ),
    "no-port-setting": (
        lambda d: set_env(d, "trainer", "LESSLABELS_PORT", None),
        r"trainer\[trainer\]: sets no LESSLABELS_PORT or --port",
    ),
    "insecure": (
        lambda d: set_env(d, "coordinator", "LESSLABELS_INSECURE", "true"),
        r"coordinator\[coordinator\]: --insecure \(LESSLABELS_INSECURE\)",
    ),
    "scorer-not-headless": (
        lambda d: find(d, "Service", "scorer")["spec"].pop("clusterIP"),
        r"Service/scorer: not headless",
    ),
    "one-scorer": (
        lambda d: find(d, "Deployment", "scorer")["spec"].update(replicas=1),
        r"Deployment/scorer: 1 replica",
    ),
    "fewer-shards-than-scorers": (
        lambda d: set_env(d, "coordinator", "LESSLABELS_SCORE_SHARDS", ""),
        r"coordinator\[coordinator\]: a round is scored in 1 part\(s\) \(LESSLABELS_SCORE_SHARDS\) but "
        r"Deployment/scorer runs 2 replicas",
    ),
    "no-gpu": (
        lambda d: container(d, "trainer")["resources"]["limits"].pop("nvidia.com/gpu"),
        r"trainer\[trainer\]: no GPU",
    ),
    "no-requests": (
        lambda d: find(d, "Deployment", "scorer")["spec"]["template"]["spec"]["initContainers"][0].pop("resources"),
        r"scorer\[wait-for-checkpoint-store\]: no resource requests for cpu and memory",
    ),
    "checkpoints-on-empty-dir": (
        lambda d: find(d, "Deployment", "trainer")["spec"]["template"]["spec"].update(
            volumes=[{"name": "checkpoints", "emptyDir": {}}]
        ),
        r"trainer\[trainer\]: LESSLABELS_CHECKPOINT_DIR=/checkpoints is not on a persistent volume claim",
    ),
    "jobs-off-the-claim": (
        lambda d: set_env(d, "trainer", "LESSLABELS_JOBS_DIR", "/jobs"),
        r"trainer\[trainer\]: LESSLABELS_JOBS_DIR=/jobs is not on a persistent volume claim",
    ),
    "checkpoints-not-shared": (
        lambda d: find(d, "Deployment", "scorer")["spec"]["template"]["spec"]["volumes"][0].update(
            persistentVolumeClaim={"claimName": "models"}
        ),
        r"the trainer and the scorer keep checkpoints on different claims",
    ),
    "checkpoints-read-write-once": (
        lambda d: find(d, "PersistentVolumeClaim", "checkpoints")["spec"].update(accessModes=["ReadWriteOnce"]),
        r"PersistentVolumeClaim/checkpoints: .* must be ReadWriteMany",
    ),
    "postgres-data-off-the-claim": (
        lambda d: env(d, "postgres", "PGDATA", "StatefulSet").update(value="/pgdata"),
        r"postgres\[postgres\]: PostgreSQL's data \(/pgdata\) is not on a persistent volume claim",
    ),
    "database-url-literal": (
        lambda d: set_env(
            d, "pool", "LESSLABELS_DATABASE_URL", "postgresql+psycopg://lesslabels:x@postgres/lesslabels"
        ),
        r"pool\[pool\]: LESSLABELS_DATABASE_URL does not come from a Secret",
    ),
    "metrics-off": (
        lambda d: set_env(d, "scorer", "LESSLABELS_METRICS_PORT", ""),
        r"scorer\[scorer\]: no --metrics-port \(LESSLABELS_METRICS_PORT\)",
    ),
    "metrics-annotation-port": (
        lambda d: find(d, "Deployment", "web")["spec"]["template"]["metadata"]["annotations"].update(
            {"prometheus.io/port": "9000"}
        ),
        r"web\[web\]: the pod's prometheus.io annotations \(scrape 'true', port '9000'\) do not point at its "
        r"metrics port 9464",
    ),
    "metrics-port-undeclared": (
        lambda d: set_env(d, "pool", "LESSLABELS_METRICS_PORT", "9465"),
        r"pool\[pool\]: its metrics port 9465 is not a declared container port",
    ),
    "database-password": (
        lambda d: set_secret(d, "lesslabels-postgres", "password", "another-password"),
        r"pool\[pool\]: the database URL's password is not the one StatefulSet/postgres\[postgres\] is given",
    ),
}


@needs_kustomize
@pytest.mark.parametrize("mutate, message", MISTAKES.values(), ids=MISTAKES.keys())
def test_a_wiring_mistake_is_reported(rendered, mutate, message):
    docs = copy.deepcopy(rendered)
    mutate(docs)
    problems = check_wiring(docs)
    assert any(re.search(message, p) for p in problems), problems
