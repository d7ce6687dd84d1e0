"""Shared fixtures: real in-process gRPC servers on port 0, a tiny random BERT, ATIS paths."""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Any

import pytest

from lesslabels.common.config import ServerSettings


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """A service's main() configures the root logger with the test's captured stderr; without this
    the handler outlives the capture and later log lines fail with 'I/O operation on closed file'."""
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)

ROOT = pathlib.Path(__file__).resolve().parent.parent
ATIS_DIR = ROOT.parent / "shared" / "data" / "atis"
ATIS_TRAIN = ATIS_DIR / "atis_intents_train.csv"
ATIS_TEST = ATIS_DIR / "atis_intents_test.csv"

# Keep the 2-core machine responsive while tests run torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def server_settings_for_tests(**overrides) -> ServerSettings:
    base: dict[str, Any] = dict(host="127.0.0.1", port=0, grace_seconds=1.0, workers=8)
    base.update(overrides)
    return ServerSettings(**base)


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
def database_url(tmp_path) -> str:
    """The pool database of a test: SQLite in a temporary folder."""
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
