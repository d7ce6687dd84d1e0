"""The pool's core: every operation of the pool service, on SQLAlchemy, knowing nothing of gRPC.

Values cross this boundary as the contract's dataclasses (lesslabels.contract: Round, Acquisition,
LabelResult), the pool's own where the contract has none (records.py) and strings ("train", "oracle",
"RUNNING", the names of lesslabels.contract.vocabulary); services/pool/servicer.py (PoolService) and
run_servicer.py (RunStore) convert them to and from protobuf. ``PoolStore`` is composed of one part per area (datasets, imports, samples, labels, runs) over
the sessions it owns; the records and label helpers are re-exported here for the store's callers.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lesslabels.common import metrics
from lesslabels.pool.base import NAME_RE
from lesslabels.pool.datasets import DatasetsPart
from lesslabels.pool.db import make_engine, migrate
from lesslabels.pool.imports import ImportsPart
from lesslabels.pool.labels import LabelsPart
from lesslabels.pool.labelset import MAX_LABEL_LENGTH, check_not_near_duplicate, label_key
from lesslabels.pool.records import (
    AnnotatorRecord,
    DatasetInfo,
    DuplicateInfo,
    ImportResult,
    LabelEventRecord,
    SampleRecord,
    SplitCount,
    StoredRun,
)
from lesslabels.pool.runs import RunsPart
from lesslabels.pool.samples import MAX_PAGE, SamplesPart

__all__ = [
    "MAX_LABEL_LENGTH",
    "MAX_PAGE",
    "NAME_RE",
    "AnnotatorRecord",
    "DatasetInfo",
    "DuplicateInfo",
    "ImportResult",
    "LabelEventRecord",
    "PoolStore",
    "SampleRecord",
    "SplitCount",
    "StoredRun",
    "check_not_near_duplicate",
    "label_key",
]

log = logging.getLogger(__name__)


class PoolStore(DatasetsPart, ImportsPart, SamplesPart, LabelsPart, RunsPart):
    """All pool operations. Thread-safe: each call runs in its own short transaction.

    The operations live in their parts (datasets.py, imports.py, samples.py, labels.py, runs.py); the store owns
    the engine and the two ways they reach it: ``_reading()`` and ``_writing(fn)``, retried when a
    concurrent writer won a race."""

    def __init__(self, database_url: str, *, migrate_schema: bool = True):
        if migrate_schema:
            migrate(database_url)
        self.engine = make_engine(database_url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(write=True), expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # -- sessions -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Session]:
        with metrics.POOL_DB_SECONDS.labels("read").time(), self._read() as session, session.begin():
            yield session

    def _writing(self, fn, *, attempts: int = 6):
        """Run ``fn(session)`` in a write transaction, retried when it lost a race.

        A concurrent writer can win a uniqueness race (two submissions of the same label,
        same idempotency key, same new dataset) or a lock; the retry then reads what the
        winner wrote and reports it, so the outcome is as if the calls had run in turn.
        """
        with metrics.POOL_DB_SECONDS.labels("write").time():
            return self._write_with_retries(fn, attempts)

    def _write_with_retries(self, fn, attempts: int):
        for attempt in range(attempts):
            try:
                with self._write() as session, session.begin():
                    return fn(session)
            except (IntegrityError, OperationalError) as exc:
                text = str(exc).lower()
                transient = isinstance(exc, IntegrityError) or any(
                    word in text for word in ("locked", "deadlock", "could not serialize")
                )
                if attempt == attempts - 1 or not transient:
                    raise
                log.info("event=write_retry attempt=%d reason=%s", attempt + 1, type(exc.orig).__name__)
                time.sleep(0.02 * (attempt + 1))
