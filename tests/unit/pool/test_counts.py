"""Counts kept, not recounted: the pool keeps its sample and label counts in
sample_counts and label_counts, written in the transactions that change what they count. Each test
compares the kept counts, and what GetCounts / GetRun / GetDataset / ListSamples report, with a
recount of the rows themselves, on SQLite and PostgreSQL."""

from __future__ import annotations

import collections
import re
import threading

import grpc
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from lesslabels.contract import wire
from lesslabels.v1 import common_pb2, pool_pb2, run_pb2, run_store_pb2
from tests.unit.pool.seeding import acquire
from tests.helpers import BOTH_DATABASES, import_bytes, import_rows, pool_stub, submit_labels

TRAIN = [("greet", "hello there"), ("bye", "see you"), ("greet", "hi"), ("bye", "farewell"), ("greet", "good morning")]
SPLIT_NAMES = wire.SPLIT_TO_PROTO


def _recount(url: str) -> tuple[dict, dict]:
    """(samples per (dataset, split, gold label or ""), labels in force per (dataset, scope, split,
    label)), counted over the rows themselves."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            samples: collections.Counter = collections.Counter()
            for dataset_id, split, gold, n in conn.execute(
                text(
                    "SELECT dataset_id, split, gold_label, COUNT(*) FROM samples GROUP BY dataset_id, split, gold_label"
                )
            ):
                samples[dataset_id, split, gold or ""] += n
            labels = {
                (dataset_id, scope, split, label): n
                for dataset_id, scope, split, label, n in conn.execute(
                    text(
                        "SELECT s.dataset_id, c.scope, s.split, c.label, COUNT(*) FROM current_labels c "
                        "JOIN samples s ON s.id = c.sample_id GROUP BY s.dataset_id, c.scope, s.split, c.label"
                    )
                )
            }
    finally:
        engine.dispose()
    return dict(samples), labels


def _kept(url: str) -> tuple[dict, dict]:
    """The kept counts, in the shape of ``_recount`` (rows counting zero left out)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            samples = {
                (d, split, gold): n
                for d, split, gold, n in conn.execute(
                    text("SELECT dataset_id, split, gold_label, count FROM sample_counts WHERE count <> 0")
                )
            }
            labels = {
                (d, scope, split, label): n
                for d, scope, split, label, n in conn.execute(
                    text("SELECT dataset_id, scope, split, label, count FROM label_counts WHERE count <> 0")
                )
            }
    finally:
        engine.dispose()
    return samples, labels


def _assert_kept_counts_are_a_recount(url: str) -> tuple[dict, dict]:
    recounted = _recount(url)
    assert _kept(url) == recounted
    return recounted


def _assert_reported_counts_agree(stub, url: str, dataset: str, run_ids=()) -> None:
    """GetCounts (per scope), GetDataset, GetRun and ListSamples totals equal the recount."""
    samples, labels = _recount(url)
    info = stub.GetDataset(pool_pb2.GetDatasetRequest(name=dataset), timeout=5)
    dataset_id = _dataset_id(url, dataset)
    per_split = collections.Counter()
    for (d, split, _), n in samples.items():
        if d == dataset_id:
            per_split[split] += n
    assert (info.train_count, info.test_count, info.dev_count) == (
        per_split["train"],
        per_split["test"],
        per_split["dev"],
    )
    for run_id in (0, *run_ids):
        scope = f"run:{run_id}" if run_id else "dataset"
        counts = stub.GetCounts(pool_pb2.GetCountsRequest(dataset=dataset, run_id=run_id), timeout=5)
        for split in SPLIT_NAMES:
            got = getattr(counts, split)
            gold = {g: n for (d, s, g), n in samples.items() if d == dataset_id and s == split}
            given = {label: n for (d, sc, s, label), n in labels.items() if (d, sc, s) == (dataset_id, scope, split)}
            assert (got.total, dict(got.gold_by_label)) == (sum(gold.values()), gold), (run_id, split)
            assert (got.labelled, dict(got.labelled_by_label)) == (sum(given.values()), given), (run_id, split)
            for state, expected in (
                (pool_pb2.LABEL_STATE_ANY, sum(gold.values())),
                (pool_pb2.LABEL_STATE_LABELLED, sum(given.values())),
                (pool_pb2.LABEL_STATE_UNLABELLED, sum(gold.values()) - sum(given.values())),
            ):
                request = pool_pb2.ListSamplesRequest(
                    dataset=dataset, run_id=run_id, split=SPLIT_NAMES[split], state=state, page_size=2
                )
                first = next(iter(stub.ListSamples(request, timeout=10)), None)
                assert (first.total if first else 0) == expected, (run_id, split, state)
        if run_id:
            run = stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)
            in_run = sum(n for (d, sc, _, _), n in labels.items() if (d, sc) == (dataset_id, scope))
            assert (run.labelled_count, run.pool_size) == (in_run, per_split["train"])
    dataset_scope = sum(n for (d, sc, _, _), n in labels.items() if (d, sc) == (dataset_id, "dataset"))
    assert info.labelled_count == dataset_scope


def _dataset_id(url: str, name: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT id FROM datasets WHERE name = :n"), {"n": name}).scalar_one()
    finally:
        engine.dispose()


def _ids(stub, dataset="d", split=common_pb2.SPLIT_TRAIN) -> list[int]:
    pages = stub.ListSamples(pool_pb2.ListSamplesRequest(dataset=dataset, split=split), timeout=10)
    return [s.id for page in pages for s in page.samples]


def _run(stub, dataset="d", oracle=run_pb2.ORACLE_MODE_SIMULATED) -> run_pb2.Run:
    config = run_pb2.RunConfig(
        dataset=dataset, strategy=run_pb2.STRATEGY_ENTROPY, seed_size=run_pb2.Amount(count=2), oracle=oracle
    )
    return stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=5)


def _acquire(stub, run_id: int, round_: int, sample_ids) -> None:
    acquire(
        stub, run_id, round_, [run_pb2.Acquisition(sample_id=i, strategy=run_pb2.STRATEGY_RANDOM) for i in sample_ids]
    )


@BOTH_DATABASES
def test_counts_agree_with_a_recount_after_imports_labels_and_relabels(pool_address, stub, database_url):
    import_rows(pool_address, "d", TRAIN)
    import_rows(pool_address, "d", [("greet", "test hello"), ("bye", "test bye")], split="test")
    import_bytes(pool_address, "d", b"text\nan unlabelled text\nanother one\n", create=False)
    import_rows(pool_address, "other", [("x", "other text")])
    _assert_kept_counts_are_a_recount(database_url)
    _assert_reported_counts_agree(stub, database_url, "d")

    train = _ids(stub)
    test = _ids(stub, split=common_pb2.SPLIT_TEST)
    # Dataset scope: labels, a relabel, a repeat (unchanged), a test-split label.
    submit_labels(stub, [(train[0], "greet"), (train[1], "bye"), (test[0], "greet")])
    submit_labels(stub, [(train[0], "bye"), (train[1], "bye")])
    # A simulated run: the oracle reveals gold labels in the run's scope only.
    simulated = _run(stub)
    _acquire(stub, simulated.id, 0, train[:3])
    stub.RevealLabels(run_store_pb2.RevealLabelsRequest(run_id=simulated.id, sample_ids=train[:3]), timeout=5)
    # A human-mode run: acquiring reuses the dataset's human labels; a person's label in the run
    # counts in both scopes, and relabelling it moves both.
    human = _run(stub, oracle=run_pb2.ORACLE_MODE_HUMAN)
    _acquire(stub, human.id, 0, train[:4])
    submit_labels(stub, [(train[2], "greet"), (train[3], "bye")], run_id=human.id)
    submit_labels(stub, [(train[3], "greet")], run_id=human.id, key="relabel")
    samples, labels = _assert_kept_counts_are_a_recount(database_url)
    d = _dataset_id(database_url, "d")
    assert labels[d, f"run:{human.id}", "train", "greet"] == 2 and labels[d, "dataset", "train", "bye"] == 2
    _assert_reported_counts_agree(stub, database_url, "d", [simulated.id, human.id])
    _assert_reported_counts_agree(stub, database_url, "other")

    # Deleting a dataset takes its counts with it and leaves the other's.
    stub.UpdateRun(run_store_pb2.UpdateRunRequest(run_id=simulated.id, state=run_pb2.RUN_STATE_CANCELLED), timeout=5)
    stub.UpdateRun(run_store_pb2.UpdateRunRequest(run_id=human.id, state=run_pb2.RUN_STATE_CANCELLED), timeout=5)
    stub.DeleteDataset(pool_pb2.DeleteDatasetRequest(dataset="d"), timeout=5)
    samples, labels = _assert_kept_counts_are_a_recount(database_url)
    assert {key[0] for key in samples} == {_dataset_id(database_url, "other")} and labels == {}
    import_rows(pool_address, "d", TRAIN[:2])
    _assert_reported_counts_agree(stub, database_url, "d")


@BOTH_DATABASES
def test_a_refused_or_check_only_import_leaves_the_counts_as_they_were(pool_address, stub, database_url):
    import_rows(pool_address, "d", [("book_flight", "fly me"), ("greet", "hello")])
    before = _assert_kept_counts_are_a_recount(database_url)
    # Refused after its rows were inserted (the similar-labels check needs them all).
    with pytest.raises(grpc.RpcError) as refused:
        import_bytes(pool_address, "d", b"book_flights,fly me to rome\ngreet,hi\n", create=False)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError):
        import_bytes(pool_address, "d", b"id,text,label\n1,a,greet\n1,b,greet\n", create=False)
    checked = import_bytes(pool_address, "d", b"greet,would be stored\n", create=False, check_only=True)
    assert checked.imported == 1
    assert _assert_kept_counts_are_a_recount(database_url) == before
    _assert_reported_counts_agree(stub, database_url, "d")


@BOTH_DATABASES
def test_concurrent_label_submissions_keep_exact_counts(pool_address, stub, database_url):
    import_rows(pool_address, "d", [("greet" if i % 2 else "bye", f"text {i}") for i in range(24)])
    ids = _ids(stub)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        # Overlapping samples, alternating labels: first labels, relabels and repeats race.
        label = "greet" if n % 2 else "bye"
        mine = ids[n % 3 :: 2]
        try:
            submit_labels(pool_stub(pool_address), [(i, label) for i in mine], key=f"k{n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    _, labels = _assert_kept_counts_are_a_recount(database_url)
    assert sum(labels.values()) == len(ids)
    _assert_reported_counts_agree(stub, database_url, "d")


@BOTH_DATABASES
def test_reading_counts_does_not_scan_the_samples(pool_address, stub):
    """GetCounts, GetRun, GetDataset, ListDatasets and ListRuns read the kept counts: no statement
    touches the samples or current labels, none counts rows; a ListSamples page counts nothing."""
    import_rows(pool_address, "d", TRAIN)
    ids = _ids(stub)
    run = _run(stub)
    _acquire(stub, run.id, 0, ids[:2])
    stub.RevealLabels(run_store_pb2.RevealLabelsRequest(run_id=run.id, sample_ids=ids[:2]), timeout=5)
    submit_labels(stub, [(ids[0], "greet")])
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        counts = stub.GetCounts(pool_pb2.GetCountsRequest(dataset="d", run_id=run.id), timeout=5)
        got = stub.GetRun(run_pb2.GetRunRequest(run_id=run.id), timeout=5)
        info = stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5)
        stub.ListDatasets(pool_pb2.ListDatasetsRequest(), timeout=5)
        stub.ListRuns(run_pb2.ListRunsRequest(dataset="d"), timeout=5)
        reads = list(statements)
        page = next(iter(stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="d", page_size=2), timeout=5)))
        listing = statements[len(reads) :]
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert (counts.train.total, counts.train.labelled, got.labelled_count, got.pool_size) == (5, 2, 2, 5)
    assert (info.train_count, info.labelled_count, page.total) == (5, 1, 5)
    assert reads, "the statement hook saw nothing: the check would pass vacuously"
    scans = [s for s in reads if re.search(r"\b(samples|current_labels)\b", s) or "count(" in s.lower()]
    assert scans == []
    assert [s for s in listing if "count(" in s.lower()] == []


@BOTH_DATABASES
def test_upgrading_a_database_stored_before_kept_counts_fills_them(database_url):
    """Migration 0007 fills the kept counts from the rows already stored: an upgraded pool reports
    what it reported before, and keeps counting from there."""
    import datetime as dt

    from lesslabels.pool.db import migrate
    from lesslabels.pool.store import PoolStore

    migrate(database_url, "0006")
    at = dt.datetime(2026, 11, 23, 20, 0, tzinfo=dt.UTC)
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for dataset_id, name in ((1, "old"), (2, "other")):
            conn.execute(
                text(
                    "INSERT INTO datasets (id, name, description, labels_json, labels_fixed, created_at) "
                    "VALUES (:id, :name, '', '[\"greet\", \"bye\"]', :fixed, :at)"
                ),
                {"id": dataset_id, "name": name, "fixed": False, "at": at},
            )
        conn.execute(
            text(
                "INSERT INTO runs (id, dataset_id, config_json, state, step, round, error, stop_reason, "
                "created_at, updated_at) VALUES (7, 1, '{\"dataset\": \"old\"}', 'RUNNING', 'TRAIN', 1, '', '', :at, :at)"
            ),
            {"at": at},
        )
        rows = [
            (1, 1, "train", "greet"),
            (2, 1, "train", "bye"),
            (3, 1, "train", "greet"),
            (4, 1, "train", None),
            (5, 1, "test", "bye"),
            (6, 1, "dev", "greet"),
            (7, 2, "train", "greet"),
        ]
        for sid, dataset_id, split, gold in rows:
            conn.execute(
                text(
                    "INSERT INTO samples (id, dataset_id, row, text, text_hash, split, gold_label) "
                    "VALUES (:id, :d, :row, :t, 0, :split, :gold)"
                ),
                {"id": sid, "d": dataset_id, "row": sid, "t": f"text {sid}", "split": split, "gold": gold},
            )
        for sid, scope, label in (
            (1, "dataset", "bye"),
            (4, "dataset", "greet"),
            (1, "run:7", "greet"),
            (2, "run:7", "bye"),
            (7, "dataset", "greet"),
        ):
            event_id = conn.execute(
                text(
                    "INSERT INTO label_events (sample_id, scope, label, source, annotator, created_at) "
                    "VALUES (:s, :scope, :label, 'human', 'ann', :at) RETURNING id"
                ),
                {"s": sid, "scope": scope, "label": label, "at": at},
            ).scalar_one()
            conn.execute(
                text("INSERT INTO current_labels (sample_id, scope, label, event_id) VALUES (:s, :scope, :label, :e)"),
                {"s": sid, "scope": scope, "label": label, "e": event_id},
            )
    engine.dispose()

    store = PoolStore(database_url)  # migrates to head on open
    try:
        samples, labels = _assert_kept_counts_are_a_recount(database_url)
        assert samples[1, "train", ""] == 1 and labels[1, "run:7", "train", "bye"] == 1
        counts = store.counts("old")
        assert (counts["train"].total, counts["train"].gold_by_label) == (4, {"greet": 2, "bye": 1, "": 1})
        assert (counts["train"].labelled, counts["train"].labelled_by_label) == (2, {"bye": 1, "greet": 1})
        assert (counts["test"].total, counts["dev"].total, counts["test"].labelled) == (1, 1, 0)
        run = store.get_run(7)
        assert (run.labelled_count, run.pool_size) == (2, 4)
        info = store.get_dataset("old")
        assert (info.counts, info.labelled) == ({"train": 4, "test": 1, "dev": 1}, 2)
        # Counting goes on from the filled counts.
        store.submit_labels("old", [(1, "greet"), (3, "bye")])
        _assert_kept_counts_are_a_recount(database_url)
        assert store.counts("old")["train"].labelled_by_label == {"greet": 2, "bye": 1}
    finally:
        store.close()
