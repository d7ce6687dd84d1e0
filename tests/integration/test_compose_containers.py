"""docker-compose.yml for real: the images built, the stack up under a container engine (podman with
podman-compose here and in CI, or Docker Compose), active learning through the containers.

The module's stack (one for all its tests, in this order):

- the base images: pulled, or made from Debian packages where no registry can be reached
  (deploy/base-images.sh), and the wheelhouse (deploy/wheelhouse.sh), so that the build needs no
  network; then ``compose build`` and ``compose up``, each timed;
- the synthetic flight-intent set imported by a one-off ``lesslabels import`` in the coordinator's
  image (``compose run``), as docs/deployment.md says;
- a two-round run with the tiny BERT (bind-mounted as a model folder) during which the pool's
  container is killed from the host: its restart policy brings it back, and the run completes
  with nothing acquired twice, nothing labelled twice and no label lost (read through the pool's
  published port and in its PostgreSQL container, as tests/chaos does);
- a two-round run with the real bundled MiniLM, started and followed by the host's ``lesslabels``
  CLI from outside the containers;
- the web app on its published port; ``compose down -v`` leaves no container and no volume.

Skipped, saying why, where no engine can run here (nothing installed, no base image to be had).
``LESSLABELS_COMPOSE_ENGINE`` (podman or docker) picks the engine; by default podman where installed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from lesslabels.client import CoordinatorClient, DeadlineExceeded, PoolClient, RunDetail, RunEvent, Unavailable
from lesslabels.contract.vocabulary import FINAL_RUN_STATES
from lesslabels.demo.data import synthetic_rows
from lesslabels.pool.run_store_client import RunStoreClient
from tests.integration.compose import ROOT, DockerTopology, engine_unavailable_reason, podman_environment
from tests.integration.conftest import csv_bytes
from tests.integration.values import DATASET, INTERNAL_TOKEN, TEST_ROWS, TOKEN, TRAIN_ROWS, VARIABLES, tiny_run_config

pytestmark = [pytest.mark.slow, pytest.mark.compose, pytest.mark.integration, pytest.mark.timeout(1500)]

ENGINE = os.environ.get("LESSLABELS_COMPOSE_ENGINE") or ("podman" if shutil.which("podman") else "docker")
SEED, BATCH, ROUNDS = 16, 8, 2
RUN_TIMEOUT = 420.0
#: deploy/base-images.sh's exit code when no base image can be had here (no registry, no debootstrap).
NO_BASE_IMAGE = 3
SERVICES = ("postgres", "pool", "trainer", "scorer", "coordinator", "web")


@dataclasses.dataclass
class Stack:
    topology: DockerTopology
    base_model: str  # the tiny BERT, at the same path inside trainer and scorer
    images: dict[str, str]  # LESSLABELS_PYTHON_IMAGE etc., as deploy/base-images.sh printed them
    seconds: dict[str, float]  # what took how long
    runs: list[int] = dataclasses.field(default_factory=list)  # the runs the tests made, in order


def _script(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def readable_copy(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """A copy of the tiny BERT that the containers' user can read (pytest's folders are private)."""
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, tiny_bert_dir):
    reason = engine_unavailable_reason(ENGINE)
    if reason is not None:
        pytest.skip(f"{ENGINE}: {reason}")
    env = podman_environment() if ENGINE == "podman" else dict(os.environ)
    seconds: dict[str, float] = {}

    started = time.monotonic()
    base = _script([str(ROOT / "deploy" / "base-images.sh")], dict(env, CONTAINER_ENGINE=ENGINE), timeout=900)
    if base.returncode == NO_BASE_IMAGE:
        pytest.skip(f"no base image can be had here: {base.stderr.strip()[-600:]}")
    assert base.returncode == 0, base.stderr[-3000:]
    images = dict(line.split("=", 1) for line in base.stdout.split() if "=" in line)
    assert set(images) == {"LESSLABELS_PYTHON_IMAGE", "LESSLABELS_POSTGRES_IMAGE", "LESSLABELS_POSTGRES_VERSION"}
    seconds["base images"] = time.monotonic() - started

    started = time.monotonic()
    wheels = _script([str(ROOT / "deploy" / "wheelhouse.sh")], dict(env, PYTHON=sys.executable), timeout=900)
    assert wheels.returncode == 0, wheels.stderr[-3000:]
    seconds["wheelhouse"] = time.monotonic() - started

    workdir = tmp_path_factory.mktemp(f"compose-{ENGINE}")
    model = readable_copy(tiny_bert_dir, workdir / "model")
    # The wiring (commands, variables) is checked by test_compose_wiring.py; not again here.
    topology = DockerTopology(
        workdir / "compose",
        variables={**VARIABLES, **images},
        mounts=[str(model)],
        engine=ENGINE,
        check_variables=False,
    )
    reason = topology.check_runs(images["LESSLABELS_PYTHON_IMAGE"])
    if reason is not None:
        pytest.skip(reason)
    try:
        started = time.monotonic()
        topology.build()
        seconds["compose build"] = time.monotonic() - started
        started = time.monotonic()
        topology.up()
        seconds["compose up until every health check passes"] = time.monotonic() - started
        started = time.monotonic()
        import_flights(topology, tmp_path_factory.mktemp("import"))
        seconds["import (two one-off containers)"] = time.monotonic() - started
        yield Stack(topology, str(model), images, seconds)
    finally:
        topology.down()
        # The measured times, on the terminal (also when a test failed).
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\ncompose test on {ENGINE} ({', '.join(f'{k}={v}' for k, v in images.items())}):")
            for what, took in seconds.items():
                print(f"  {what}: {took:.1f} s")


def import_flights(topology: DockerTopology, folder: pathlib.Path) -> None:
    """The synthetic flight-intent set, by ``lesslabels import`` in a one-off coordinator container."""
    train, test = synthetic_rows()
    for split, rows in (("train", train[:TRAIN_ROWS]), ("test", test[:TEST_ROWS])):
        (folder / f"{split}.csv").write_bytes(csv_bytes(rows))
    for path in [folder, *folder.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    for split in ("train", "test"):
        result = topology.run(
            "coordinator",
            ["import", f"/import/{split}.csv", "--dataset", DATASET, "--split", split],
            binds={str(folder): "/import"},
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def follow(topology: DockerTopology, run_id: int, on_event=None) -> RunDetail:
    """Watch the run until it is over, reconnecting while the coordinator (or the pool behind it) is down."""
    address = topology.public_address("coordinator")
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with CoordinatorClient(address, token=TOKEN, timeout=10) as coordinator:
                for event in coordinator.watch(run_id, window=20):
                    if on_event is not None:
                        on_event(event)
                    if time.monotonic() > deadline:
                        break
                detail = coordinator.get_run(run_id)
            if detail.run.state in FINAL_RUN_STATES:
                return detail
        except (Unavailable, DeadlineExceeded):
            time.sleep(0.5)
    raise AssertionError(f"run {run_id} not over after {RUN_TIMEOUT:.0f}s")


def label_events(topology: DockerTopology, run_id: int) -> list[tuple[int, str]]:
    """(sample, source) of every label the run's scope holds, read in the postgres container with psql."""
    environment = topology.services["postgres"].environment
    query = f"SELECT sample_id, source FROM label_events WHERE scope = 'run:{int(run_id)}' ORDER BY id"
    proc = topology._engine(
        "exec",
        topology.container("postgres"),
        "psql",
        "-U",
        environment["POSTGRES_USER"],
        "-d",
        environment["POSTGRES_DB"],
        "-At",
        "-F",
        ",",
        "-c",
        query,
    )
    return [(int(sample), source) for sample, source in (line.split(",") for line in proc.stdout.split())]


def problems_of(topology: DockerTopology, detail: RunDetail) -> list[str]:
    """What is wrong with a finished two-round run: it must be COMPLETED by its round limit, with
    rounds 0 and 1 each trained and evaluated, no sample acquired twice, none labelled twice by the
    oracle, no label lost (the run's labelled samples are exactly its acquisitions)."""
    problems = []
    run, rounds = detail.run, list(detail.rounds)
    if run.state != "COMPLETED":
        problems.append(f"run ended {run.state} ({run.stop_reason!r}, error {run.error!r})")
    if [r.index for r in rounds] != list(range(ROUNDS)):
        problems.append(f"rounds are {[r.index for r in rounds]}")
    if not all(r.checkpoint_id and r.train_job_id and r.test is not None and r.finished_at for r in rounds):
        problems.append(f"an unfinished round: {rounds}")
    with RunStoreClient(topology.address("pool"), token=INTERNAL_TOKEN, timeout=30) as store:
        acquired = store.list_acquisitions(run.id)
    with PoolClient(topology.address("pool"), token=TOKEN, timeout=30) as pool:
        labelled = [s.id for s in pool.list_samples(DATASET, state="labelled", run_id=run.id, page_size=5000)]
    ids = [a.sample_id for a in acquired]
    twice = sorted(i for i, n in collections.Counter(ids).items() if n > 1)
    if twice:
        problems.append(f"samples acquired twice: {twice}")
    per_round = dict(collections.Counter(a.round for a in acquired))
    if per_round != {0: SEED, 1: BATCH}:
        problems.append(f"acquisitions per round {per_round}, expected {{0: {SEED}, 1: {BATCH}}}")
    if sorted(labelled) != sorted(set(ids)) or any(not a.label for a in acquired):
        problems.append(f"labelled samples {sorted(labelled)} are not the acquired ones {sorted(ids)}")
    if [r.labelled_count for r in rounds] != [SEED, SEED + BATCH]:
        problems.append(f"labelled count per round {[r.labelled_count for r in rounds]}")
    events = label_events(topology, run.id)
    given = collections.Counter(sample for sample, _ in events)
    relabelled = sorted(s for s, n in given.items() if n > 1)
    if relabelled:
        problems.append(f"samples labelled more than once: {relabelled}")
    if set(given) != set(ids):
        problems.append(f"label events for {sorted(given)}, acquisitions {sorted(ids)}")
    return problems


def test_the_images_build_without_a_registry_and_every_service_comes_up(stack):
    topology = stack.topology
    for name in SERVICES:
        assert topology.is_running(name), name
        assert topology.health(name)[0], f"{name}: {topology.logs(name)[-2000:]}"
    # The images the file asked for, built on the base images the script chose.
    postgres_image = topology.inspect(
        "postgres", "{{.ImageName}}" if topology.engine == "podman" else "{{.Config.Image}}"
    )
    assert stack.images["LESSLABELS_POSTGRES_IMAGE"] in postgres_image
    assert topology.inspect("pool", "{{.Config.User}}") == "lesslabels"  # not root
    # The bundled MiniLM, the web app's dependencies and pyarrow (the pool reads Parquet imports) are in the image.
    probe = topology._engine(
        "exec",
        topology.container("web"),
        "python",
        "-c",
        "import fastapi, pyarrow, lesslabels.modeling.models as m; print(m.default_model_path())",
    )
    assert probe.stdout.strip().endswith("/model")


def test_a_container_killed_mid_run_comes_back_by_its_restart_policy_and_nothing_is_done_twice(stack):
    topology = stack.topology
    before = {name: topology.restarts(name) for name in SERVICES}
    killed: list[str] = []

    def kill_the_pool(event: RunEvent) -> None:
        # Once the run scores its pool (round 0) or later: the pool's acquisitions, labels and run
        # record are being written; its container dies as a crash would (SIGKILL from the host).
        run = event.run
        if not killed and run.state == "RUNNING" and (run.round >= 1 or run.step in ("SCORE", "SELECT")):
            topology.kill("pool")
            killed.append(f"round {run.round} {run.step}")

    config = tiny_run_config(stack.base_model, seed_size=SEED, batch_size=BATCH, rounds=ROUNDS, random_seed=7)
    started = time.monotonic()
    with CoordinatorClient(topology.public_address("coordinator"), token=TOKEN, timeout=30) as coordinator:
        run = coordinator.start_run(config, request_id=str(uuid.uuid4()))
    detail = follow(topology, run.id, on_event=kill_the_pool)
    stack.runs.append(run.id)
    stack.seconds["tiny-model run with the pool killed"] = time.monotonic() - started
    assert killed, "the run never reached its scoring step"
    # The engine's restart policy (unless-stopped), not the test, brought the pool back.
    topology.wait_healthy("pool", timeout=120)
    after = {name: topology.restarts(name) for name in SERVICES}
    assert after["pool"] == before["pool"] + 1, (before, after)
    assert {n: after[n] for n in SERVICES if n != "pool"} == {n: before[n] for n in SERVICES if n != "pool"}
    assert problems_of(topology, detail) == [], f"killed at {killed[0]}"


def test_the_cli_from_outside_runs_the_real_minilm_through_the_containers(stack):
    topology = stack.topology
    name = f"compose-minilm-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LESSLABELS_")}
    env.update(
        LESSLABELS_COORDINATOR_ADDRESS=topology.public_address("coordinator"), LESSLABELS_TOKEN=TOKEN, COLUMNS="200"
    )
    argv = [sys.executable, "-m", "lesslabels", "run", "--dataset", DATASET, "--name", name, "--base-model", "default"]
    argv += ["--strategy", "entropy", "--seed-size", str(SEED), "--batch-size", str(BATCH)]
    argv += ["--max-rounds", str(ROUNDS), "--oracle", "simulated", "--random-seed", "11", "--epochs", "1"]
    argv += ["--train-batch-size", "8", "--max-length", "32", "--num-threads", "1", "--watch", "--no-progress"]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT)
    stack.seconds["MiniLM run (CLI --watch)"] = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with CoordinatorClient(topology.public_address("coordinator"), token=TOKEN, timeout=30) as coordinator:
        (run,) = [r for r in coordinator.list_runs() if r.config.name == name]
        detail = coordinator.get_run(run.id)
    stack.runs.append(run.id)
    assert detail.run.config.base_model in ("default", "all-MiniLM-L6-v2", ""), detail.run.config.base_model
    assert problems_of(topology, detail) == []
    status = subprocess.run(
        [sys.executable, "-m", "lesslabels", "status", str(run.id)], capture_output=True, text=True, env=env, timeout=60
    )
    assert status.returncode == 0 and "state=completed" in status.stdout, status.stdout + status.stderr


def test_the_web_app_answers_on_its_published_port(stack):
    import httpx

    base = f"http://{stack.topology.public_address('web')}"
    with httpx.Client(base_url=base, timeout=30) as browser:
        assert browser.get("/healthz").status_code == 200
        first = browser.get("/runs", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].startswith("/login")
        assert browser.post("/login", data={"token": "wrong-token", "next": "/runs"}).status_code == 401
        page = browser.post("/login", data={"token": TOKEN, "next": "/runs"}, follow_redirects=True)
        assert page.status_code == 200
        assert stack.runs and all(f'href="/runs/{run_id}"' in page.text for run_id in stack.runs), page.text[-2000:]


def test_compose_down_removes_every_container_and_volume(stack):
    topology = stack.topology
    assert topology.volumes(), "the project's named volumes should exist while it is up"
    started = time.monotonic()
    topology.down()
    stack.seconds["compose down -v"] = time.monotonic() - started
    left = topology._engine(
        "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={topology.project}"
    ).stdout.split()
    assert left == [] and topology.volumes() == []
