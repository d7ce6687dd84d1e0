"""The values the pool's core hands out and takes in: plain dataclasses, no SQLAlchemy rows, no protobuf.

services/pool/convert.py converts them to and from protobuf at the edge.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from lesslabels.pool import importers


@dataclasses.dataclass
class DatasetInfo:
    name: str
    description: str
    labels: list[str]
    counts: dict[str, int]  # per split
    labelled: int
    created_at: dt.datetime


@dataclasses.dataclass
class LabelEventRecord:
    sample_id: int
    label: str
    source: str
    annotator: str
    created_at: dt.datetime


@dataclasses.dataclass
class SampleRecord:
    id: int
    dataset: str
    text: str
    split: str
    row: int
    label: str = ""
    gold_label: str = ""
    external_id: str = ""  # the user's own id, from the import's id column


@dataclasses.dataclass
class DuplicateInfo:
    text: str
    rows: list[int]
    first_row: int  # -1 when the text was already in the dataset


@dataclasses.dataclass
class ImportResult:
    dataset: str
    imported: int
    by_label: dict[str, int]
    duplicates: list[DuplicateInfo]
    format: importers.Format
    by_split: dict[str, int] = dataclasses.field(default_factory=dict)
    columns: dict[str, str] = dataclasses.field(default_factory=dict)  # field -> column (or key) read
    checked_only: bool = False  # a dry run: nothing was stored
    duplicate_rows: int = 0  # rows repeating a text, all of them (``duplicates`` names the first)


@dataclasses.dataclass
class LabelResult:
    recorded: int = 0
    unchanged: int = 0
    changed: int = 0
    labels: list[tuple[int, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SplitCount:
    total: int = 0
    labelled: int = 0
    labelled_by_label: dict[str, int] = dataclasses.field(default_factory=dict)
    gold_by_label: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunRecord:
    id: int
    dataset: str
    config_json: str
    state: str
    step: str
    round: int
    error: str
    stop_reason: str
    created_at: dt.datetime
    updated_at: dt.datetime
    labelled_count: int
    pool_size: int


@dataclasses.dataclass
class RoundRecord:
    run_id: int
    index: int
    labelled_count: int = 0
    train_job_id: str = ""
    checkpoint_id: str = ""
    test_metrics: dict = dataclasses.field(default_factory=dict)
    agreement: float = 0.0
    selected_count: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    train_seconds: float = 0.0
    score_seconds: float = 0.0
    validation_metrics: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class AcquisitionRecord:
    sample_id: int
    round: int
    strategy: str
    score: float
    label: str = ""
    text: str = ""
