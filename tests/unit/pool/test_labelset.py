"""Labels belong to the dataset: human labels kept with the dataset and reused by later
human-mode runs, label history, label sets without near-duplicates, delete, and the migration."""

from __future__ import annotations

import grpc
import pytest

from lesslabels.v1 import common_pb2, pool_pb2, run_pb2, run_store_pb2
from tests.unit.pool.seeding import acquire
from tests.helpers import BOTH_DATABASES, import_bytes, import_rows

ROWS = [("greet", "hello there"), ("bye", "see you"), ("greet", "hi"), ("bye", "farewell"), ("greet", "good morning")]


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def _ids(stub, dataset="d"):
    pages = stub.ListSamples(pool_pb2.ListSamplesRequest(dataset=dataset, split=common_pb2.SPLIT_TRAIN), timeout=10)
    return [s.id for page in pages for s in page.samples]


def _run(stub, oracle, dataset="d"):
    config = run_pb2.RunConfig(dataset=dataset, strategy=run_pb2.STRATEGY_ENTROPY, oracle=oracle)
    return stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=5).id


def _acquire(stub, run_id, round_, ids):
    acquire(stub, run_id, round_, [run_pb2.Acquisition(sample_id=i) for i in ids])


def _pending(stub, run_id):
    reply = stub.ListAcquisitions(
        run_store_pb2.ListAcquisitionsRequest(run_id=run_id, round=-1, pending_only=True), timeout=5
    )
    return [a.sample_id for a in reply.acquisitions]


def _submit(stub, labels, *, run_id=0, annotator="ann", key="", dataset="d"):
    return stub.SubmitLabels(
        pool_pb2.SubmitLabelsRequest(
            dataset=dataset,
            run_id=run_id,
            source=common_pb2.LABEL_SOURCE_HUMAN,
            annotator=annotator,
            idempotency_key=key,
            labels=[pool_pb2.LabelAssignment(sample_id=i, label=label) for i, label in labels],
        ),
        timeout=5,
    )


def _export(stub, dataset="d", run_id=0) -> str:
    return b"".join(
        c.data for c in stub.ExportLabels(pool_pb2.ExportLabelsRequest(dataset=dataset, run_id=run_id), timeout=5)
    ).decode()


def _label_text(export: str) -> list[str]:
    """The label and text cells of each line of an export (the provenance columns follow them)."""
    return [",".join(line.split(",")[:2]) for line in export.splitlines()]


@BOTH_DATABASES
def test_human_labels_belong_to_the_dataset_and_later_human_runs_ask_nothing_again(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    ids = _ids(stub)
    first = _run(stub, run_pb2.ORACLE_MODE_HUMAN)
    _acquire(stub, first, 0, ids[:2])
    assert _pending(stub, first) == ids[:2]
    _submit(stub, [(ids[0], "greet"), (ids[1], "bye")], run_id=first, annotator="ada")

    # The dataset keeps them: counted, exported, with annotator and source in the history.
    assert stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5).labelled_count == 2
    assert _label_text(_export(stub)) == ["label,text", "greet,hello there", "bye,see you"]
    history = stub.GetLabelHistory(pool_pb2.GetLabelHistoryRequest(dataset="d", sample_id=ids[0]), timeout=5).events
    assert [(e.label, e.annotator, e.source) for e in history] == [("greet", "ada", common_pb2.LABEL_SOURCE_HUMAN)]
    assert history[0].created_at

    # A second human-mode run that selects them asks for none of them, only the new one.
    second = _run(stub, run_pb2.ORACLE_MODE_HUMAN)
    _acquire(stub, second, 0, ids[:3])
    assert _pending(stub, second) == [ids[2]]
    acquired = stub.ListAcquisitions(
        run_store_pb2.ListAcquisitionsRequest(run_id=second, round=-1), timeout=5
    ).acquisitions
    assert {a.sample_id: a.label for a in acquired} == {ids[0]: "greet", ids[1]: "bye", ids[2]: ""}

    # A simulated-oracle run keeps its own scope: strategy comparisons stay independent.
    simulated = _run(stub, run_pb2.ORACLE_MODE_SIMULATED)
    _acquire(stub, simulated, 0, ids[:2])
    assert _pending(stub, simulated) == ids[:2]
    stub.RevealLabels(run_store_pb2.RevealLabelsRequest(run_id=simulated, sample_ids=ids[:2]), timeout=5)
    assert stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5).labelled_count == 2


@BOTH_DATABASES
def test_a_recorded_step_that_moves_a_human_run_on_reuses_the_dataset_labels(pool_address, stub):
    # The coordinator stores a selection with the RecordStep that moves the run to LABEL: a
    # human-mode run's step asks nobody again for a label the dataset has.
    import_rows(pool_address, "d", ROWS)
    ids = _ids(stub)
    _submit(stub, [(ids[0], "greet"), (ids[1], "bye")], annotator="ada")
    run = _run(stub, run_pb2.ORACLE_MODE_HUMAN)
    moved = stub.RecordStep(
        run_store_pb2.RecordStepRequest(
            run_id=run,
            expected_step=run_pb2.RUN_STEP_SEED,
            expected_round=0,
            step=run_pb2.RUN_STEP_LABEL,
            round=0,
            acquisitions=[run_pb2.Acquisition(sample_id=i) for i in ids[:3]],
            acquisition_round=0,
        ),
        timeout=5,
    )
    assert moved.labelled_count == 2
    assert _pending(stub, run) == [ids[2]]
    acquired = stub.ListAcquisitions(
        run_store_pb2.ListAcquisitionsRequest(run_id=run, round=-1), timeout=5
    ).acquisitions
    assert {a.sample_id: a.label for a in acquired} == {ids[0]: "greet", ids[1]: "bye", ids[2]: ""}

    # A simulated run's step keeps its own scope.
    simulated = _run(stub, run_pb2.ORACLE_MODE_SIMULATED)
    stub.RecordStep(
        run_store_pb2.RecordStepRequest(
            run_id=simulated,
            expected_step=run_pb2.RUN_STEP_SEED,
            expected_round=0,
            step=run_pb2.RUN_STEP_LABEL,
            round=0,
            acquisitions=[run_pb2.Acquisition(sample_id=i) for i in ids[:2]],
            acquisition_round=0,
        ),
        timeout=5,
    )
    assert _pending(stub, simulated) == ids[:2]


def test_relabelling_appends_an_event_and_the_latest_is_in_force(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    sid = _ids(stub)[0]
    _submit(stub, [(sid, "greet")], annotator="ada", key="k1")
    reply = _submit(stub, [(sid, "bye")], annotator="bob", key="k2")
    assert reply.changed == 1
    _submit(stub, [(sid, "bye")], annotator="bob", key="k2")  # a retry adds nothing
    history = stub.GetLabelHistory(pool_pb2.GetLabelHistoryRequest(dataset="d", sample_id=sid), timeout=5).events
    assert [(e.label, e.annotator) for e in history] == [("greet", "ada"), ("bye", "bob")]
    assert _label_text(_export(stub)) == ["label,text", "bye,hello there"]


def test_label_history_of_an_unknown_sample_is_not_found(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    err = _error(lambda: stub.GetLabelHistory(pool_pb2.GetLabelHistoryRequest(dataset="d", sample_id=999), timeout=5))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "sample 999" in err.details()


def test_near_duplicate_label_names_are_refused_everywhere(pool_address, stub):
    err = _error(
        lambda: stub.CreateDataset(pool_pb2.CreateDatasetRequest(name="w", labels=["Weather", "weather "]), timeout=5)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "near-duplicate of 'Weather'" in err.details()

    err = _error(lambda: import_bytes(pool_address, "x", b"Weather,rain today\nweather,sunny\n", create=True))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "row 2" in err.details() and "near-duplicate" in err.details()
    assert "x" not in [d.name for d in stub.ListDatasets(pool_pb2.ListDatasetsRequest(), timeout=5).datasets]

    import_rows(pool_address, "d", ROWS)
    err = _error(lambda: _submit(stub, [(_ids(stub)[0], "Greet ")]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "near-duplicate of 'greet'" in err.details()

    err = _error(
        lambda: stub.SetDatasetLabels(
            pool_pb2.SetDatasetLabelsRequest(dataset="d", labels=["greet", "bye", "GREET"]), timeout=5
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "near-duplicate" in err.details()
    err = _error(
        lambda: stub.SetDatasetLabels(
            pool_pb2.SetDatasetLabelsRequest(dataset="d", labels=["greet", "bye "]), timeout=5
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "ends with spaces" in err.details()


def test_label_set_from_human_labels_when_none_is_declared(pool_address, stub):
    import_bytes(pool_address, "u", b"text\nhello\nbye now\n", create=True)
    ids = _ids(stub, "u")
    _submit(stub, [(ids[0], "greet")], dataset="u")
    assert list(stub.GetDataset(pool_pb2.GetDatasetRequest(name="u"), timeout=5).labels) == ["greet"]
    err = _error(lambda: _submit(stub, [(ids[1], "GREET")], dataset="u"))
    assert "near-duplicate" in err.details()


def test_changing_the_label_set_is_explicit_and_keeps_labels_in_use(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    changed = stub.SetDatasetLabels(
        pool_pb2.SetDatasetLabelsRequest(dataset="d", labels=["greet", "bye", "thanks"]), timeout=5
    )
    assert list(changed.labels) == ["greet", "bye", "thanks"]
    err = _error(
        lambda: stub.SetDatasetLabels(pool_pb2.SetDatasetLabelsRequest(dataset="d", labels=["greet"]), timeout=5)
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "['bye']" in err.details()
    err = _error(lambda: stub.SetDatasetLabels(pool_pb2.SetDatasetLabelsRequest(dataset="d", labels=[]), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "must not be empty" in err.details()
    # The declared set is now fixed: an import may not add a label.
    err = _error(lambda: import_bytes(pool_address, "d", b"other,new text\n"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "not in the dataset's label set" in err.details()


@BOTH_DATABASES
def test_delete_dataset_removes_only_its_own_rows(pool_address, stub):
    import_rows(pool_address, "a", ROWS)
    import_rows(pool_address, "b", ROWS)
    a_ids, b_ids = _ids(stub, "a"), _ids(stub, "b")
    for dataset, ids in (("a", a_ids), ("b", b_ids)):
        run = _run(stub, run_pb2.ORACLE_MODE_HUMAN, dataset)
        _acquire(stub, run, 0, ids[:2])
        _submit(stub, [(ids[0], "greet"), (ids[1], "bye")], run_id=run, dataset=dataset)
        stub.PutRound(run_pb2.Round(run_id=run, index=0, labelled_count=2), timeout=5)
        stub.UpdateRun(run_store_pb2.UpdateRunRequest(run_id=run, state=run_pb2.RUN_STATE_COMPLETED), timeout=5)
    before_b = _export(stub, "b")

    reply = stub.DeleteDataset(pool_pb2.DeleteDatasetRequest(dataset="a"), timeout=5)
    assert reply.samples == len(ROWS)
    names = [d.name for d in stub.ListDatasets(pool_pb2.ListDatasetsRequest(), timeout=5).datasets]
    assert names == ["b"]
    assert _export(stub, "b") == before_b
    b_runs = stub.ListRuns(run_pb2.ListRunsRequest(dataset="b"), timeout=5).runs
    assert (
        len(b_runs) == 1
        and len(stub.ListRounds(run_store_pb2.ListRoundsRequest(run_id=b_runs[0].id), timeout=5).rounds) == 1
    )
    assert len(_ids(stub, "b")) == len(ROWS)
    err = _error(lambda: stub.DeleteDataset(pool_pb2.DeleteDatasetRequest(dataset="a"), timeout=5))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_delete_dataset_with_an_active_run_is_refused(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    run = _run(stub, run_pb2.ORACLE_MODE_HUMAN)
    err = _error(lambda: stub.DeleteDataset(pool_pb2.DeleteDatasetRequest(dataset="d"), timeout=5))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and f"active runs [{run}]" in err.details()
    assert len(_ids(stub)) == len(ROWS)


@BOTH_DATABASES
def test_upgrading_a_database_at_the_previous_head_keeps_everything_and_moves_human_labels_to_the_dataset(database_url):
    upgrade_keeps_everything(database_url)


def upgrade_keeps_everything(url: str) -> None:
    from sqlalchemy import create_engine, text

    from lesslabels.pool.db import migrate
    from lesslabels.pool.store import PoolStore

    migrate(url, "0002")
    engine = create_engine(url)
    human = '{"dataset": "old", "oracle": "ORACLE_MODE_HUMAN"}'
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets (id, name, description, labels_json, labels_fixed, created_at) "
                "VALUES (1, 'old', '', '[\"greet\", \"bye\"]', FALSE, '2026-11-23 20:00:00')"
            )
        )
        for sid, txt in ((1, "hello"), (2, "bye now"), (3, "hi")):
            conn.execute(
                text(
                    f"INSERT INTO samples (id, dataset_id, row, text, split, gold_label) VALUES ({sid}, 1, {sid - 1}, '{txt}', 'train', NULL)"
                )
            )
        conn.execute(
            text(
                "INSERT INTO runs (id, dataset_id, config_json, state, step, round, error, stop_reason, created_at, "
                f"updated_at, request_id) VALUES (7, 1, '{human}', 'COMPLETED', 'DONE', 1, '', '', "
                "'2026-11-23 20:00:00', '2026-11-23 20:00:00', 'req-7')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO acquisitions (id, run_id, sample_id, round, strategy, score, created_at) VALUES "
                "(1, 7, 1, 0, 'STRATEGY_RANDOM', 0, '2026-11-23 20:00:00'), (2, 7, 2, 0, 'STRATEGY_RANDOM', 0, '2026-11-23 20:00:00')"
            )
        )
        # Sample 1: labelled then corrected by a person in run 7; sample 2: revealed by the oracle.
        conn.execute(
            text(
                "INSERT INTO label_events (id, sample_id, scope, label, source, annotator, created_at, idempotency_key) VALUES "
                "(1, 1, 'run:7', 'bye', 'human', 'ada', '2026-11-23 20:01:00', 'k1'), "
                "(2, 1, 'run:7', 'greet', 'human', 'bob', '2026-11-23 20:02:00', 'k2'), "
                "(3, 2, 'run:7', 'bye', 'oracle', 'oracle', '2026-11-23 20:03:00', NULL)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO current_labels (sample_id, scope, label, event_id) VALUES (1, 'run:7', 'greet', 2), (2, 'run:7', 'bye', 3)"
            )
        )
        if conn.dialect.name == "postgresql":  # rows written with explicit ids, as the app never does
            for table in ("datasets", "samples", "runs", "acquisitions", "label_events"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
    engine.dispose()

    store = PoolStore(url)  # migrates to head on open
    run = store.get_run(7)
    assert (run.state, run.round, run.labelled_count) == ("COMPLETED", 1, 2)
    assert [(a.sample_id, a.label) for a in store.list_acquisitions(7)] == [(1, "greet"), (2, "bye")]
    assert store.create_run("old", "{}", request_id="req-7").id == 7
    assert store.get_dataset("old").labels == ["greet", "bye"]
    # The person's latest label now belongs to the dataset; the oracle's does not.
    assert _label_text(b"".join(store.export_labels("old")).decode()) == ["label,text", "greet,hello"]
    history = store.label_history("old", 1)
    assert [(e.label, e.annotator, e.source) for e in history] == [("greet", "bob", "human")]
    with create_engine(url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM label_events WHERE scope = 'run:7'")).scalar() == 3
    store.close()
