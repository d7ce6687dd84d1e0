"""In-process stacks for tests: the real pool with fake trainer/scorer (fast, no torch), and the
real pool + trainer + scorer + coordinator servers on temp dirs (tiny BERT).

The fixtures over them are in ``tests/conftest.py``:

- ``fake_stack``: a started pool server, a ``FakeTrainer``, a ``FakeScorer`` and a factory
  ``fake_stack.coordinator()`` for a ``Coordinator`` core over them (new ones after a "crash").
- ``real_stack``: pool, trainer, scorer and coordinator servers, in process, on port 0, on temp
  dirs (``start_real_stack(tmp_path)`` without the fixture); ``real_stack.restart_coordinator()``
  stops the coordinator and starts a fresh one that resumes the runs in progress.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pytest

from lesslabels.common import errors, uncertainty
from lesslabels import contract
from lesslabels.contract import vocabulary
from lesslabels.coordinator import domain
from lesslabels.client import PoolClient
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.coordinator.orchestrator import Coordinator
from tests.helpers import free_port, import_rows, server_settings_for_tests

if TYPE_CHECKING:
    from lesslabels.common.server import Server
    from lesslabels.coordinator.main import CoordinatorServer

LABELS = ("flight", "airfare", "ground_service", "abbreviation")


def toy_rows(n: int, *, offset: int = 0) -> list[tuple[str, str]]:
    """``n`` (label, text) rows over four labels, all texts distinct."""
    return [
        (LABELS[i % len(LABELS)], f"{LABELS[i % len(LABELS)].replace('_', ' ')} request number {i + offset}")
        for i in range(n)
    ]


def load_toy_dataset(pool_address: str, name: str = "toy", *, train: int = 40, test: int = 12) -> None:
    import_rows(pool_address, name, toy_rows(train), split="train")
    import_rows(pool_address, name, toy_rows(test, offset=10_000), split="test")


def _unit(key: str) -> float:
    """A deterministic number in [0, 1) from a string."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


class FakeTrainer:
    """Trainer port: jobs keyed by request_id (idempotent), finishing at once unless ``hold`` is
    cleared; ``lose(request_id)`` marks a job INTERRUPTED as a trainer restart would."""

    def __init__(self):
        self.jobs: dict[str, domain.JobInfo] = {}
        self.requests: dict[str, contract.TrainRequest] = {}
        self.by_request: dict[str, str] = {}
        self.cancelled: list[str] = []
        self.hold = threading.Event()
        self.hold.set()  # set = jobs finish; clear it to keep them RUNNING
        self.started = threading.Event()  # set when a job starts running
        self.lost_keys: set[str] = set()
        self.interrupts = 0  # the next this many watched jobs end INTERRUPTED (a trainer restart)
        #: Base models check_base_model refuses (as a trainer refuses those outside its model folders).
        self.refused_models: set[str] = set()
        #: The comparison a job reports with the model its run kept (as the real trainer does), if set.
        self.compare: Callable[[contract.TrainRequest], contract.Comparison | None] | None = None
        self._lock = threading.Lock()

    def lose(self, request_id: str) -> None:
        self.lost_keys.add(request_id)

    def start_training(self, request: contract.TrainRequest) -> domain.JobInfo:
        with self._lock:
            if request.request_id in self.by_request:
                return self.jobs[self.by_request[request.request_id]]
            job_id = f"job-{len(self.jobs) + 1}"
            state = "INTERRUPTED" if request.request_id in self.lost_keys else "QUEUED"
            self.jobs[job_id] = domain.JobInfo(job_id, state)
            self.requests[job_id] = request
            self.by_request[request.request_id] = job_id
            return self.jobs[job_id]

    def check_base_model(self, base_model: str, max_length: int = 0) -> str:
        if base_model in self.refused_models:
            raise errors.InvalidArgument(f"base_model {errors.quote(base_model)}: not in the model folders")
        return base_model or "default"

    def get_job(self, job_id: str) -> domain.JobInfo:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise errors.NotFound(f"job {job_id} not found") from None

    def cancel_job(self, job_id: str) -> domain.JobInfo:
        self.cancelled.append(job_id)
        job = self.get_job(job_id)
        if job.state not in vocabulary.FINAL_JOB_STATES:
            self.jobs[job_id] = dataclasses.replace(job, state="CANCELLED")
        return self.jobs[job_id]

    def wait_job(self, job_id: str, progress=None, should_stop: Callable[[], bool] = lambda: False) -> domain.JobInfo:
        job = self.get_job(job_id)
        if job.state in vocabulary.FINAL_JOB_STATES:
            return job
        self.jobs[job_id] = dataclasses.replace(job, state="RUNNING", started_at="2026-01-01T00:00:00Z")
        self.started.set()
        if self.interrupts > 0:
            self.interrupts -= 1
            self.jobs[job_id] = dataclasses.replace(self.jobs[job_id], state="INTERRUPTED")
            return self.jobs[job_id]
        if progress is not None:  # as the trainer reports: steps done / planned, its measured speed and ETA
            progress(
                domain.TrainProgress(
                    job_id, "RUNNING", epoch=1, step=1, total_steps=4, samples_per_second=12.5, eta_seconds=3.0
                )
            )
        while not self.hold.wait(0.02):
            if should_stop() or self.jobs[job_id].state == "CANCELLED":
                return self.jobs[job_id]
        request = self.requests[job_id]
        self.jobs[job_id] = dataclasses.replace(
            self.jobs[job_id],
            state="SUCCEEDED",
            checkpoint_id=f"ckpt-run{request.run_id}-round{request.round}-{job_id}",
            finished_at="2026-01-01T00:00:02Z",
            comparison=self.compare(request) if self.compare else None,
        )
        return self.jobs[job_id]

    def trained(self, run_id: int) -> list[contract.TrainRequest]:
        """Requests of the jobs that really trained (not the INTERRUPTED ones)."""
        return [r for j, r in self.requests.items() if r.run_id == run_id and self.jobs[j].state == "SUCCEEDED"]


class FakeScorer:
    """Scorer port over the real pool: deterministic probabilities per (sample, checkpoint),
    embeddings per sample; on the test split it predicts the gold label for a fraction
    ``test_accuracy`` of the samples. It lists what it scores from the pool as the real scorer
    does (unlabelled in the run unless ``include_all``; the pool's random ``subset``; ``sample_ids``)
    and records each call with the ids it scored (``calls``)."""

    def __init__(self, pool_address: str, *, test_accuracy: float = 0.75, stable: bool = False):
        self._pool = PoolClient(pool_address, timeout=10)
        self.test_accuracy = test_accuracy
        self.stable = stable  # same predictions for every checkpoint
        self.calls: list[dict] = []
        self.embed_calls: list[dict] = []
        self.chunk_size = 16  # small, so that selection sees several chunks

    def close(self) -> None:
        self._pool.close()

    def train_calls(self, run_id: int, *, embeddings: bool = False) -> list[dict]:
        """The calls that scored run ``run_id``'s training pool with a checkpoint, in order."""
        return [
            c
            for c in self.calls
            if c["run_id"] == run_id and c["split"] == "train" and c["checkpoint_id"] and c["embeddings"] == embeddings
        ]

    def embed_pool(
        self, dataset: str, *, base_model: str = "", shard: contract.Shard | None = None
    ) -> contract.EmbedProgress:
        """As the scorer's EmbedPool: every training sample of ``dataset`` (or of the shard); recorded
        in ``embed_calls``."""
        samples = self._pool.list_samples(dataset, page_size=5000, timeout=10)
        if shard is not None:
            samples = [s for s in samples if s.id % shard.count == shard.index]
        self.embed_calls.append({"dataset": dataset, "base_model": base_model, "shard": shard})
        return contract.EmbedProgress(done=len(samples), total=len(samples), computed=len(samples))

    def score_pool(self, samples: contract.SampleQuery, **kwargs) -> contract.PoolScores:
        chunks = list(self.score_pool_chunks(samples, **kwargs))
        if not chunks:
            return self._scores(kwargs.get("checkpoint") or "", samples.split, [], False, False)
        probabilities, embeddings = kwargs.get("probabilities", True), kwargs.get("embeddings", False)
        return contract.PoolScores(
            chunks[0].labels,
            np.concatenate([c.sample_ids for c in chunks]),
            np.concatenate([c.predicted for c in chunks]),
            np.concatenate([c.probabilities for c in chunks]) if probabilities else None,
            np.concatenate([c.embeddings for c in chunks]) if embeddings else None,
            np.concatenate([c.gold for c in chunks]) if chunks[0].gold is not None else None,
            contract.Uncertainty(
                *(np.concatenate([getattr(c.uncertainty, f) for c in chunks]) for f in UNCERTAINTY_FIELDS)
            ),
        )

    def score_pool_chunks(self, samples: contract.SampleQuery, **options) -> Iterator[contract.PoolScores]:
        query = samples
        checkpoint_id, split = options.get("checkpoint") or "", query.split
        head = options.get("fast_head")
        if head is not None:  # as the scorer's fast head: fit on the run's labels as they are now
            labelled = self._pool.list_samples(
                query.dataset, state="labelled", run_id=head.run_id, page_size=5000, timeout=10
            )
            if len({s.label for s in labelled}) < 2:
                raise errors.FailedPrecondition(f"run {head.run_id}: the fast head needs labels of 2 classes")
            checkpoint_id = f"head-{head.run_id}-{len(labelled)}"
        base_model, progress = options.get("base_model"), options.get("progress")
        embeddings, probabilities = options.get("embeddings", False), options.get("probabilities", True)
        call = dict(
            dataclasses.asdict(query),
            sample_ids=list(query.sample_ids),
            shard=query.shard,
            checkpoint_id=checkpoint_id,
            fast_head=head is not None,
            base_model=base_model,
            embeddings=embeddings,
            probabilities=probabilities,
            scored=[],
        )
        self.calls.append(call)
        listed = self._pool.list_samples(
            query.dataset,
            split="test" if split == "test" else "train",
            state="any" if query.include_all or split == "test" else "unlabelled",
            run_id=query.run_id,
            page_size=5000,
            include_gold=split == "test",
            subset=query.subset,
            subset_seed=query.subset_seed,
            sample_ids=query.sample_ids,
            shard=query.shard,
            timeout=10,
        )
        for start in range(0, len(listed), self.chunk_size):
            chunk = listed[start : start + self.chunk_size]
            call["scored"].extend(s.id for s in chunk)
            if progress is not None:
                progress(start + len(chunk), len(listed))
            yield self._scores(checkpoint_id, split, chunk, probabilities, embeddings)

    def expected_test_accuracy(self, dataset: str) -> float:
        """The test accuracy this scorer gives every checkpoint on ``dataset``, worked out from its rule."""
        ids = [s.id for s in self._pool.list_samples(dataset, split="test", page_size=5000, timeout=10)]
        return float(np.mean([_unit(f"test/{i}") < self.test_accuracy for i in ids]))

    def _scores(self, checkpoint_id, split, samples, probabilities, embeddings) -> contract.PoolScores:
        labels = LABELS
        ids = np.array([s.id for s in samples], dtype=np.int64)
        # Depends on the round only, so two runs with the same seed make the same choices.
        model_key = (
            "stable" if self.stable else checkpoint_id.split("-")[2] if checkpoint_id.count("-") >= 2 else checkpoint_id
        )
        logits = np.array([[_unit(f"{model_key}/{s.id}/{c}") * 4 for c in range(len(labels))] for s in samples])
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True) if len(samples) else np.zeros((0, 4))
        predicted = np.array([labels[i] for i in probs.argmax(axis=1)], dtype=object)
        gold = None
        if split == "test":
            gold = np.array([s.gold_label for s in samples], dtype=object)
            right = np.array([_unit(f"test/{s.id}") < self.test_accuracy for s in samples])
            wrong = np.array([labels[(labels.index(g) + 1) % len(labels)] for g in gold], dtype=object)
            predicted = np.where(right, gold, wrong)
        emb = np.array([[_unit(f"emb/{s.id}/{d}") for d in range(8)] for s in samples]) if embeddings else None
        if embeddings and not len(samples):
            emb = np.zeros((0, 8))
        uncertainty_scores = contract.Uncertainty(*(uncertainty.SCORES[f][0](probs) for f in UNCERTAINTY_FIELDS))
        return contract.PoolScores(
            labels, ids, predicted, probs if probabilities else None, emb, gold, uncertainty_scores
        )


UNCERTAINTY_FIELDS = ("entropy", "margin", "least_confidence", "ratio")


@dataclasses.dataclass
class FakeStack:
    pool_address: str
    trainer: FakeTrainer
    scorer: FakeScorer
    coordinators: list = dataclasses.field(default_factory=list)
    _runs: RunStoreClient | None = None

    @property
    def runs(self) -> RunStoreClient:
        """A run-store client on the pool, for tests to read what the coordinator recorded."""
        if self._runs is None:
            self._runs = RunStoreClient(self.pool_address, timeout=10)
        return self._runs

    def close(self) -> None:
        self.trainer.hold.set()
        for core in self.coordinators:
            core.close(timeout=5)
        self.scorer.close()
        if self._runs is not None:
            self._runs.close()

    def coordinator(self, pool=None, runs=None) -> Coordinator:
        """A coordinator core on the pool, the fake trainer and scorer; ``pool`` (the public pool
        service) and ``runs`` (the run store) may be wrapped clients."""
        core = Coordinator(
            pool or PoolClient(self.pool_address, timeout=10),
            runs or RunStoreClient(self.pool_address, timeout=10),
            self.trainer,
            self.scorer,
            retry_backoff=0.05,
            outage_seconds=1.0,
            supervise_seconds=0.2,
        )
        self.coordinators.append(core)
        return core


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_for_state(runs: RunStoreClient, run_id: int, states, timeout: float = 30.0) -> contract.Run:
    states = (states,) if isinstance(states, str) else tuple(states)
    last: list[contract.Run] = []

    def check():
        run = runs.get_run(run_id)
        last[:] = [run]
        return run if run.state in states else None

    try:
        return wait_for(check, timeout, what=f"run {run_id} to reach {states}")
    except pytest.fail.Exception:
        run = last[0] if last else None
        pytest.fail(f"run {run_id} never reached {states}; last {run and (run.state, run.step, run.round, run.error)}")


# ---------------------------------------------------------------- the real services, in process


@dataclasses.dataclass
class RealStack:
    pool_address: str
    trainer_address: str
    scorer_address: str
    coordinator_address: str
    coordinator_server: CoordinatorServer
    servers: dict[str, Server]
    _build_coordinator: Callable[[], tuple[CoordinatorServer, str]]
    #: Each server's /metrics port (``start_real_stack(metrics=True)``); the metrics are the process's.
    metrics_ports: dict[str, int] = dataclasses.field(default_factory=dict)

    def restart_coordinator(self) -> None:
        """Stop the coordinator (its runs stay as recorded) and start a fresh one that resumes them."""
        self.coordinator_server.stop(0)
        self.coordinator_server, self.coordinator_address = self._build_coordinator()


def start_real_stack(
    tmp_path, *, token: str = "", model_dirs: tuple[str, ...] = (), metrics: bool = False
) -> tuple[RealStack, Callable[[], None]]:
    """Pool (temp SQLite), trainer and scorer (temp checkpoint dir) and coordinator, in process;
    ``model_dirs``: the model folders of the trainer and the scorer (where base models may come from);
    ``metrics``: each server serves /metrics on a port of its own (``RealStack.metrics_ports``)."""
    from lesslabels.coordinator.main import build_server as build_coordinator
    from lesslabels.pool.main import build_server as build_pool
    from lesslabels.scorer.model_cache import CacheConfig
    from lesslabels.scorer.main import build_server as build_scorer
    from lesslabels.trainer.main import build_server as build_trainer

    metrics_ports = {name: free_port() for name in ("pool", "trainer", "scorer", "coordinator")} if metrics else {}

    def settings_of(name: str):
        return server_settings_for_tests(token=token, metrics_port=metrics_ports.get(name, 0))

    settings = settings_of("pool")
    servers: dict[str, Server] = {}
    pool = build_pool(settings, f"sqlite:///{tmp_path / 'pool.db'}")
    pool.start()
    pool.set_serving()
    servers["pool"] = pool
    pool_address = f"127.0.0.1:{pool.port}"
    checkpoints = tmp_path / "checkpoints"
    trainer = build_trainer(
        settings_of("trainer"), pool_address, checkpoints, num_threads=1, progress_every_s=0, model_dirs=model_dirs
    )
    trainer.start()
    trainer.set_serving()
    servers["trainer"] = trainer
    scorer = build_scorer(
        settings_of("scorer"), str(checkpoints), pool_address, cache_config=CacheConfig(model_dirs=model_dirs)
    )
    scorer.start()
    scorer.set_serving()
    servers["scorer"] = scorer
    trainer_address, scorer_address = f"127.0.0.1:{trainer.port}", f"127.0.0.1:{scorer.port}"

    def build() -> tuple[CoordinatorServer, str]:
        server = build_coordinator(
            settings_of("coordinator"),
            pool_address,
            trainer_address,
            scorer_address,
            token=token,
            rpc_timeout=30,
            retry_backoff=0.2,
        )
        server.start()
        server.ready()
        return server, f"127.0.0.1:{server.port}"

    coordinator, coordinator_address = build()
    stack = RealStack(
        pool_address, trainer_address, scorer_address, coordinator_address, coordinator, servers, build, metrics_ports
    )

    def stop():
        stack.coordinator_server.stop(0)
        for name in ("scorer", "trainer", "pool"):
            servers[name].stop(0)

    return stack, stop
