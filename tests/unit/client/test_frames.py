"""DataFrames in the SDK (issue 30): a frame imported through a real pool server, samples, labels,
rounds and scores read back as frames with their documented dtypes; every bad frame refused with a
message naming the row, nothing stored; the SDK without pandas."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from lesslabels.client import InvalidArgument, NotFound, PoolClient, RunDetail, Scores  # noqa: E402
from lesslabels.client import frames  # noqa: E402
from lesslabels.contract import Metrics, PoolScores, Round, Run, RunConfig, Uncertainty  # noqa: E402
from tests.helpers import ROOT  # noqa: E402


@pytest.fixture
def pool(pool_address):
    with PoolClient(pool_address, timeout=10) as client:
        yield client


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "utterance": ["book a flight to denver", "what is the fare", "hello there", "is it raining"],
            "intent": ["flight", "airfare", None, np.nan],
            "ref": [101, 102, 103, 104],
            "notes": ["x", "y", "z", "w"],  # not named: not sent
        },
        index=["a", "b", "c", "d"],
    )


def test_a_dataframe_is_imported_by_the_columns_named(pool):
    summary = pool.import_dataframe(_frame(), "flights", text="utterance", label="intent", id="ref")
    assert summary.imported == 4 and summary.format == "jsonl"
    assert summary.by_label == {"flight": 1, "airfare": 1, "": 2}
    assert summary.columns == {"text": "utterance", "label": "intent", "id": "ref"}
    samples = pool.list_samples("flights")
    assert [s.text for s in samples] == list(_frame()["utterance"])


def test_a_dataframe_with_known_column_names_needs_no_flags(pool):
    frame = pd.DataFrame({"text": ["hello there", "see you"], "label": ["greet", "bye"], "split": ["train", "test"]})
    summary = pool.import_dataframe(frame, "d")
    assert summary.by_split == {"train": 1, "test": 1}
    # The pool's own rules apply: a column nothing reads is refused unless asked to leave it out.
    with pytest.raises(InvalidArgument, match=r"keys \['source'\] are read as nothing"):
        pool.import_dataframe(frame.assign(source="web"), "d2")
    assert pool.import_dataframe(frame.assign(source="web"), "d2", ignore_extra=True).columns["ignored"] == "source"


def test_import_samples_hands_a_dataframe_to_import_dataframe(pool):
    summary = pool.import_samples("d", pd.DataFrame({"text": ["hello there"], "label": ["greet"]}))
    assert summary.imported == 1 and summary.by_label == {"greet": 1}


def test_a_retried_dataframe_import_stores_its_rows_once(pool):
    frame = pd.DataFrame({"text": ["hello there", "see you"], "label": ["greet", "bye"]})
    first = pool.import_dataframe(frame, "d", request_id="nb-1")
    again = pool.import_dataframe(frame, "d", request_id="nb-1")
    assert (first.imported, again.imported, again.replayed) == (2, 2, True)
    assert len(pool.list_samples("d")) == 2


BAD_FRAMES = [
    (lambda: _frame(), {"text": "utterance", "label": "nope"}, "label='nope': the DataFrame has no such column"),
    (lambda: pd.DataFrame({0: ["a b"], 1: ["x"]}), {}, "column names must be strings"),
    (
        lambda: _frame().assign(utterance=["a b", None, "c d", "e f"]),
        {"text": "utterance"},
        "row 2 (index 'b'): the text ('utterance') is missing",
    ),
    (
        lambda: _frame().assign(utterance=["a b", "c d", 7, "e f"]),
        {"text": "utterance"},
        "row 3 (index 'c'): the text ('utterance') is a int, not a string",
    ),
    (
        lambda: _frame().assign(intent=[0, 1, 0, 1]),
        {"text": "utterance", "label": "intent"},
        "row 1 (index 'a'): the label ('intent') is a int (0), not a class name",
    ),
    (lambda: _frame().iloc[:0], {"text": "utterance"}, "the DataFrame has no rows"),
    (lambda: [("a b", "x")], {"text": "text"}, "expected a pandas DataFrame, got list"),
]


@pytest.mark.parametrize(
    "make, columns, words",
    BAD_FRAMES,
    ids=["unknown-column", "int-column-names", "missing-text", "int-text", "class-indices", "empty", "not-a-frame"],
)
def test_bad_dataframes_are_refused_before_anything_is_sent(pool, make, columns, words):
    with pytest.raises(InvalidArgument) as refused:
        pool.import_dataframe(make(), "never", **columns)
    assert words in str(refused.value)
    assert refused.value.status is None  # refused here: no call was made
    with pytest.raises(NotFound):
        pool.get_dataset("never")


def test_a_refusal_from_the_pool_names_the_dataframe_row(pool):
    frame = pd.DataFrame({"text": ["a text", "another one", "   "], "label": ["x", "y", "x"]}, index=[10, 20, 30])
    with pytest.raises(InvalidArgument) as refused:
        pool.import_dataframe(frame, "never")
    assert "row 3 (line 3): empty text" in str(refused.value)
    assert "row 3 is the DataFrame's row 2 (df.iloc[2], index 30)" in refused.value.__notes__
    with pytest.raises(NotFound):
        pool.get_dataset("never")


def test_samples_and_labels_come_back_as_frames_with_their_dtypes(pool):
    pool.import_dataframe(_frame(), "flights", text="utterance", label="intent")
    samples = pool.list_samples("flights", as_frame=True)
    assert list(samples.columns) == [
        "id",
        "text",
        "split",
        "label",
        "gold_label",
        "annotator",
        "label_source",
        "labelled_at",
        "row",
    ]
    assert str(samples["id"].dtype) == "int64" and str(samples["text"].dtype) == "string"
    assert str(samples["labelled_at"].dtype) == "datetime64[ns, UTC]"
    assert samples["label"].isna().all() and samples["labelled_at"].isna().all()  # nothing labelled yet

    # Labels go in as a DataFrame too (numpy integer ids), and come back with who and when.
    given = pd.DataFrame({"sample_id": samples["id"].iloc[:2].to_numpy(), "label": ["flight", "airfare"]})
    result = pool.submit_labels("flights", given, annotator="ana")
    assert result.recorded == 2
    labels = pool.list_samples("flights", state="labelled", as_frame=True)
    assert list(labels["label"]) == ["flight", "airfare"] and list(labels["annotator"]) == ["ana", "ana"]
    assert list(labels["label_source"]) == ["human", "human"]
    assert (labels["labelled_at"] > pd.Timestamp("2020-01-01", tz="UTC")).all()


def test_a_labels_frame_without_its_columns_is_refused(pool):
    pool.import_dataframe(_frame(), "flights", text="utterance")
    with pytest.raises(InvalidArgument, match="needs a 'sample_id' \\(or 'id'\\) and a 'label' column"):
        pool.submit_labels("flights", pd.DataFrame({"sample": [1], "label": ["x"]}))
    assert pool.list_samples("flights", state="labelled") == []


def test_rounds_come_back_as_the_learning_curve():
    rounds = (
        Round(run_id=1, index=0, labelled_count=20, selected_count=20, test=Metrics(0.5, 0.4, count=100)),
        Round(
            run_id=1,
            index=1,
            labelled_count=40,
            selected_count=20,
            test=Metrics(0.75, 0.7, count=100),
            validation=Metrics(0.8, 0.78, count=10),
            checkpoint_id="ck-1",
            started_at="2025-01-02T03:04:05Z",
        ),
        Round(run_id=1, index=2, labelled_count=60),  # in progress: no metrics yet
    )
    detail = RunDetail(Run(id=1, config=RunConfig(dataset="d"), state="RUNNING", step="TRAIN", round=2), rounds)
    curve = detail.to_pandas()
    assert list(curve["labelled_count"]) == [20, 40, 60] and str(curve["labelled_count"].dtype) == "int64"
    assert curve["test_accuracy"].tolist()[:2] == [0.5, 0.75] and np.isnan(curve["test_accuracy"].iloc[2])
    assert np.isnan(curve["validation_accuracy"].iloc[0]) and curve["validation_accuracy"].iloc[1] == 0.8
    assert curve["checkpoint_id"].isna().tolist() == [True, False, True]
    assert curve["started_at"].iloc[1] == pd.Timestamp("2025-01-02T03:04:05Z") and pd.isna(curve["started_at"].iloc[0])


def _uncertainty(n: int) -> Uncertainty:
    return Uncertainty(np.full(n, 0.5), np.full(n, 0.1), np.full(n, 0.4), np.full(n, 0.9))


def test_scores_come_back_as_frames():
    scores = Scores(
        checkpoint_id="ck",
        labels=("flight", "airfare"),
        probabilities=np.array([[0.9, 0.1], [0.3, 0.7]], dtype=np.float32),
        predicted=("flight", "airfare"),
        uncertainty=_uncertainty(2),
        truncated=np.array([False, True]),
    )
    frame = scores.to_pandas()
    assert list(frame.columns) == [
        "predicted",
        "entropy",
        "margin",
        "least_confidence",
        "ratio",
        "p_flight",
        "p_airfare",
        "truncated",
    ]
    assert frame["p_airfare"].tolist() == pytest.approx([0.1, 0.7]) and frame["truncated"].tolist() == [False, True]
    pool_scores = PoolScores(
        labels=("flight", "airfare"),
        sample_ids=np.array([7, 9]),
        predicted=np.array(["airfare", "flight"]),
        gold=np.array(["airfare", "airfare"]),
        uncertainty=_uncertainty(2),
    )
    frame = frames.pool_scores_frame(pool_scores)
    assert list(frame.columns) == ["sample_id", "gold", "predicted", "entropy", "margin", "least_confidence", "ratio"]
    assert frame["sample_id"].tolist() == [7, 9] and str(frame["sample_id"].dtype) == "int64"


def test_the_sdk_works_without_pandas_and_names_the_extra_when_a_frame_is_asked_for():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pandas"] = None  # as if not installed: `import pandas` raises ImportError
        import numpy as np
        from lesslabels.client import PoolClient, Scores, Uncertainty
        from lesslabels.client.pool import rows_to_jsonl
        assert list(rows_to_jsonl([("a b", "x")]))  # the rest of the SDK works
        u = np.zeros(1)
        scores = Scores("c", ("x",), np.ones((1, 1)), ("x",), Uncertainty(u, u, u, u), np.zeros(1, bool))
        try:
            scores.to_pandas()
        except ImportError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'lesslabels[pandas]'" in out.stdout
