"""Shared fixtures: real in-process gRPC servers on port 0 (a pool on SQLite or PostgreSQL, a
coordinator over fake or real services), a tiny random BERT and a checkpoint of it, ATIS paths.

Test modules share fixtures only through this file; plain helpers live in helper modules
(``helpers``, ``stack``, ``scorer_checkpoints``), never in test modules."""

from __future__ import annotations

import logging
import os
import pathlib

import pytest

from tests.helpers import BIG_TRAIN, LABELLED_POOL_TRAIN, ROOT, server_settings_for_tests


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """A service's main() configures the root logger with the test's captured stderr; without this
    the handler outlives the capture and later log lines fail with 'I/O operation on closed file'."""
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


ATIS_DIR = ROOT.parent / "shared" / "data" / "atis"
ATIS_TRAIN = ATIS_DIR / "atis_intents_train.csv"
ATIS_TEST = ATIS_DIR / "atis_intents_test.csv"

# Keep the 2-core machine responsive while tests run torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def atis_train() -> pathlib.Path:
    if not ATIS_TRAIN.exists():
        pytest.skip(f"ATIS data not found at {ATIS_TRAIN}")
    return ATIS_TRAIN


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> pathlib.Path:
    """A randomly initialised 2-layer BERT (hidden 32) with the bundled MiniLM vocabulary, saved to disk."""
    from tests.tiny_model import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL server, or a skip when its binaries or psycopg are missing."""
    from tests.postgres import PostgresCluster, find_bin

    bindir = find_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    cluster = PostgresCluster(bindir)
    yield cluster
    cluster.close()


@pytest.fixture
def database_backend(request) -> str:
    """ "sqlite" unless a test parametrizes it (``helpers.BOTH_DATABASES``, or "postgres"), or
    LESSLABELS_TEST_DATABASE=postgres runs every unparametrized pool test on PostgreSQL."""
    return getattr(request, "param", os.environ.get("LESSLABELS_TEST_DATABASE", "sqlite"))


@pytest.fixture
def database_url(request, database_backend, tmp_path) -> str:
    """The pool database of a test: SQLite in a temporary folder, or a fresh PostgreSQL database
    (skipped when PostgreSQL is not installed)."""
    if database_backend == "postgres":
        return request.getfixturevalue("postgres_cluster").new_database()
    return f"sqlite:///{tmp_path / 'pool.db'}"


@pytest.fixture
def pool_server(database_url):
    """A started in-process pool server on ``database_url`` (a temporary SQLite by default)."""
    from lesslabels.pool.main import build_server

    server = build_server(server_settings_for_tests(), database_url)
    server.start()
    server.set_serving()
    yield server
    server.stop(0)


@pytest.fixture
def pool_address(pool_server) -> str:
    return f"127.0.0.1:{pool_server.port}"


@pytest.fixture
def stub(pool_address):
    """The stubs of the test's pool (PoolService and RunStore, ``tests.helpers.PoolProcessStub``)."""
    from tests.helpers import pool_stub

    return pool_stub(pool_address)


@pytest.fixture
def big(fake_stack):
    """The fake stack with a dataset "big" of 300 training texts (and 12 test texts)."""
    from tests.stack import load_toy_dataset

    load_toy_dataset(fake_stack.pool_address, "big", train=BIG_TRAIN, test=12)
    return fake_stack


@pytest.fixture
def labelled_pool(pool_address, stub):
    """A PoolClient on a dataset "d" of 300 train and 20 test texts, the first 40 train texts labelled
    (dataset scope); ``train_ids`` holds the train texts' ids in order."""
    from lesslabels.client import PoolClient
    from tests.helpers import import_rows, submit_labels

    import_rows(pool_address, "d", [("a" if i % 3 else "b", f"train text {i}") for i in range(LABELLED_POOL_TRAIN)])
    import_rows(pool_address, "d", [("a", f"test text {i}") for i in range(20)], split="test")
    client = PoolClient(pool_address, timeout=30)
    train = [s.id for s in client.list_samples("d", split="train")]
    submit_labels(stub, [(i, "a") for i in train[:40]])
    client.train_ids = train  # type: ignore[attr-defined]
    yield client
    client.close()


@pytest.fixture
def fake_stack(pool_address):
    """The real pool with a fake trainer and scorer (``tests.stack``), the toy dataset loaded."""
    from tests.stack import FakeScorer, FakeStack, FakeTrainer, load_toy_dataset

    load_toy_dataset(pool_address)
    stack = FakeStack(pool_address, FakeTrainer(), FakeScorer(pool_address))
    yield stack
    stack.close()


@pytest.fixture
def real_stack(tmp_path, tiny_bert_dir):
    """Pool, trainer, scorer and coordinator servers in-process (``tests.stack.start_real_stack``);
    runs and Score may name the tiny BERT by its path (its folder is a model folder of both)."""
    from tests.stack import start_real_stack

    stack, stop = start_real_stack(tmp_path, model_dirs=(str(tiny_bert_dir),))
    yield stack
    stop()


@pytest.fixture
def few_torch_threads():
    """One torch thread while the test runs (the machine's cores are shared)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def store_and_id(tmp_path_factory, tiny_bert_dir):
    """A checkpoint store holding the tiny BERT with a random head (``scorer_checkpoints``), and its id."""
    from lesslabels.common.checkpoints import CheckpointStore
    from tests.scorer_checkpoints import publish_tiny_checkpoint

    store = CheckpointStore(tmp_path_factory.mktemp("checkpoints"))
    return store, publish_tiny_checkpoint(store, tiny_bert_dir)
