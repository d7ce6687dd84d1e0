"""pandas DataFrames for notebooks: the SDK's results as frames, and frames as what it imports.

pandas is imported when a frame is asked for, never when ``lesslabels.client`` is: a client
installed without it works, and a frame method says how to add it (``pip install
'lesslabels[pandas]'``). The frames have fixed columns and dtypes (README, "In a notebook"):

- samples (``list_samples(as_frame=True)``): ``id`` int64, ``text``, ``split``, ``label``,
  ``gold_label``, ``annotator``, ``label_source`` string (``<NA>`` when empty), ``labelled_at``
  datetime64[ns, UTC] (``NaT`` when unlabelled), ``row`` int64;
- rounds, the learning curve (``RunDetail.to_pandas()``): one row per round, ``round``,
  ``labelled_count``, ``selected_count`` int64, ``test_accuracy``, ``test_macro_f1``,
  ``validation_accuracy``, ``validation_macro_f1``, ``agreement``, ``train_seconds``,
  ``score_seconds`` float64 (NaN where a round has no such metric), ``checkpoint_id`` string,
  ``started_at``/``finished_at`` datetime64[ns, UTC];
- scores (``Scores.to_pandas()``, ``score_pool(as_frame=True)``): ``predicted`` string, the
  uncertainties ``entropy``, ``margin``, ``least_confidence``, ``ratio`` float64, then one float64
  column ``p_<label>`` per class when probabilities were asked for; a pool's scores begin with
  ``sample_id`` int64 (and ``gold`` string for test/dev), a text's scores end with ``truncated`` bool.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lesslabels.client.errors import InvalidArgument
from lesslabels.common.errors import quote

if TYPE_CHECKING:
    from lesslabels.client.types import Sample, Scores
    from lesslabels.contract import PoolScores, Round

#: What to run when pandas is missing.
INSTALL = "pip install 'lesslabels[pandas]'"
#: Rows of a DataFrame encoded at a time when importing it.
IMPORT_ROWS = 5000


def pandas() -> Any:
    """The pandas module; ImportError naming the extra to install when it is missing."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(f"DataFrames need pandas, which is not installed: {INSTALL}") from None
    return pd


def is_frame(value: object) -> bool:
    """Whether ``value`` is a pandas DataFrame (without importing pandas when it is not loaded)."""
    return any(cls.__module__.split(".")[0] == "pandas" and cls.__name__ == "DataFrame" for cls in type(value).__mro__)


def _timestamps(pd: Any, values: Sequence[str]) -> Any:
    """RFC 3339 strings ("" = none) as datetime64[ns, UTC]."""
    return pd.to_datetime(pd.Series(list(values), dtype="string"), utc=True, format="ISO8601").astype(
        "datetime64[ns, UTC]"
    )


def _strings(pd: Any, values: Sequence[str]) -> Any:
    """Strings as the ``string`` dtype, "" as ``<NA>``."""
    return pd.Series([v or None for v in values], dtype="string")


def samples_frame(samples: Sequence[Sample]) -> Any:
    pd = pandas()
    return pd.DataFrame(
        {
            "id": pd.Series([s.id for s in samples], dtype="int64"),
            "text": pd.Series([s.text for s in samples], dtype="string"),
            "split": _strings(pd, [s.split for s in samples]),
            "label": _strings(pd, [s.label for s in samples]),
            "gold_label": _strings(pd, [s.gold_label for s in samples]),
            "annotator": _strings(pd, [s.annotator for s in samples]),
            "label_source": _strings(pd, [s.label_source for s in samples]),
            "labelled_at": _timestamps(pd, [s.labelled_at for s in samples]),
            "row": pd.Series([s.row for s in samples], dtype="int64"),
        }
    )


def rounds_frame(rounds: Sequence[Round]) -> Any:
    pd = pandas()

    def metric(values: list[float | None]) -> Any:
        return pd.Series([float("nan") if v is None else v for v in values], dtype="float64")

    return pd.DataFrame(
        {
            "round": pd.Series([r.index for r in rounds], dtype="int64"),
            "labelled_count": pd.Series([r.labelled_count for r in rounds], dtype="int64"),
            "selected_count": pd.Series([r.selected_count for r in rounds], dtype="int64"),
            "test_accuracy": metric([r.test.accuracy if r.test and r.test.count else None for r in rounds]),
            "test_macro_f1": metric([r.test.macro_f1 if r.test and r.test.count else None for r in rounds]),
            "validation_accuracy": metric(
                [r.validation.accuracy if r.validation and r.validation.count else None for r in rounds]
            ),
            "validation_macro_f1": metric(
                [r.validation.macro_f1 if r.validation and r.validation.count else None for r in rounds]
            ),
            "agreement": metric([r.agreement for r in rounds]),
            "train_seconds": metric([r.train_seconds for r in rounds]),
            "score_seconds": metric([r.score_seconds for r in rounds]),
            "checkpoint_id": _strings(pd, [r.checkpoint_id for r in rounds]),
            "started_at": _timestamps(pd, [r.started_at for r in rounds]),
            "finished_at": _timestamps(pd, [r.finished_at for r in rounds]),
        }
    )


def _score_columns(pd: Any, labels: Sequence[str], predicted: Any, uncertainty: Any, probabilities: Any) -> dict:
    columns: dict[str, Any] = {"predicted": pd.Series(list(predicted), dtype="string")}
    if uncertainty is not None:
        for name in ("entropy", "margin", "least_confidence", "ratio"):
            columns[name] = pd.Series(getattr(uncertainty, name), dtype="float64")
    if probabilities is not None and probabilities.size:
        for k, label in enumerate(labels):
            columns[f"p_{label}"] = pd.Series(probabilities[:, k], dtype="float64")
    return columns


def scores_frame(scores: Scores) -> Any:
    pd = pandas()
    columns = _score_columns(pd, scores.labels, scores.predicted, scores.uncertainty, scores.probabilities)
    columns["truncated"] = pd.Series(scores.truncated, dtype="bool")
    return pd.DataFrame(columns)


def pool_scores_frame(scores: PoolScores) -> Any:
    pd = pandas()
    columns = {"sample_id": pd.Series(scores.sample_ids, dtype="int64")}
    if scores.gold is not None:
        columns["gold"] = pd.Series(list(scores.gold), dtype="string")
    columns.update(_score_columns(pd, scores.labels, scores.predicted, scores.uncertainty, scores.probabilities))
    return pd.DataFrame(columns)


# ---------------------------------------------------------------- frames in


def _column(frame: Any, name: str | None, field: str) -> str | None:
    if name is None:
        return None
    if name not in frame.columns:
        shown = ", ".join(repr(c) for c in list(frame.columns)[:20])
        raise InvalidArgument(f"{field}={quote(name)}: the DataFrame has no such column (it has {shown})")
    return name


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages: 0, not np.int64(0))."""
    return value.item() if isinstance(value, np.generic) else value


def _first_bad(series: Any, ok: Any) -> tuple[int, Any, Any] | None:
    """(position, index label, value) of the first value of ``series`` for which ``ok`` is false."""
    good = series.map(ok)
    if bool(good.all()):
        return None
    position = int((~good.astype(bool)).to_numpy().argmax())
    return position, _plain(series.index[position]), _plain(series.iloc[position])


def _check_values(frame: Any, text: str | None, label: str | None, pd: Any) -> None:
    """Texts are non-empty strings and labels strings or missing: refused here, before anything is
    sent, naming the first bad row by position and index."""
    if text is not None:
        bad = _first_bad(frame[text], lambda v: isinstance(v, str))
        if bad is not None:
            position, index, value = bad
            what = "missing" if pd.isna(value) else f"a {type(value).__name__}, not a string"
            raise InvalidArgument(f"row {position + 1} (index {index!r}): the text ({text!r}) is {what}")
    if label is not None:
        bad = _first_bad(frame[label], lambda v: isinstance(v, str) or v is None or v is pd.NA or v != v)
        if bad is not None:
            position, index, value = bad
            raise InvalidArgument(
                f"row {position + 1} (index {index!r}): the label ({label!r}) is a {type(value).__name__} "
                f"({value!r}), not a class name; map class indices to their names first, e.g. "
                f"df[{label!r}].map(dict(enumerate(names)))"
            )


def frame_columns(
    frame: Any, *, text: str | None, label: str | None, id: str | None, split: str | None
) -> tuple[Any, dict[str, str]]:
    """The part of ``frame`` to send and the column flags naming it: only the named columns when
    ``text`` is named, every column otherwise (the pool then finds them by their names)."""
    pd = pandas()
    if not is_frame(frame):
        raise InvalidArgument(f"expected a pandas DataFrame, got {type(frame).__name__}")
    odd = [c for c in frame.columns if not isinstance(c, str)]
    if odd:
        raise InvalidArgument(
            f"column names must be strings, got {quote(odd)}; rename them, e.g. df.columns.astype(str)"
        )
    named = {
        "text": _column(frame, text, "text"),
        "label": _column(frame, label, "label"),
        "id": _column(frame, id, "id"),
        "split": _column(frame, split, "split"),
    }
    if text is not None:
        chosen = [c for c in named.values() if c is not None]
        frame = frame[list(dict.fromkeys(chosen))]
    if split is not None and split != "split":
        frame = frame.rename(columns={split: "split"})  # the pool reads a split from a column so named
    if len(frame) == 0:
        raise InvalidArgument("the DataFrame has no rows")
    _check_values(frame, text, label, pd)
    flags = {"text_column": text or "", "label_column": label or "", "id_column": id or ""}
    return frame, flags


def frame_to_jsonl(frame: Any, rows: int = IMPORT_ROWS) -> Iterator[bytes]:
    """``frame`` as JSON lines (one object a row, missing values null), ``rows`` rows at a time."""
    for start in range(0, len(frame), rows):
        lines = frame.iloc[start : start + rows].to_json(orient="records", lines=True, force_ascii=True)
        yield (lines.rstrip("\n") + "\n").encode()


_ROW = re.compile(r"^row (\d+)\b")


def where_in_frame(message: str, frame: Any) -> str | None:
    """A note naming the DataFrame row a pool message's "row N" is (N counts the rows sent, from 1)."""
    found = _ROW.match(message)
    if found is None:
        return None
    position = int(found.group(1)) - 1
    if not 0 <= position < len(frame):
        return None
    index = _plain(frame.index[position])
    return f"row {position + 1} is the DataFrame's row {position} (df.iloc[{position}], index {index!r})"
