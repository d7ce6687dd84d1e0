"""The pool's tables (SQLAlchemy 2 mapped classes). Schema changes go through Alembic (services/pool/migrations)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lesslabels.common.timeutil import utcnow

# Label scopes: labels acquired by a run are visible to that run only; labels given to the
# dataset itself (a human labelling outside runs) live in the dataset scope.
DATASET_SCOPE = "dataset"
REQUEST_ID_MAX = 128


def run_scope(run_id: int) -> str:
    return f"run:{int(run_id)}" if run_id else DATASET_SCOPE


class Base(DeclarativeBase):
    pass


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # JSON list of allowed labels, in first-seen order.
    labels_json: Mapped[str] = mapped_column(Text, default="[]")
    # True when the label set was given at creation; imports may then not add labels.
    labels_fixed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (
        Index("ix_samples_dataset_split_id", "dataset_id", "split", "id"),
        Index("ix_samples_dataset_external_id", "dataset_id", "external_id"),
        Index("ix_samples_dataset_text_hash", "dataset_id", "text_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    # Row number within its import file (0-based, header excluded).
    row: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    # lesslabels.pool.texthash.text_hash(text): the indexed duplicate check of imports. Always
    # written; nullable only so that migration 0006 could add it without rebuilding the table.
    text_hash: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # "train", "test" or "dev".
    split: Mapped[str] = mapped_column(String(8))
    # The hidden gold label (the simulated oracle); never handed to training unless acquired.
    gold_label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The user's own id for the text (an import's id column), kept and exported; unique per dataset.
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)


class SampleCount(Base):
    """How many samples a dataset holds per (split, gold label), kept by the writes that add or remove
    samples (lesslabels.pool.counts), so that reading the counts does not scan the samples."""

    __tablename__ = "sample_counts"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    split: Mapped[str] = mapped_column(String(8), primary_key=True)
    # "" for the samples without a gold label.
    gold_label: Mapped[str] = mapped_column(String(128), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class LabelCount(Base):
    """How many samples of a dataset carry each label in force in a scope, per split: the current
    labels counted, kept by the writes that change them (lesslabels.pool.counts)."""

    __tablename__ = "label_counts"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    split: Mapped[str] = mapped_column(String(8), primary_key=True)
    label: Mapped[str] = mapped_column(String(128), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class LabelEvent(Base):
    """Append-only history of every label given."""

    __tablename__ = "label_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(128))
    # "seed", "oracle" or "human".
    source: Mapped[str] = mapped_column(String(16))
    annotator: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Unique: a retried submission with the same key adds nothing.
    idempotency_key: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)


class CurrentLabel(Base):
    """The label in force per (sample, scope): the latest event. One row at most, by primary key."""

    __tablename__ = "current_labels"
    __table_args__ = (Index("ix_current_labels_scope", "scope", "sample_id"),)

    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[int] = mapped_column(ForeignKey("label_events.id"))


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    # RunConfig as JSON (protobuf JSON mapping), as RunConfig.validate passed it (contract.wire).
    config_json: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(32))
    round: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    stop_reason: Mapped[str] = mapped_column(Text, default="")
    # The StartRun idempotency key (NULL when none was given).
    request_id: Mapped[str | None] = mapped_column(String(REQUEST_ID_MAX), nullable=True, unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Round(Base):
    __tablename__ = "rounds"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    labelled_count: Mapped[int] = mapped_column(Integer, default=0)
    train_job_id: Mapped[str] = mapped_column(String(128), default="")
    checkpoint_id: Mapped[str] = mapped_column(String(128), default="")
    # EvalMetrics as JSON.
    test_metrics_json: Mapped[str] = mapped_column(Text, default="{}")
    validation_metrics_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    #: The round model's paired comparison with the model kept before it (``Comparison.as_dict``), "{}" for none.
    comparison_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    agreement: Mapped[float] = mapped_column(Float, default=0.0)
    selected_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    train_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    score_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Acquisition(Base):
    """A sample selected by a run. Unique per (run, sample): nothing is ever selected twice."""

    __tablename__ = "acquisitions"
    __table_args__ = (
        UniqueConstraint("run_id", "sample_id", name="uq_acquisitions_run_sample"),
        Index("ix_acquisitions_run_round", "run_id", "round"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(32))
    score: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ImportRecord(Base):
    """An import that carried a request id: a retry with the same id (and the same bytes) is
    answered with this summary and stores nothing again. Kept with its dataset."""

    __tablename__ = "imports"
    __table_args__ = (UniqueConstraint("dataset_id", "request_id", name="uq_imports_dataset_request"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_MAX))
    # SHA-256 (hex) of the imported file's bytes: the same id with other bytes is refused.
    content_sha256: Mapped[str] = mapped_column(String(64))
    # The import's ImportResult as JSON (lesslabels.pool.imports).
    summary_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
