"""An import still storing its rows when the pool server stops (SIGTERM: Server.stop past its grace
period) is rolled back, so the client, told UNAVAILABLE, finds nothing stored; its retry with the
same request id is stored once (issue 25, finding F2: the pool committed every row 4.7 s after
logging ``stopped``, and a retry stored them all twice)."""

from __future__ import annotations

import threading
import time

import pytest

from lesslabels.client import PoolClient
from lesslabels.common import errors
from lesslabels.pool import importers
from lesslabels.pool.main import build_server
from lesslabels.pool.store import PoolStore
from tests.helpers import server_settings_for_tests

ROWS = 4 * importers.CHUNK_ROWS + 3


def _csv() -> bytes:
    return ("text,label\n" + "".join(f"text number {i},{('a', 'b')[i % 2]}\n" for i in range(ROWS))).encode()


def _stored(database_url: str) -> int:
    store = PoolStore(database_url)
    try:
        return sum(store.get_dataset("d").counts.values())
    finally:
        store.close()


def test_an_import_cut_off_by_the_server_stopping_stores_nothing_and_its_retry_stores_once(database_url, monkeypatch):
    storing, finished = threading.Event(), threading.Event()
    real_chunks = importers.chunks
    readings: list[int] = []

    def chunks(take):
        readings.append(1)  # the first reading: the checks of open_import; the second: the rows stored
        for frame in real_chunks(take):
            if len(readings) > 1:
                storing.set()
                time.sleep(0.3)  # rows being stored when the server stops
            yield frame

    real_import = PoolStore.import_samples

    def import_samples(self, *args, **kwargs):
        try:
            return real_import(self, *args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(importers, "chunks", chunks)
    monkeypatch.setattr(PoolStore, "import_samples", import_samples)
    server = build_server(server_settings_for_tests(), database_url)
    server.start()
    server.set_serving()
    seed = PoolClient(f"127.0.0.1:{server.port}", timeout=30)
    seed.create_dataset("d")
    outcome: list[BaseException] = []

    def client_import():
        with PoolClient(f"127.0.0.1:{server.port}", timeout=60) as client:
            try:
                client.import_chunks("d", [_csv()], request_id="import-1")
            except errors.LessLabelsError as exc:
                outcome.append(exc)

    caller = threading.Thread(target=client_import)
    caller.start()
    assert storing.wait(30)
    server.stop(0.2)  # what SIGTERM does, with a grace period the import outlives
    caller.join(30)
    seed.close()
    assert finished.wait(30)  # the handler's thread is done with the database
    assert len(outcome) == 1 and isinstance(outcome[0], errors.Unavailable | errors.Cancelled), outcome
    assert outcome[0].request_id == "import-1"
    assert _stored(database_url) == 0  # told it failed, and nothing was stored

    monkeypatch.setattr(importers, "chunks", real_chunks)
    restarted = build_server(server_settings_for_tests(), database_url)
    restarted.start()
    restarted.set_serving()
    try:
        with PoolClient(f"127.0.0.1:{restarted.port}", timeout=60) as client:
            first = client.import_chunks("d", [_csv()], request_id="import-1")
            again = client.import_chunks("d", [_csv()], request_id="import-1")
    finally:
        restarted.stop(0)
    assert first.imported == again.imported == ROWS and not first.replayed and again.replayed
    assert _stored(database_url) == ROWS


@pytest.mark.parametrize("request_id", ["", "r" * 129])
def test_import_request_ids_are_bounded_and_optional(pool_address, request_id):
    with PoolClient(pool_address, timeout=30) as client:
        if request_id:
            with pytest.raises(errors.InvalidArgument, match="request_id is 129 characters"):
                client.import_chunks("d", [b"text,label\nhello,a\n"], request_id=request_id)
        else:  # the SDK sends a random one: two imports of the same rows are two imports
            client.import_chunks("d", [b"text,label\nhello,a\n"])
            assert client.import_chunks("d", [b"text,label\nhello,a\n"]).duplicate_rows == 1
