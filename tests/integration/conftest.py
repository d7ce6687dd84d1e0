"""Fixtures of the integration suite: the compose topology, as local processes or with Docker.

``deployment`` is parametrised over two backends: ``local`` (always: the compose file's
services as local processes) and ``docker`` (a real ``docker compose up``; skipped, with the
reason, when no Docker engine answers). The tiny random BERT stands in for MiniLM.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import pathlib
import shutil

import pytest

from lesslabels.demo.data import synthetic_rows
from tests.integration.compose import (
    DockerTopology,
    LocalTopology,
    docker_unavailable_reason,
    stand_in_unavailable_reason,
)
from tests.integration.values import CHILD_ENV, DATASET, TEST_ROWS, TRAIN_ROWS, VARIABLES


@dataclasses.dataclass
class Deployment:
    topology: LocalTopology | DockerTopology
    base_model: str  # the tiny BERT, at a path the trainer and scorer can read

    @property
    def backend(self) -> str:
        return self.topology.backend


def csv_bytes(rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["label", "text"])
    writer.writerows(rows)
    return buffer.getvalue().encode()


def make_topology(backend: str, workdir: pathlib.Path, tiny_bert_dir: pathlib.Path):
    """(topology, base model path) for ``backend``; skips the docker backend without an engine."""
    if backend == "docker":
        reason = docker_unavailable_reason()
        if reason is not None:
            pytest.skip(f"docker backend: {reason}")
        # A copy the container user can read (pytest's temporary folders are private to us).
        model = workdir / "model"
        shutil.copytree(tiny_bert_dir, model)
        for path in [model, *model.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        return DockerTopology(workdir / "compose", variables=VARIABLES, mounts=[str(model)]), str(model)
    # The tiny BERT's folder is a model folder of the trainer and the scorer (base models come only
    # from those, the bundled model and the checkpoint store).
    env = dict(CHILD_ENV, LESSLABELS_MODEL_DIR=str(tiny_bert_dir))
    topology = LocalTopology(workdir, variables=VARIABLES, env=env)
    reason = stand_in_unavailable_reason(topology.services)
    if reason is not None:
        topology.down()
        pytest.skip(f"local backend: {reason}")
    return topology, str(tiny_bert_dir)


@pytest.fixture(scope="module", params=["local", "docker"])
def deployment(request, tmp_path_factory, tiny_bert_dir):
    """The whole topology, up and healthy, with the synthetic flight-intent set imported."""
    topology, base_model = make_topology(
        request.param, tmp_path_factory.mktemp(f"compose-{request.param}"), tiny_bert_dir
    )
    try:
        topology.up()
        # As docs/deployment.md says: a one-off `lesslabels import` in the coordinator service,
        # which knows the pool's address and the token from the compose file.
        data = tmp_path_factory.mktemp("import-data")
        train, test = synthetic_rows()
        for split, rows in (("train", train[:TRAIN_ROWS]), ("test", test[:TEST_ROWS])):
            (data / f"{split}.csv").write_bytes(csv_bytes(rows))
        for path in [data, *data.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        for split in ("train", "test"):
            result = topology.run(
                "coordinator",
                ["import", f"/import/{split}.csv", "--dataset", DATASET, "--split", split],
                binds={str(data): "/import"},
            )
            assert result.returncode == 0, result.stdout + result.stderr
        yield Deployment(topology, base_model)
    finally:
        topology.down()


@pytest.fixture
def backend_factory(tmp_path, tiny_bert_dir):
    """``factory(backend)`` -> (topology, base model), brought down after the test."""
    made = []

    def factory(backend: str):
        topology, base_model = make_topology(backend, tmp_path / backend, tiny_bert_dir)
        made.append(topology)
        return topology, base_model

    yield factory
    for topology in made:
        topology.down()
