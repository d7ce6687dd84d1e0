"""A round's scoring sharded over three real scorer processes on loopback (the tiny BERT checkpoint,
the real pool in process), as the coordinator does it (``PoolScoreCache`` over ``ScorerReplicas`` of
the real gRPC clients): every unlabelled sample scored exactly once across the replicas, and the
round's selection the one a single scorer makes; with one scorer process SIGKILLed while it
streams its shard, the shard is scored again on another process and the selection is the same.

Scores of the same text can differ in the last float bits with the batch it was scored in (the
scorer's dynamic batcher pads a batch to its longest text), so "the same selection" allows two
samples to trade places only when a single scorer gives them scores within ``TIE`` of each other.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading

import numpy as np
import pytest

from lesslabels.common.channels import wait_until_serving
from lesslabels import contract
from lesslabels.client import PoolClient, ScorerClient
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.coordinator.scores import PoolScoreCache
from lesslabels.coordinator.sharding import ScorerReplicas
from tests.helpers import import_rows
from tests.integration.compose import child_environment, die_with_parent, free_port, local_argv
from tests.integration.values import CHILD_ENV

pytestmark = pytest.mark.integration

TRAIN = 240
BATCH = 8
CHUNK = 4  # samples per ScorePool chunk: a shard streams in many chunks, so it can die midway
TIE = 1e-4
CITIES = ["boston", "denver", "atlanta", "dallas", "seattle", "miami", "chicago"]


class ScorerProcess:
    """``lesslabels scorer`` as a local process on a free loopback port."""

    def __init__(self, workdir, *, pool_address: str, checkpoint_dir: str, model_dir: str):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = workdir / f"scorer-{self.port}.log"
        argv = local_argv(["lesslabels", "scorer"]) + [
            "--port",
            str(self.port),
            "--pool-address",
            pool_address,
            "--checkpoint-dir",
            checkpoint_dir,
            "--model-dir",
            model_dir,
            "--threads",
            "1",
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                die_with_parent(argv),
                env=child_environment(CHILD_ENV),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_serving(self) -> None:
        try:
            wait_until_serving(self.address, service="lesslabels.v1.ScorerService", timeout=180)
        except Exception:
            pytest.fail(f"scorer {self.address} did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Recorded:
    """A replica (the real ScorerClient) that records, per ScorePool stream, the ids it got and
    whether the stream completed; ``on_chunk`` is called after each chunk (to kill a process)."""

    def __init__(self, client: ScorerClient):
        self.client = client
        self.streams: list[dict] = []
        self.on_chunk = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def score_pool(self, samples, **kwargs):
        return self.client.score_pool(samples, **kwargs)

    def score_pool_chunks(self, samples, **kwargs):
        stream = {"shard": samples.shard, "ids": [], "completed": False, "error": None}
        with self._lock:
            self.streams.append(stream)
        try:
            for chunk in self.client.score_pool_chunks(samples, **dict(kwargs, chunk_size=CHUNK)):
                stream["ids"].extend(chunk.sample_ids.tolist())
                yield chunk
                if self.on_chunk is not None:
                    self.on_chunk(stream)
        except Exception as exc:
            stream["error"] = exc
            raise
        stream["completed"] = True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, store_and_id, tiny_bert_dir):
    """The pool in process (a dataset of 240 texts, 20 of them labelled in a run) and three scorer processes."""
    from lesslabels.pool.main import build_server as build_pool
    from tests.helpers import server_settings_for_tests

    workdir = tmp_path_factory.mktemp("score-shards")
    pool_server = build_pool(server_settings_for_tests(), f"sqlite:///{workdir / 'pool.db'}")
    pool_server.start()
    pool_server.set_serving()
    pool_address = f"127.0.0.1:{pool_server.port}"
    rows = [
        ("abc"[i % 3], f"flight {i} from {CITIES[i % 7]} to {CITIES[(i * 3 + 1) % 7]} on day {i % 28}")
        for i in range(TRAIN)
    ]
    import_rows(pool_address, "flights", rows)
    store, checkpoint_id = store_and_id
    scorers = [
        ScorerProcess(workdir, pool_address=pool_address, checkpoint_dir=str(store.root), model_dir=str(tiny_bert_dir))
        for _ in range(3)
    ]
    pool = RunStoreClient(pool_address, timeout=30)
    try:
        for scorer in scorers:
            scorer.wait_serving()
        config = contract.RunConfig(
            dataset="flights",
            seed_size=contract.Amount(count=20),
            batch_size=contract.Amount(count=BATCH),
            stopping=contract.StoppingRule(max_rounds=2),
            random_seed=3,
            strategy="entropy",
        )
        run = pool.get_run(pool.create_run(config.with_defaults()).id)
        with PoolClient(pool_address, timeout=30) as samples:
            train_ids = [s.id for s in samples.list_samples("flights", page_size=5000)]
        seeds = [contract.Acquisition(i, 0, "random", 0.0) for i in train_ids[::12]]
        pool.record_step(run.id, expected_step=run.step, expected_round=run.round, acquisitions=seeds)
        pool.reveal_labels(run.id, train_ids[::12], source="seed")
        unlabelled = sorted(set(train_ids) - set(train_ids[::12]))
        yield dict(pool=pool, run=run, checkpoint=checkpoint_id, scorers=scorers, unlabelled=unlabelled)
    finally:
        for scorer in scorers:
            scorer.stop()
        pool.close()
        pool_server.stop(0)


def _replicas(cluster, which) -> list[Recorded]:
    return [Recorded(ScorerClient(cluster["scorers"][i].address, timeout=120)) for i in which]


def _round(cluster, replicas, shards: int, *, capacity: int = BATCH):
    scorer = ScorerReplicas(replicas, names=[r.client.address for r in replicas], shards=shards)
    try:
        cache = PoolScoreCache(cluster["pool"], scorer)
        return cache.of_round(cluster["run"], 0, cluster["checkpoint"], capacity)
    finally:
        scorer.close()


def _reference(cluster) -> tuple[np.ndarray, np.ndarray]:
    """Every unlabelled sample's entropy by one scorer, one stream: (ids, scores), best first."""
    [one] = _replicas(cluster, [0])
    kept = _round(cluster, [one], 1, capacity=len(cluster["unlabelled"]))
    assert sorted(kept.candidates.tolist()) == cluster["unlabelled"]
    return kept.candidates, kept.scores


def _assert_same_selection(got: np.ndarray, ids: np.ndarray, scores: np.ndarray, k: int) -> None:
    """``got`` (k ids) is the top k of (ids, scores) up to samples within TIE of the k-th score."""
    expected = set(ids[:k].tolist())
    kth = scores[k - 1]
    score_of = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    for sample in expected.symmetric_difference(got.tolist()):
        assert abs(score_of[sample] - kth) < TIE, f"sample {sample} differs from the one-scorer selection"
    assert len(got) == k and len(set(got.tolist())) == k


def test_a_round_sharded_over_three_scorer_processes_scores_each_sample_once(cluster):
    ids, scores = _reference(cluster)
    replicas = _replicas(cluster, [0, 1, 2])
    kept = _round(cluster, replicas, 3)
    # Exactly the unlabelled samples, each scored once, by the replica whose shard it is in.
    scored = collections.Counter(i for r in replicas for s in r.streams for i in s["ids"])
    assert sorted(scored) == cluster["unlabelled"] and set(scored.values()) == {1}
    for index, replica in enumerate(replicas):
        [stream] = replica.streams
        assert stream["completed"] and stream["shard"].index == index and stream["shard"].count == 3
        assert stream["ids"] and all(i % 3 == index for i in stream["ids"])
    assert kept.scored == len(cluster["unlabelled"])
    _assert_same_selection(kept.candidates, ids, scores, BATCH)
    np.testing.assert_allclose(kept.scores, scores[:BATCH], atol=TIE)


def test_a_scorer_process_killed_mid_round_loses_nothing(cluster):
    """Runs last in the module: it kills the second scorer process."""
    ids, scores = _reference(cluster)
    replicas = _replicas(cluster, [0, 1, 2])
    victim = cluster["scorers"][1]

    def kill_after_first_chunk(stream):
        victim.kill()  # SIGKILL while its shard is still streaming

    replicas[1].on_chunk = kill_after_first_chunk
    kept = _round(cluster, replicas, 3)
    assert victim.process.poll() == -signal.SIGKILL
    [dead] = replicas[1].streams
    assert not dead["completed"] and dead["error"] is not None and len(dead["ids"]) < len(cluster["unlabelled"]) / 3
    # Shard 1 was scored again, whole, on the next replica; the completed streams cover every
    # unlabelled sample exactly once.
    retried = [s for s in replicas[2].streams if s["shard"].index == 1]
    assert len(retried) == 1 and retried[0]["completed"]
    completed = collections.Counter(i for r in replicas for s in r.streams if s["completed"] for i in s["ids"])
    assert sorted(completed) == cluster["unlabelled"] and set(completed.values()) == {1}
    assert kept.scored == len(cluster["unlabelled"])
    _assert_same_selection(kept.candidates, ids, scores, BATCH)
