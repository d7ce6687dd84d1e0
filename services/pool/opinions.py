"""Texts two or more people labelled: each person's latest label, the latest review, and whether the
text is flagged (people disagree and no review resolved it). Derived from the label events of the
dataset's scope, so a flag lasts as long as the events do: across restarts, with nothing else kept."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from lesslabels.pool.tables import CurrentLabel, LabelEvent, Sample, run_scope


@dataclasses.dataclass(frozen=True)
class Opinion:
    annotator: str
    label: str
    labelled_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class TextOpinions:
    sample_id: int
    text: str
    label: str  # in force in the dataset's scope
    opinions: tuple[Opinion, ...]  # each person's latest label, oldest first
    disputed: bool
    review: Opinion | None = None


def label_opinions(session: Session, dataset_id: int, *, disputed_only: bool = False) -> list[TextOpinions]:
    """The dataset's texts with human labels from two or more named people, by sample id."""
    scope = run_scope(0)
    named = (
        LabelEvent.scope == scope,
        LabelEvent.source == "human",
        LabelEvent.annotator != "",
        Sample.dataset_id == dataset_id,
    )
    several = (
        select(LabelEvent.sample_id)
        .join(Sample, Sample.id == LabelEvent.sample_id)
        .where(*named)
        .group_by(LabelEvent.sample_id)
        .having(func.count(distinct(LabelEvent.annotator)) >= 2)
    )
    events = session.execute(
        select(LabelEvent.id, LabelEvent.sample_id, LabelEvent.label, LabelEvent.source, LabelEvent.annotator)
        .add_columns(LabelEvent.created_at)
        .where(
            LabelEvent.scope == scope,
            LabelEvent.source.in_(("human", "review")),
            LabelEvent.sample_id.in_(several),
        )
        .order_by(LabelEvent.sample_id, LabelEvent.id)
    ).all()
    by_sample: dict[int, list] = collections.defaultdict(list)
    for row in events:
        by_sample[row.sample_id].append(row)
    if not by_sample:
        return []
    texts = {
        sample_id: text
        for sample_id, text in session.execute(select(Sample.id, Sample.text).where(Sample.id.in_(list(by_sample))))
    }
    in_force = {
        sample_id: label
        for sample_id, label in session.execute(
            select(CurrentLabel.sample_id, CurrentLabel.label).where(
                CurrentLabel.scope == scope, CurrentLabel.sample_id.in_(list(by_sample))
            )
        )
    }
    found = []
    for sample_id, rows in sorted(by_sample.items()):
        latest: dict[str, tuple[int, Opinion]] = {}
        review: tuple[int, Opinion] | None = None
        for row in rows:
            opinion = Opinion(row.annotator or "", row.label, row.created_at)
            if row.source == "review":
                review = (row.id, opinion)
            elif row.annotator:
                latest.pop(row.annotator, None)  # re-inserted: the dict keeps the order of latest labels
                latest[row.annotator] = (row.id, opinion)
        if review is None:
            disputed = len({o.label for _, o in latest.values()}) > 1
        else:
            disputed = any(event_id > review[0] and o.label != review[1].label for event_id, o in latest.values())
        if disputed_only and not disputed:
            continue
        found.append(
            TextOpinions(
                sample_id=sample_id,
                text=texts.get(sample_id, ""),
                label=in_force.get(sample_id, ""),
                opinions=tuple(o for _, o in latest.values()),
                disputed=disputed,
                review=review[1] if review else None,
            )
        )
    return found
