"""RecordStep over real gRPC, on SQLite and (when installed) PostgreSQL: a run step's outcome and
the run's advance are one transaction, so a refused step writes nothing at all."""

from __future__ import annotations

import threading

import grpc
import pytest
from lesslabels.v1 import common_pb2, pool_pb2, run_pb2, run_store_pb2

from tests.unit.pool.seeding import acquire
from tests.helpers import BOTH_DATABASES, import_rows, pool_stub

ROWS = [("greet", "hello there"), ("bye", "see you"), ("greet", "hi"), ("bye", "farewell"), ("greet", "good morning")]
SEED, LABEL, TRAIN, EVALUATE = (
    run_pb2.RUN_STEP_SEED,
    run_pb2.RUN_STEP_LABEL,
    run_pb2.RUN_STEP_TRAIN,
    run_pb2.RUN_STEP_EVALUATE,
)


pytestmark = BOTH_DATABASES


@pytest.fixture
def run(pool_address, stub) -> run_pb2.Run:
    import_rows(pool_address, "d", ROWS)
    import_rows(pool_address, "d", [("greet", "test text")], split="test")
    config = run_pb2.RunConfig(dataset="d", strategy=run_pb2.STRATEGY_ENTROPY, seed_size=run_pb2.Amount(count=2))
    return stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=5)


def _ids(stub, split=common_pb2.SPLIT_TRAIN) -> list[int]:
    pages = stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="d", split=split), timeout=10)
    return [s.id for page in pages for s in page.samples]


def _acquisitions(ids, strategy=run_pb2.STRATEGY_RANDOM):
    return [run_pb2.Acquisition(sample_id=i, strategy=strategy, score=0.25) for i in ids]


def _refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def _nothing_written(stub, run_id: int, *, step=SEED, round_=0, acquired=0) -> None:
    stored = stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=5)
    assert (stored.step, stored.round) == (step, round_)
    assert (
        len(
            stub.ListAcquisitions(
                run_store_pb2.ListAcquisitionsRequest(run_id=run_id, round=-1), timeout=5
            ).acquisitions
        )
        == acquired
    )
    assert list(stub.ListRounds(run_store_pb2.ListRoundsRequest(run_id=run_id), timeout=5).rounds) == []


def test_a_step_stores_its_round_and_acquisitions_and_advances_the_run(stub, run):
    ids = _ids(stub)
    moved = stub.RecordStep(
        run_store_pb2.RecordStepRequest(
            run_id=run.id,
            expected_step=SEED,
            expected_round=0,
            state=run_pb2.RUN_STATE_RUNNING,
            step=LABEL,
            round=0,
            acquisitions=_acquisitions(ids[:2]),
            acquisition_round=0,
        ),
        timeout=5,
    )
    assert (moved.state, moved.step, moved.round, moved.config.dataset) == (run_pb2.RUN_STATE_RUNNING, LABEL, 0, "d")
    acquired = stub.ListAcquisitions(
        run_store_pb2.ListAcquisitionsRequest(run_id=run.id, round=0), timeout=5
    ).acquisitions
    assert [(a.sample_id, a.strategy, a.score) for a in acquired] == [
        (i, run_pb2.STRATEGY_RANDOM, 0.25) for i in ids[:2]
    ]

    moved = stub.RecordStep(
        run_store_pb2.RecordStepRequest(
            run_id=run.id,
            expected_step=LABEL,
            expected_round=0,
            step=EVALUATE,
            round=0,
            round_record=run_pb2.Round(run_id=run.id, index=0, labelled_count=2, checkpoint_id="c0"),
        ),
        timeout=5,
    )
    assert (moved.step, moved.round) == (EVALUATE, 0)
    rounds = stub.ListRounds(run_store_pb2.ListRoundsRequest(run_id=run.id), timeout=5).rounds
    assert [(r.index, r.checkpoint_id, r.labelled_count) for r in rounds] == [(0, "c0", 2)]

    done = stub.RecordStep(
        run_store_pb2.RecordStepRequest(
            run_id=run.id,
            expected_step=EVALUATE,
            expected_round=0,
            state=run_pb2.RUN_STATE_COMPLETED,
            step=run_pb2.RUN_STEP_DONE,
            round=0,
            stop_reason="round limit 1 reached",
        ),
        timeout=5,
    )
    assert (done.state, done.step, done.stop_reason) == (
        run_pb2.RUN_STATE_COMPLETED,
        run_pb2.RUN_STEP_DONE,
        "round limit 1 reached",
    )


@pytest.mark.parametrize("expected_step, expected_round", [(TRAIN, 0), (SEED, 1)], ids=["wrong-step", "wrong-round"])
def test_a_failed_compare_and_set_writes_no_round_and_no_acquisitions(stub, run, expected_step, expected_round):
    ids = _ids(stub)
    err = _refused(
        lambda: stub.RecordStep(
            run_store_pb2.RecordStepRequest(
                run_id=run.id,
                expected_step=expected_step,
                expected_round=expected_round,
                step=LABEL,
                round=1,
                acquisitions=_acquisitions(ids[:2]),
                acquisition_round=1,
                round_record=run_pb2.Round(run_id=run.id, index=0, checkpoint_id="c0"),
            ),
            timeout=5,
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is at step SEED round 0" in (err.details() or "")
    _nothing_written(stub, run.id)


def test_a_sample_acquired_in_another_round_refuses_the_whole_step(stub, run):
    ids = _ids(stub)
    acquire(stub, run.id, 0, _acquisitions(ids[:1]))
    err = _refused(
        lambda: stub.RecordStep(
            run_store_pb2.RecordStepRequest(
                run_id=run.id,
                expected_step=SEED,
                expected_round=0,
                step=LABEL,
                round=1,
                acquisitions=_acquisitions(ids[:3]),
                acquisition_round=1,
                round_record=run_pb2.Round(run_id=run.id, index=0, checkpoint_id="c0"),
            ),
            timeout=5,
        )
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and f"sample {ids[0]} was already acquired" in (
        err.details() or ""
    )
    _nothing_written(stub, run.id, acquired=1)


def test_a_repeated_selection_in_the_same_round_is_kept_once(stub, run):
    ids = _ids(stub)
    acquire(stub, run.id, 0, _acquisitions(ids[:2]))
    stub.RecordStep(
        run_store_pb2.RecordStepRequest(
            run_id=run.id, expected_step=SEED, step=LABEL, acquisitions=_acquisitions(ids[:2]), acquisition_round=0
        ),
        timeout=5,
    )
    assert (
        len(
            stub.ListAcquisitions(
                run_store_pb2.ListAcquisitionsRequest(run_id=run.id, round=-1), timeout=5
            ).acquisitions
        )
        == 2
    )


@pytest.mark.parametrize(
    "change, code, words",
    [
        ({"expected_step": 0}, grpc.StatusCode.INVALID_ARGUMENT, "expected_step is required"),
        ({"expected_step": 99}, grpc.StatusCode.INVALID_ARGUMENT, "expected_step: unknown value 99"),
        ({"step": 99}, grpc.StatusCode.INVALID_ARGUMENT, "run step: unknown value 99"),
        ({"state": 99}, grpc.StatusCode.INVALID_ARGUMENT, "run state: unknown value 99"),
        ({"expected_round": -1}, grpc.StatusCode.INVALID_ARGUMENT, "expected_round must not be negative"),
        ({"round": -2}, grpc.StatusCode.INVALID_ARGUMENT, "round must not be negative"),
        (
            {"round_record": run_pb2.Round(run_id=12345, index=0)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "belongs to run 12345",
        ),
        ({"round_record": "negative-index"}, grpc.StatusCode.INVALID_ARGUMENT, "round index must not be negative"),
        ({"acquisition_round": -1}, grpc.StatusCode.INVALID_ARGUMENT, "acquisition_round must not be negative"),
        ({"acquisitions": "twice"}, grpc.StatusCode.INVALID_ARGUMENT, "more than once"),
        ({"acquisitions": "test-split"}, grpc.StatusCode.INVALID_ARGUMENT, "only train samples can be acquired"),
        ({"acquisitions": "unknown"}, grpc.StatusCode.INVALID_ARGUMENT, "is not in the run's dataset"),
        ({"run_id": 999}, grpc.StatusCode.NOT_FOUND, "run 999 not found"),
    ],
)
def test_bad_steps_are_refused_and_write_nothing(stub, run, change, code, words):
    ids = _ids(stub)
    fields = {
        "run_id": run.id,
        "expected_step": SEED,
        "expected_round": 0,
        "step": LABEL,
        "round": 0,
        "acquisitions": _acquisitions(ids[:2]),
        "acquisition_round": 0,
    }
    fields.update(change)
    named = {
        "negative-index": run_pb2.Round(run_id=run.id, index=-1),
        "twice": _acquisitions([ids[0], ids[0]]),
        "test-split": _acquisitions(_ids(stub, common_pb2.SPLIT_TEST)),
        "unknown": _acquisitions([10**9]),
    }
    fields = {k: named[v] if isinstance(v, str) and v in named else v for k, v in fields.items()}
    err = _refused(lambda: stub.RecordStep(run_store_pb2.RecordStepRequest(**fields), timeout=5))
    assert err.code() == code and words in (err.details() or ""), err.details()
    _nothing_written(stub, run.id)


def test_racing_steps_advance_the_run_once(pool_address, stub, run):
    """Two coordinators finishing the same step: one wins, the other is refused and writes nothing."""
    ids = _ids(stub)
    outcomes: list[object] = []

    def finish(picks):
        try:
            outcomes.append(
                pool_stub(pool_address).RecordStep(
                    run_store_pb2.RecordStepRequest(
                        run_id=run.id,
                        expected_step=SEED,
                        expected_round=0,
                        step=LABEL,
                        round=0,
                        acquisitions=_acquisitions(picks),
                        acquisition_round=0,
                    ),
                    timeout=10,
                )
            )
        except grpc.RpcError as exc:
            outcomes.append(exc.code())

    threads = [threading.Thread(target=finish, args=(ids[n : n + 2],)) for n in (0, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(str(o) for o in outcomes if isinstance(o, grpc.StatusCode)) == [
        str(grpc.StatusCode.FAILED_PRECONDITION)
    ]
    acquired = stub.ListAcquisitions(
        run_store_pb2.ListAcquisitionsRequest(run_id=run.id, round=-1), timeout=5
    ).acquisitions
    assert len(acquired) == 2  # only the winner's selection
