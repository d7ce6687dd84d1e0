"""The pool's own values, where the contract has no type for them (datasets, samples, imports, counts,
a stored run): plain dataclasses, no SQLAlchemy rows, no protobuf. Rounds, acquisitions and label
results are the contract's (``lesslabels.contract``).

services/pool/convert.py converts these to and from protobuf at the edge; the contract's types go
through ``lesslabels.contract.wire``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from lesslabels.contract import Run, RunConfig
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


@dataclasses.dataclass(frozen=True)
class AnnotatorRecord:
    """Who gave labels in force in a scope: how many, the latest when."""

    name: str
    labels: int
    last_labelled_at: dt.datetime | None


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
    # Where the label in force came from (empty when unlabelled).
    annotator: str = ""
    label_source: str = ""  # seed, oracle or human
    labelled_at: dt.datetime | None = None


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
    replayed: bool = False  # an earlier import's summary (same request id): nothing stored this time


@dataclasses.dataclass
class SplitCount:
    total: int = 0
    labelled: int = 0
    labelled_by_label: dict[str, int] = dataclasses.field(default_factory=dict)
    gold_by_label: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class StoredRun:
    """A run as the store keeps it: ``lesslabels.contract.Run`` but for the configuration, which stays the
    stored JSON text (protobuf JSON of a RunConfig, written by the run store's CreateRun). The run
    store's servicer reads it with ``lesslabels.contract.wire`` and hands out ``as_run(config)``: the
    core neither parses nor checks a configuration (see ``RunsPart.fail_bad_configs``)."""

    id: int
    dataset: str
    config_json: str
    state: str
    step: str
    round: int
    error: str = ""
    stop_reason: str = ""
    created_at: str = ""  # RFC 3339
    updated_at: str = ""
    labelled_count: int = 0
    pool_size: int = 0

    def as_run(self, config: RunConfig) -> Run:
        return Run(
            id=self.id,
            config=config,
            state=self.state,
            step=self.step,
            round=self.round,
            error=self.error,
            labelled_count=self.labelled_count,
            pool_size=self.pool_size,
            stop_reason=self.stop_reason,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
