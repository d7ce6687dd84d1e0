"""Texts two people label: the second person's label is kept beside the first (never replacing it),
a disagreement is flagged from the stored label events, and a review resolves it in the dataset and
in every run where a person labelled the text."""

from __future__ import annotations

import pytest

from lesslabels.client import InvalidArgument, PoolClient
from lesslabels.v1 import run_pb2, run_store_pb2
from tests.helpers import import_rows
from tests.unit.pool.seeding import acquire

ROWS = [("", "hello there"), ("", "see you"), ("", "hi"), ("", "farewell")]


def _setup(pool_address) -> list[int]:
    with PoolClient(pool_address, timeout=10) as pool:
        pool.create_dataset("d", labels=["greet", "bye"])
    import_rows(pool_address, "d", ROWS)
    with PoolClient(pool_address, timeout=10) as pool:
        return [s.id for s in pool.list_samples("d")]


def _human_run(stub, ids) -> int:
    config = run_pb2.RunConfig(dataset="d", strategy=run_pb2.STRATEGY_ENTROPY, oracle=run_pb2.ORACLE_MODE_HUMAN)
    run_id = stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=5).id
    acquire(stub, run_id, 0, [run_pb2.Acquisition(sample_id=i) for i in ids])
    return run_id


def _opinions(stub, run_id):
    reply = stub.ListAcquisitions(run_store_pb2.ListAcquisitionsRequest(run_id=run_id, round=-1), timeout=5)
    return {a.sample_id: (a.label, dict(a.opinions)) for a in reply.acquisitions}


def test_a_second_opinion_never_replaces_the_first_and_a_disagreement_is_flagged_until_reviewed(pool_address, stub):
    ids = _setup(pool_address)
    run_id = _human_run(stub, ids[:3])
    with PoolClient(pool_address, timeout=10) as pool:
        pool.submit_labels("d", [(ids[0], "greet"), (ids[1], "bye")], run_id=run_id, annotator="ada")
        # Bob labels the same two texts as second opinions: one agrees, one does not.
        second = pool.submit_labels(
            "d", [(ids[0], "greet"), (ids[1], "greet")], run_id=run_id, annotator="bob", second_opinion=True
        )
        assert (second.recorded, second.second_opinions, second.changed) == (2, 2, 0)
        assert dict(second.labels) == {ids[0]: "greet", ids[1]: "bye"}  # Ada's labels stay in force
        again = pool.submit_labels("d", [(ids[1], "greet")], run_id=run_id, annotator="bob", second_opinion=True)
        assert (again.recorded, again.unchanged) == (0, 1)  # Bob's own label repeated adds nothing
        # A second opinion on a text nobody labelled is an ordinary label.
        first = pool.submit_labels("d", [(ids[2], "bye")], run_id=run_id, annotator="bob", second_opinion=True)
        assert (first.recorded, first.second_opinions) == (1, 0)

        assert _opinions(stub, run_id) == {
            ids[0]: ("greet", {"ada": "greet", "bob": "greet"}),
            ids[1]: ("bye", {"ada": "bye", "bob": "greet"}),
            ids[2]: ("bye", {"bob": "bye"}),
        }
        exported = {s.id: (s.label, s.annotator) for s in pool.list_samples("d", state="labelled")}
        assert exported[ids[1]] == ("bye", "ada")

        texts = pool.label_opinions("d")
        assert [(t.sample_id, t.disputed) for t in texts] == [(ids[0], False), (ids[1], True)]
        flagged = pool.label_opinions("d", disputed_only=True)
        assert len(flagged) == 1 and flagged[0].text == "see you" and flagged[0].label == "bye"
        assert [(o.annotator, o.label) for o in flagged[0].opinions] == [("ada", "bye"), ("bob", "greet")]
        assert flagged[0].review is None

        # The review: Bob was right. It is in force for the dataset and in the run, and the flag clears.
        review = pool.review_labels("d", [(ids[1], "greet")], reviewer="cleo")
        assert dict(review.labels) == {ids[1]: "greet"} and review.changed == 1
        assert pool.label_opinions("d", disputed_only=True) == []
        resolved = pool.label_opinions("d")[1]
        assert resolved.review is not None and (resolved.review.annotator, resolved.review.label) == ("cleo", "greet")
        assert {s.id: s.label for s in pool.list_samples("d", state="labelled", run_id=run_id)}[ids[1]] == "greet"
        in_force = {s.id: (s.label, s.label_source) for s in pool.list_samples("d", state="labelled")}
        assert in_force[ids[1]] == ("greet", "review")
        counts = pool.get_counts("d", run_id=run_id).train.labelled_by_label
        assert counts == {"greet": 2, "bye": 1}

        # A review that confirms the label in force is recorded too (it is what clears a flag).
        pool.submit_labels("d", [(ids[0], "bye")], annotator="dan", second_opinion=True)
        assert [t.sample_id for t in pool.label_opinions("d", disputed_only=True)] == [ids[0]]
        confirm = pool.review_labels("d", [(ids[0], "greet")], reviewer="cleo")
        assert confirm.recorded == 1 and pool.label_opinions("d", disputed_only=True) == []
        # A later opinion that differs from the review flags the text again.
        pool.submit_labels("d", [(ids[0], "bye")], annotator="eve", second_opinion=True)
        assert [t.sample_id for t in pool.label_opinions("d", disputed_only=True)] == [ids[0]]


def test_a_disagreement_survives_a_pool_restart(tmp_path):
    from lesslabels.pool.main import build_server
    from tests.helpers import server_settings_for_tests

    def started():
        server = build_server(server_settings_for_tests(), f"sqlite:///{tmp_path / 'pool.db'}")
        server.start()
        server.set_serving()
        return server, f"127.0.0.1:{server.port}"

    server, address = started()
    try:
        ids = _setup(address)
        with PoolClient(address, timeout=10) as pool:
            pool.submit_labels("d", [(ids[0], "greet")], annotator="ada")
            pool.submit_labels("d", [(ids[0], "bye")], annotator="bob", second_opinion=True)
    finally:
        server.stop(0)
    server, address = started()
    try:
        with PoolClient(address, timeout=10) as pool:
            assert [t.sample_id for t in pool.label_opinions("d", disputed_only=True)] == [ids[0]]
    finally:
        server.stop(0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda pool, i: pool.submit_labels("d", [(i, "greet")], second_opinion=True), "needs source human and an"),
        (lambda pool, i: pool.review_labels("d", [(i, "greet")], reviewer=""), "by a named reviewer"),
        (lambda pool, i: pool.review_labels("d", [(i, "wave")], reviewer="cleo"), "not in the dataset's label set"),
    ],
)
def test_bad_second_opinions_and_reviews_are_refused_and_store_nothing(pool_address, call, message):
    ids = _setup(pool_address)
    with PoolClient(pool_address, timeout=10) as pool:
        pool.submit_labels("d", [(ids[0], "bye")], annotator="ada")
        with pytest.raises(InvalidArgument, match=message):
            call(pool, ids[0])
        assert [(s.label, s.annotator) for s in pool.list_samples("d", state="labelled")] == [("bye", "ada")]
        assert pool.label_opinions("d") == []
