"""The client SDK (lesslabels.client) against real in-process servers on port 0: plain results,
deadlines, the token, and one error hierarchy for every failure."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from lesslabels.client import (
    AlreadyExists,
    CoordinatorClient,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PoolClient,
    ScorerClient,
    StoppingRule,
    Amount,
    Unauthenticated,
    Unavailable,
    RunConfig,
)
from lesslabels.client.pool import rows_to_jsonl
from lesslabels.common import uncertainty
from tests.helpers import server_settings_for_tests
from tests.stack import wait_for

ROWS = [
    ("show me flights to denver", "flight"),
    ("what is the fare to boston", "airfare"),
    ("cheapest fare, please", "airfare"),
    ("is there a limo in dallas", "ground_service"),
    ("flights from boston", "flight"),
    ("what does ap57 mean", None),
]


@pytest.fixture
def pool(pool_address):
    with PoolClient(pool_address, timeout=10) as client:
        yield client


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


# ---------------------------------------------------------------- pool


def test_import_rows_and_records_then_read_them_back(pool):
    summary = pool.import_samples("flights", ROWS)
    assert summary.dataset == "flights" and summary.imported == 6 and summary.format == "jsonl"
    assert summary.by_label == {"flight": 2, "airfare": 2, "ground_service": 1, "": 1} or summary.by_label == {
        "flight": 2,
        "airfare": 2,
        "ground_service": 1,
    }
    records = [{"text": "fare to dallas", "label": "airfare", "split": "test"}, {"text": "a flight", "label": "flight"}]
    assert pool.import_samples("flights", iter(records), split="dev").imported == 2
    dataset = pool.get_dataset("flights")
    assert (dataset.train_count, dataset.test_count, dataset.dev_count) == (6, 1, 1)
    assert set(dataset.labels) == {"flight", "airfare", "ground_service"}
    assert [d.name for d in pool.list_datasets()] == ["flights"]
    samples = pool.list_samples("flights", split="train")
    assert [s.text for s in samples] == [text for text, _ in ROWS] and samples[0].split == "train"
    dev = pool.list_samples("flights", split="dev", include_gold=True)
    assert [(s.text, s.gold_label) for s in dev] == [("a flight", "flight")]


def test_rows_stream_in_bounded_chunks_without_splitting_a_row():
    rows = [(f'text number {i} with a comma, and "quotes"\nand a newline', "x") for i in range(300)]
    chunks = list(rows_to_jsonl(rows, chunk_bytes=1000))
    assert len(chunks) > 5 and all(len(c) < 1000 + 200 for c in chunks)
    decoded = [json.loads(line) for c in chunks for line in c.decode().splitlines()]
    assert decoded == [{"text": t, "label": "x"} for t, _ in rows]


def test_bad_rows_are_invalid_argument_naming_the_row(pool):
    with pytest.raises(InvalidArgument, match="row 2: expected"):
        pool.import_samples("flights", [("ok", "a"), ("only one field",)])
    with pytest.raises(InvalidArgument, match="row 1: a record needs a 'text' field"):
        pool.import_samples("flights", [{"label": "a"}])
    with pytest.raises(InvalidArgument, match="row 1: text must be a string"):
        pool.import_samples("flights", [(3, "a")])
    with pytest.raises(InvalidArgument, match="unknown split 'validation'"):
        pool.import_samples("flights", ROWS, split="validation")
    # Rejected by the pool: the server's message names the row, and nothing was stored.
    with pytest.raises(InvalidArgument, match="row 2") as info:
        pool.import_samples("flights", [{"text": "ok"}, {"text": "x", "split": "holdout"}])
    assert info.value.details and info.value.service == "pool"
    with pytest.raises(NotFound):
        pool.get_dataset("flights")


def test_import_file_and_export_labels(pool, tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("flight,show me flights\nairfare,fare to denver\n")
    summary = pool.import_file(path, "f")
    assert summary.imported == 2 and summary.format == "csv" and summary.by_label == {"flight": 1, "airfare": 1}
    # Imported labels are the hidden gold labels (the simulated oracle): nothing is labelled yet.
    assert pool.export_labels("f") == b"label,text,sample_id,annotator,labelled_at,label_source\n"
    first = pool.list_samples("f")[0]
    pool.submit_labels("f", {first.id: "airfare"})
    header, row = pool.export_labels("f").decode().splitlines()
    assert header == "label,text,sample_id,annotator,labelled_at,label_source" and row.startswith(
        f"airfare,show me flights,{first.id},,"
    )
    with pytest.raises(InvalidArgument, match="no such file"):
        pool.import_file(tmp_path / "missing.csv", "f")
    with pytest.raises(InvalidArgument, match="unknown import format 'xml'"):
        pool.import_file(path, "f", format="xml")


def test_datasets_counts_and_labels(pool):
    created = pool.create_dataset("d", labels=["a", "b"], description="two labels")
    assert created.name == "d" and created.labels == ("a", "b") and created.description == "two labels"
    with pytest.raises(AlreadyExists):
        pool.create_dataset("d")
    pool.import_samples("d", [("one", None), ("two", None), ("three", "a")])
    ids = [s.id for s in pool.list_samples("d", state="unlabelled")]
    assert len(ids) == 3  # imported labels are hidden gold labels, not labels in scope
    result = pool.submit_labels("d", {ids[0]: "a", ids[1]: "b"}, annotator="ann", idempotency_key="k1")
    assert result.recorded == 2
    assert pool.submit_labels("d", [(ids[0], "a"), (ids[1], "b")], idempotency_key="k1").recorded == 0
    assert [s.id for s in pool.list_samples("d", state="labelled")] == ids[:2]
    counts = pool.get_counts("d")
    assert counts.train.total == 3 and counts.train.labelled == 2
    assert counts.train.labelled_by_label == {"a": 1, "b": 1} and counts.train.gold_by_label == {"": 2, "a": 1}
    with pytest.raises(InvalidArgument, match="labels\\[0\\]: expected"):
        pool.submit_labels("d", [("7", "a")])
    with pytest.raises(InvalidArgument, match="page_size must be in 1..5000"):
        pool.list_samples("d", page_size=0)
    with pytest.raises(NotFound, match="counts of dataset 'nope'"):
        pool.get_counts("nope")


def test_set_a_label_set_and_delete_a_dataset(pool):
    pool.import_samples("d", [("one", "a"), ("two", "b"), ("three", None)])
    changed = pool.set_dataset_labels("d", ["a", "b", "c"])
    assert changed.labels == ("a", "b", "c") and pool.get_dataset("d").labels == ("a", "b", "c")
    with pytest.raises(InvalidArgument, match="near-duplicate"):
        pool.set_dataset_labels("d", ["a", "b", "A"])
    pool.import_samples("other", [("kept", "a")])
    assert pool.delete_dataset("d") == 3
    with pytest.raises(NotFound, match="dataset 'd'"):
        pool.get_dataset("d")
    with pytest.raises(NotFound, match="delete dataset 'd'"):
        pool.delete_dataset("d")
    assert [d.name for d in pool.list_datasets()] == ["other"]  # never another dataset's rows


def test_sample_pages_resume_from_a_token(pool):
    pool.import_samples("p", [(f"text {i}", "a") for i in range(7)])
    pages = list(pool.sample_pages("p", page_size=3))
    assert [len(p.samples) for p in pages] == [3, 3, 1] and pages[0].total == 7
    rest = list(pool.sample_pages("p", page_size=3, page_token=pages[0].next_page_token))
    assert [s.id for p in rest for s in p.samples] == [s.id for p in pages[1:] for s in p.samples]


def test_client_arguments_are_checked():
    with pytest.raises(InvalidArgument, match="address") as info:
        PoolClient("")
    assert info.value.status is None  # refused before any call
    with pytest.raises(InvalidArgument, match="timeout must be a positive number"):
        PoolClient("127.0.0.1:1", timeout=0)


def test_the_public_pool_client_has_no_run_state_methods():
    """A run's state is the coordinator's: the public SDK neither writes nor reads it on the pool
    (users go through ``CoordinatorClient``), and ``call`` cannot reach the run store's methods."""
    run_methods = {"create_run", "get_run", "list_runs", "update_run", "record_step", "put_round"}
    run_methods |= {"list_rounds", "add_acquisitions", "list_acquisitions", "reveal_labels"}
    assert not run_methods & set(dir(PoolClient))
    with PoolClient("127.0.0.1:1") as pool:
        for method in ("CreateRun", "RecordStep", "GetRun"):
            with pytest.raises(InvalidArgument, match=f"no method '{method}'"):
                pool.call(method, None)


def test_an_unreachable_service_is_unavailable_with_its_address():
    address = _free_address()
    with PoolClient(address, timeout=1.0) as pool:
        with pytest.raises(Unavailable) as info:
            pool.list_datasets(timeout=1.0)
    assert address in str(info.value) and info.value.address == address


def test_the_token_is_sent_and_a_wrong_one_is_unauthenticated(database_url):
    from lesslabels.pool.main import build_server

    server = build_server(server_settings_for_tests(token="s3cret"), database_url)
    server.start()
    server.set_serving()
    try:
        address = f"127.0.0.1:{server.port}"
        with PoolClient(address, token="s3cret", timeout=10) as pool:
            assert pool.list_datasets() == []
        with PoolClient(address, token="wrong", timeout=10) as pool:
            with pytest.raises(Unauthenticated):
                pool.list_datasets()
        with PoolClient(address, timeout=10) as pool:
            with pytest.raises(Unauthenticated) as info:
                pool.list_datasets()
        assert info.value.status.name == "UNAUTHENTICATED" and info.value.service == "pool"
    finally:
        server.stop(0)


# ---------------------------------------------------------------- coordinator


@pytest.fixture
def coordinator(fake_stack):
    from lesslabels.common.server import Server
    from lesslabels.coordinator.servicer import CoordinatorServicer, registration

    core = fake_stack.coordinator()
    server = Server(server_settings_for_tests(), [registration(CoordinatorServicer(core))], name="coordinator")
    port = server.start()
    server.set_serving()
    with CoordinatorClient(f"127.0.0.1:{port}", timeout=10) as client:
        yield client
    server.stop(0)


def _small(**overrides) -> RunConfig:
    base = dict(
        dataset="toy",
        random_seed=1,
        seed_size=Amount(count=8),
        batch_size=Amount(count=6),
        stopping=StoppingRule(max_rounds=2),
    )
    base.update(overrides)
    return RunConfig(**base)


def test_start_watch_and_read_a_run(coordinator, fake_stack):
    fake_stack.trainer.hold.clear()  # keep round 0 training until the watch is open
    run = coordinator.start_run(_small(), request_id="r-1")
    assert run.state == "PENDING" and run.config.strategy == "entropy" and run.pool_size == 40
    assert coordinator.start_run(_small(), request_id="r-1").id == run.id
    events = coordinator.watch(run.id)
    first = next(events)
    assert first.run.id == run.id and first.run.state != "COMPLETED"
    fake_stack.trainer.hold.set()
    rest = list(events)
    assert rest[-1].run.state == "COMPLETED"
    assert {e.round.index for e in [first, *rest] if e.round is not None} == {0, 1}
    detail = coordinator.get_run(run.id)
    assert detail.run.state == "COMPLETED" and [r.index for r in detail.rounds] == [0, 1]
    expected = fake_stack.scorer.expected_test_accuracy("toy")
    assert 0 < expected < 1 and [r.test.accuracy for r in detail.rounds] == [expected, expected]
    assert [r.test.count for r in detail.rounds] == [12, 12]
    assert [r.id for r in coordinator.list_runs(dataset="toy", states=["COMPLETED"])] == [run.id]
    assert coordinator.list_runs(states=["FAILED"]) == []
    with pytest.raises(FailedPrecondition, match="completed"):
        coordinator.resume(run.id)


def test_watch_reopens_streams_past_their_deadline_until_the_run_ends(coordinator, fake_stack):
    import threading

    fake_stack.trainer.hold.clear()  # training waits: each 0.3 s stream ends on its deadline
    run = coordinator.start_run(_small())
    threading.Timer(1.5, fake_stack.trainer.hold.set).start()
    with pytest.raises(DeadlineExceeded):
        list(coordinator.watch_stream(run.id, timeout=0.3))
    opened = []
    watch_stream = coordinator.watch_stream

    def counting(run_id, **kwargs):
        opened.append(run_id)
        return watch_stream(run_id, **kwargs)

    coordinator.watch_stream = counting
    events = list(coordinator.watch(run.id, window=0.3))
    assert events[-1].run.state == "COMPLETED"
    assert len(opened) >= 2  # the first streams ended on their deadline while training waited


def test_start_run_from_keywords_and_bad_configs(coordinator):
    run = coordinator.start_run(dataset="toy", strategy="margin", stopping=StoppingRule(max_rounds=1))
    assert run.config.strategy == "margin"
    with pytest.raises(InvalidArgument, match="unknown strategy 'best-guess'"):
        coordinator.start_run(dataset="toy", strategy="best-guess")
    assert (
        coordinator.start_run(
            dataset="toy", strategy="least-confidence", stopping=StoppingRule(max_rounds=1)
        ).config.strategy
        == "least_confidence"
    )
    with pytest.raises(InvalidArgument, match="hyperparameters: .*learning_speed"):
        coordinator.start_run(dataset="toy", hyperparameters={"learning_speed": 1})
    with pytest.raises(InvalidArgument, match="run config: .*colour"):
        coordinator.start_run(dataset="toy", colour="blue")
    with pytest.raises(NotFound):
        coordinator.start_run(dataset="no-such-dataset")
    with pytest.raises(NotFound):
        coordinator.get_run(999)
    with pytest.raises(InvalidArgument, match="unknown run state 'DONE'"):
        coordinator.list_runs(states=["DONE"])


def test_cancel_and_resume(coordinator, fake_stack):
    fake_stack.trainer.hold.clear()
    run = coordinator.start_run(_small())
    wait_for(fake_stack.trainer.started.is_set, what="training to start")
    cancelled = coordinator.cancel(run.id)
    assert cancelled.state == "CANCELLED" and cancelled.stop_reason == "cancelled by a user"
    fake_stack.trainer.hold.set()
    resumed = coordinator.resume(run.id)
    assert resumed.state in ("PENDING", "RUNNING")
    last = list(coordinator.watch(run.id))[-1]
    assert last.run.state == "COMPLETED"


def test_human_labelling(coordinator):
    run = coordinator.start_run(_small(oracle="human", asynchronous=False))
    events = list(coordinator.watch(run.id, until_waiting=True))
    assert events[-1].run.state == "WAITING_FOR_LABELS"
    pending = coordinator.pending_labels(run.id)
    assert pending.round == 0 and len(pending.samples) == 8 and pending.remaining == 8
    assert all(s.text and not s.label for s in pending.samples)
    first = {s.sample_id: "flight" for s in pending.samples[:5]}
    submitted = coordinator.submit_labels(run.id, first, idempotency_key="a")
    assert submitted.remaining == 3 and submitted.result.recorded == 5
    assert coordinator.submit_labels(run.id, first, idempotency_key="a").result.recorded == 0
    with pytest.raises(InvalidArgument, match="not in the pending batch"):
        coordinator.submit_labels(run.id, [(99999, "flight")])
    rest = [(s.sample_id, "airfare") for s in pending.samples[5:]]
    assert coordinator.submit_labels(run.id, rest).remaining == 0
    wait_for(lambda: coordinator.pending_labels(run.id).round == 1, what="the next batch")


# ---------------------------------------------------------------- scorer

SCORER_LABELS = ("flight", "airfare", "ground_service")


@pytest.fixture(scope="module")
def scorer_address(tmp_path_factory, tiny_bert_dir):
    import torch

    from lesslabels.common.checkpoints import CheckpointStore
    from lesslabels.scorer.main import build_server
    from tests.tiny_model import publish_tiny_classifier

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("sdk-checkpoints")
    checkpoint = publish_tiny_classifier(CheckpointStore(folder), tiny_bert_dir, run_id=3, labels=SCORER_LABELS)
    server = build_server(server_settings_for_tests(), str(folder))
    server.start()
    server.set_serving()
    yield f"127.0.0.1:{server.port}", checkpoint
    server.stop(0)
    torch.set_num_threads(threads)


TEXTS = ["show me flights from boston to denver", "what is the cheapest fare", "limo in dallas", "ap57"]


def test_score_texts_by_checkpoint_and_by_run(scorer_address):
    address, checkpoint = scorer_address
    with ScorerClient(address, timeout=30) as scorer:
        scores = scorer.score(TEXTS, checkpoint=checkpoint)
        by_run = scorer.score(TEXTS, run=3, embeddings=True)
    assert scores.checkpoint_id == checkpoint and by_run.checkpoint_id == checkpoint
    assert scores.labels == SCORER_LABELS and len(scores) == 4
    assert isinstance(scores.probabilities, np.ndarray) and scores.probabilities.shape == (4, 3)
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert scores.predicted == tuple(SCORER_LABELS[i] for i in scores.probabilities.argmax(axis=1))
    probs = scores.probabilities.astype(np.float64)
    np.testing.assert_allclose(scores.uncertainty.entropy, uncertainty.entropy(probs), atol=1e-4)
    np.testing.assert_allclose(scores.uncertainty.least_confidence, 1 - probs.max(axis=1), atol=1e-5)
    assert scores.truncated.dtype == bool and not scores.truncated.any()
    np.testing.assert_allclose(by_run.probabilities, scores.probabilities, atol=1e-5)
    assert by_run.embeddings is not None and by_run.embeddings.shape[0] == 4 and scores.embeddings is None


def test_scorer_errors(scorer_address):
    address, _ = scorer_address
    with ScorerClient(address, timeout=30) as scorer:
        with pytest.raises(NotFound):
            scorer.score(["x"], checkpoint="no-such-checkpoint")
        with pytest.raises(NotFound):
            scorer.score(["x"], run=12345)
        with pytest.raises(InvalidArgument, match="not one string"):
            scorer.score("show me flights", run=3)
        with pytest.raises(
            InvalidArgument, match="exactly one of checkpoint=, run=, base_model= or fast_head= \\(got none\\)"
        ):
            scorer.score(["x"])
        with pytest.raises(InvalidArgument, match="got checkpoint, run"):
            scorer.score(["x"], checkpoint="a", run=3)
        with pytest.raises(InvalidArgument, match="texts\\[1\\] must be a string"):
            scorer.score(["x", None], run=3)
        with pytest.raises(InvalidArgument, match="give run= too"):
            scorer.score(["x"], checkpoint="a", best=True)
        with pytest.raises(InvalidArgument, match="unknown split 'holdout'"):
            scorer.score_pool("toy", run=3, split="holdout")


def test_the_sdk_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys, lesslabels.client;"
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_tls_with_a_root_certificate_carries_the_token(tmp_path):
    """root_certificates= makes a TLS channel; the token then travels as call credentials."""
    import shutil
    import subprocess
    from concurrent import futures

    import grpc

    from lesslabels.v1 import pool_pb2, pool_pb2_grpc

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    seen = []

    class Pool(pool_pb2_grpc.PoolServiceServicer):
        def ListDatasets(self, request, context):
            seen.append(dict(context.invocation_metadata()).get("authorization"))
            return pool_pb2.ListDatasetsResponse(datasets=[pool_pb2.Dataset(name="secure")])

    server = grpc.server(futures.ThreadPoolExecutor(2))
    pool_pb2_grpc.add_PoolServiceServicer_to_server(Pool(), server)
    port = server.add_secure_port("localhost:0", grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())]))
    server.start()
    try:
        with PoolClient(f"localhost:{port}", token="s3cret", root_certificates=cert.read_bytes(), timeout=10) as pool:
            assert [d.name for d in pool.list_datasets()] == ["secure"]
        assert seen == ["Bearer s3cret"]
        with PoolClient(f"localhost:{port}", timeout=3) as plaintext:  # no TLS: the handshake fails
            with pytest.raises(Unavailable):
                plaintext.list_datasets()
    finally:
        server.stop(0)
