"""One run's report: its rounds as table rows, printed, or written as CSV or JSON.

Pure (numbers in, text out) and knows nothing of gRPC: the commands convert ``Round`` messages
with :func:`rows_from_rounds` first. Learning-curve math is in ``curves``, comparisons of strategies
across seeds in ``comparison``, plots in ``plots``.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterable, Sequence

from lesslabels.common import spreadsheet
from lesslabels.client import kept_round


@dataclasses.dataclass(frozen=True)
class RoundRow:
    """One round of a run as the report shows it."""

    round: int
    labels: int
    pool_fraction: float  # labels / pool size, 0 when the pool size is unknown
    accuracy: float
    macro_f1: float
    agreement: float
    selected: int
    train_seconds: float
    score_seconds: float
    validation_accuracy: float | None = None  # on the round's validation data; None without any
    kept: bool = False  # the run's model: its best round by validation (never test), else its latest


COLUMNS = (
    "round",
    "labels",
    "% of pool",
    "accuracy",
    "macro-F1",
    "agreement",
    "selected",
    "train s",
    "score s",
    "val acc",
    "model",
)


def rows_from_rounds(rounds: Iterable, pool_size: int) -> list[RoundRow]:
    """The SDK's ``Round`` results -> rows sorted by round index.

    Rounds without test metrics yet (``test`` None or empty) are left out: a curve point needs both axes.
    """
    rounds = list(rounds)
    kept = kept_round(rounds)
    rows = []
    for r in rounds:
        if r.test is None or not r.test.count:
            continue
        rows.append(
            RoundRow(
                round=int(r.index),
                labels=int(r.labelled_count),
                pool_fraction=(r.labelled_count / pool_size) if pool_size > 0 else 0.0,
                accuracy=float(r.test.accuracy),
                macro_f1=float(r.test.macro_f1),
                agreement=float(r.agreement),
                selected=int(r.selected_count),
                train_seconds=float(r.train_seconds),
                score_seconds=float(r.score_seconds),
                validation_accuracy=float(r.validation.accuracy) if r.validation and r.validation.count else None,
                kept=kept is not None and r.index == kept.index,
            )
        )
    return sorted(rows, key=lambda row: row.round)


def row_cells(row: RoundRow) -> list[str]:
    return [
        str(row.round),
        str(row.labels),
        f"{100 * row.pool_fraction:.1f}%",
        f"{100 * row.accuracy:.2f}",
        f"{100 * row.macro_f1:.2f}",
        f"{100 * row.agreement:.1f}" if row.round > 0 and row.agreement > 0 else "-",
        str(row.selected),
        f"{row.train_seconds:.1f}",
        f"{row.score_seconds:.1f}",
        f"{100 * row.validation_accuracy:.2f}" if row.validation_accuracy is not None else "-",
        "kept" if row.kept else "",
    ]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width text table, numbers right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=False)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=False))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=False)) for row in rows]
    return "\n".join(lines)


def kept_model_line(rounds: Sequence) -> str:
    """Which round's model the run keeps, and how to ask the scorer for it."""
    kept = kept_round(rounds)
    if kept is None:
        return "model: none yet"
    paired = kept.comparison
    if paired is not None:
        why = (
            f"it replaced checkpoint {paired.against} on the same {paired.count} held-out texts: "
            f"{paired.new_only} right only for it, {paired.kept_only} only for the other"
        )
    elif kept.validation and kept.validation.count:
        why = f"validation accuracy {100 * kept.validation.accuracy:.2f} on {kept.validation.count} texts"
    else:
        why = "the latest: no round has validation metrics"
    passed_over = [r.index for r in rounds if r.index > kept.index and r.checkpoint_id]
    if passed_over:
        why += f"; later rounds {', '.join(map(str, passed_over))} were not better on held-out labels"
    return (
        f"model: round {kept.index}, checkpoint {kept.checkpoint_id} ({why}); the scorer serves it as "
        f"best_of_run={kept.run_id}, OIP model run-{kept.run_id} version best"
    )


def rounds_table(rows: Sequence[RoundRow]) -> str:
    return format_table(COLUMNS, [row_cells(r) for r in rows])


def rows_to_records(rows: Sequence[RoundRow]) -> list[dict]:
    return [dataclasses.asdict(r) for r in rows]


def rows_to_csv(rows: Sequence[RoundRow]) -> str:
    out = io.StringIO()
    fields = [f.name for f in dataclasses.fields(RoundRow)]
    writer = spreadsheet.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows_to_records(rows))
    return out.getvalue()


def rows_to_json(rows: Sequence[RoundRow], **extra) -> str:
    return json.dumps({**extra, "rounds": rows_to_records(rows)}, indent=2)
