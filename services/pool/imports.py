"""Imports: a file's rows stored in one transaction as they are read, all of them or none.

Rows are parsed and inserted a chunk at a time (``importers.CHUNK_ROWS``, fewer for long texts), so an
import holds one chunk, never the file. What
needs every row is asked of the database once they are all in, inside the same transaction (a
refusal rolls everything back): ids repeated within the file or already in the dataset, and the
texts the dataset holds twice (found by the (dataset_id, text_hash) index; the texts decide).
The import's rows are the dataset's rows past the largest sample id stored before it: the
dataset's row is locked for the import (SQLite has one writer anyway), so no other import adds to
the dataset meanwhile.

An import stops, rolled back, when ``stopped()`` turns true (its call was cancelled: the caller
went away, or the server is shutting down) at a batch or just before it commits, so a caller that
is told the call failed finds nothing stored. An import with a request id is recorded with its
summary in the same transaction: a retry with that id finds it and stores nothing again.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import heapq
import io
import json
import logging
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from sqlalchemy import and_, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from lesslabels.common import errors, metrics
from lesslabels.contract.vocabulary import SPLITS
from lesslabels.pool import counts, importers
from lesslabels.pool.base import NAME_RE, StorePart, find_dataset
from lesslabels.pool.labelset import check_not_near_duplicate, similar_labels
from lesslabels.pool.tables import REQUEST_ID_MAX, Dataset, ImportRecord, Sample
from lesslabels.pool.records import DuplicateInfo, ImportResult
from lesslabels.pool.texthash import text_hash

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: An import's summary names the first REPORTED_DUPLICATES repeated texts (in row order) and the
#: first REPORTED_ROWS rows of each; its duplicate_rows counts them all. Re-importing a million-row
#: file stays a small reply.
REPORTED_DUPLICATES = 100
REPORTED_ROWS = 100
#: Characters of each repeated text the summary quotes (a text may have 100,000).
REPORTED_TEXT_CHARS = 200
#: Hashes looked up in one query when reading the rows of duplicate texts.
_HASHES_PER_QUERY = 500


@dataclasses.dataclass(frozen=True)
class ImportRequest:
    """Who is importing: the caller's idempotency key ("" = none), the SHA-256 (hex) of the file's
    bytes, and ``stopped()``, true once the call is over (cancelled, or the server stopping)."""

    request_id: str = ""
    content_sha256: str = ""
    stopped: Callable[[], bool] = lambda: False

    def check_stopped(self) -> None:
        if self.stopped():
            raise errors.Cancelled("the import was stopped before it was stored (its call ended): nothing was stored")


class _Checked(Exception):
    """Raised out of a check-only import's transaction so that nothing it did is kept."""

    def __init__(self, result: ImportResult):
        super().__init__("check only")
        self.result = result


class ImportsPart(StorePart):
    """The import operation of ``PoolStore``."""

    def import_samples(
        self,
        dataset_name: str,
        data: bytes | IO[bytes],
        *,
        fmt: importers.Format = importers.Format.AUTO,
        default_split: str = "train",
        create_dataset: bool = False,
        keep_whitespace: bool = False,
        columns: importers.Columns = importers.DEFAULT_COLUMNS,
        allow_similar_labels: bool = False,
        check_only: bool = False,
        request: ImportRequest = ImportRequest(),
    ) -> ImportResult:
        """Import a file (its bytes, or a seekable binary file, read from its start several times) in
        one transaction: all rows are stored or none is.

        ``check_only`` does every check and reports what would be stored, then stores nothing.
        ``request`` carries the idempotency key (a repeat answers the first import's summary,
        ``replayed``) and the signal that stops the import (Cancelled, nothing stored)."""
        if default_split not in SPLITS:
            raise errors.InvalidArgument(f"unknown split {errors.quote(default_split)}")
        if len(request.request_id) > REQUEST_ID_MAX:
            raise errors.InvalidArgument(
                f"request_id is {len(request.request_id)} characters; at most {REQUEST_ID_MAX}"
            )
        if not create_dataset or request.request_id:
            with self._reading() as session:
                dataset = session.scalar(select(Dataset).where(Dataset.name == dataset_name))
                if dataset is None and not create_dataset:
                    find_dataset(session, dataset_name)  # NOT_FOUND before spending time on parsing
                earlier = _earlier_import(session, dataset, request) if not check_only else None
            if earlier is not None:
                return earlier  # a retry: answered before the file is even parsed
        source = importers.open_import(data, fmt, keep_whitespace=keep_whitespace, columns=columns)

        def do_import(session: Session) -> ImportResult:
            dataset = _locked_dataset(session, dataset_name, create_dataset)
            earlier = _earlier_import(session, dataset, request) if not check_only else None
            if earlier is not None:
                return earlier  # the same request, stored by a call that ended while this one waited
            result = _store(session, dataset, source, default_split, allow_similar_labels, request.check_stopped)
            if check_only:
                # Rolls the transaction back: the rows, and a created dataset, are not kept.
                raise _Checked(dataclasses.replace(result, checked_only=True))
            if request.request_id:
                session.add(
                    ImportRecord(
                        dataset_id=dataset.id,
                        request_id=request.request_id,
                        content_sha256=request.content_sha256,
                        summary_json=_result_json(result),
                    )
                )
                session.flush()
            request.check_stopped()  # the last moment a stopped call can still leave nothing behind
            return result

        try:
            result = self._writing(do_import)
        except _Checked as checked:
            return checked.result
        except IntegrityError as exc:
            raise errors.AlreadyExists(
                f"dataset {errors.quote(dataset_name)} was created concurrently: {exc.orig}"
            ) from None
        if result.replayed:
            log.info("event=import_replayed dataset=%s request_id=%s", dataset_name, request.request_id)
            return result
        log.info(
            "event=imported dataset=%s rows=%d duplicates=%d", dataset_name, result.imported, result.duplicate_rows
        )
        metrics.POOL_IMPORTED_ROWS.inc(result.imported)
        metrics.POOL_IMPORTED_BYTES.inc(_size(data))
        return result


def _size(data: bytes | IO[bytes]) -> int:
    """Bytes of an imported file (a file object: to its end)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    return data.seek(0, io.SEEK_END)


def _earlier_import(session: Session, dataset: Dataset | None, request: ImportRequest) -> ImportResult | None:
    """The summary of the import ``request`` repeats (its request id, into ``dataset``), replayed;
    None when it repeats none. The same id with other bytes is AlreadyExists."""
    if dataset is None or not request.request_id:
        return None
    record = session.scalar(
        select(ImportRecord).where(ImportRecord.dataset_id == dataset.id, ImportRecord.request_id == request.request_id)
    )
    if record is None:
        return None
    if record.content_sha256 != request.content_sha256:
        raise errors.AlreadyExists(
            f"request_id {errors.quote(request.request_id)} was used by an earlier import into dataset "
            f"{errors.quote(dataset.name)} with other bytes; give each import its own request_id"
        )
    return dataclasses.replace(_result_from_json(record.summary_json), replayed=True)


def _result_json(result: ImportResult) -> str:
    fields = dataclasses.asdict(result)
    fields["format"] = result.format.value
    return json.dumps(fields)


def _result_from_json(text: str) -> ImportResult:
    fields = json.loads(text)
    fields["duplicates"] = [DuplicateInfo(**d) for d in fields["duplicates"]]
    fields["format"] = importers.Format(fields["format"])
    return ImportResult(**fields)


def _locked_dataset(session: Session, name: str, create: bool) -> Dataset:
    """The dataset to import into, locked until the transaction ends; created when asked to."""
    dataset = session.scalar(select(Dataset).where(Dataset.name == name).with_for_update(key_share=True))
    if dataset is not None:
        return dataset
    if not create:
        raise errors.NotFound(f"dataset {errors.quote(name)} not found (create it first, or ask to create it)")
    if not NAME_RE.match(name or ""):
        raise errors.InvalidArgument(f"invalid dataset name {errors.quote(name)}")
    dataset = Dataset(name=name, description="", labels_json="[]", labels_fixed=False)
    session.add(dataset)
    session.flush()
    return dataset


def _store(
    session: Session,
    dataset: Dataset,
    source: importers.ImportFile,
    default_split: str,
    allow_similar_labels: bool,
    check_stopped: Callable[[], None] = lambda: None,
) -> ImportResult:
    """Insert every row of ``source``, checking each as it comes, then what needs them all;
    ``check_stopped()`` (raising to stop) is called at each batch."""
    stored_before = session.scalar(select(func.max(Sample.id))) or 0
    labels = _Labels(dataset)
    by_label: collections.Counter[str] = collections.Counter()
    by_split: collections.Counter[str] = collections.Counter()
    by_split_gold: collections.Counter[tuple[str, str]] = collections.Counter()
    with_ids = False
    with contextlib.closing(source.frames()) as frames:
        for frame in frames:
            check_stopped()
            labels.add(frame)
            texts, gold = frame["text"].tolist(), frame["label"].tolist()
            splits = [split or default_split for split in frame["split"]]
            by_label.update(label or "" for label in gold)
            by_split.update(splits)
            by_split_gold.update(zip(splits, (label or "" for label in gold), strict=True))
            with_ids = with_ids or bool(frame["external_id"].notna().any())
            values = [
                dict(
                    dataset_id=dataset.id,
                    row=row,
                    text=text,
                    text_hash=text_hash(text),
                    split=split,
                    gold_label=label,
                    external_id=own_id,
                )
                for row, text, split, label, own_id in zip(
                    frame["row"].tolist(), texts, splits, gold, frame["external_id"].tolist(), strict=True
                )
            ]
            session.execute(insert(Sample), values)
    check_stopped()
    # In this transaction: a refusal below rolls the counts back with the rows.
    counts.add_samples(session, dataset.id, by_split_gold)
    _analyze(session)
    if with_ids:
        _refuse_repeated_ids(session, dataset.id, stored_before)
    if not allow_similar_labels and not dataset.labels_fixed:
        labels.refuse_similar()
    dataset.labels_json = json.dumps(labels.names)
    if with_ids:
        _refuse_known_ids(session, dataset.id, stored_before)
    duplicates, repeated_rows = _find_duplicates(session, dataset.id, stored_before)
    return ImportResult(
        dataset.name,
        by_split.total(),
        dict(by_label),
        duplicates,
        source.format,
        dict(by_split),
        source.columns,
        duplicate_rows=repeated_rows,
    )


def _analyze(session: Session) -> None:
    """On PostgreSQL, bring the statistics of the samples up to date with the rows this transaction
    inserted (ANALYZE counts them): without, the planner takes them for a handful and plans the
    queries over them as nested loops, quadratic in the import's size. SQLite plans without
    statistics. (ANALYZE waits for another import's to commit: imports end one at a time.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE samples"))


class _Labels:
    """The dataset's label set as an import adds to it, row by row."""

    def __init__(self, dataset: Dataset):
        self.names: list[str] = json.loads(dataset.labels_json)
        self._stored = len(self.names)
        self._known = set(self.names)
        self._fixed = dataset.labels_fixed

    def add(self, frame: pd.DataFrame) -> None:
        """Take the chunk's new labels, in the order of their first rows: refused outside a fixed
        label set, or as a near-duplicate of one."""
        for label, row in frame[["label", "row"]].dropna().drop_duplicates("label").itertuples(index=False):
            if label in self._known:
                continue
            if self._fixed:
                raise errors.InvalidArgument(
                    f"row {row + 1}: label {errors.quote(label)} is not in the dataset's label set {self.names}"
                )
            check_not_near_duplicate(label, self.names, f"row {row + 1}")
            self.names.append(label)
            self._known.add(label)

    def refuse_similar(self) -> None:
        """Refuse new labels that look like one class spelled differently (from each other or a stored one)."""
        pairs = similar_labels(self.names[self._stored :], self.names[: self._stored])
        if pairs:
            shown = "; ".join(f"{a!r} and {b!r}" for a, b in pairs[:10])
            raise errors.InvalidArgument(
                f"label names that look like one class spelled differently: {shown} (they would become "
                f"separate classes); fix the spelling in the file, or pass --allow-similar-labels if they are "
                f"really different classes"
            )


def _refuse_repeated_ids(session: Session, dataset_id: int, stored_before: int) -> None:
    """Refuse the first row (in file order) whose id an earlier row of the file has."""
    new = and_(Sample.dataset_id == dataset_id, Sample.id > stored_before)
    repeated = (
        select(Sample.external_id)
        .where(new, Sample.external_id.is_not(None))
        .group_by(Sample.external_id)
        .having(func.count() > 1)
    )
    first_row: dict[str | None, int] = {}
    for row, external_id in session.execute(
        select(Sample.row, Sample.external_id).where(new, Sample.external_id.in_(repeated)).order_by(Sample.row)
    ):
        if external_id in first_row:
            raise errors.InvalidArgument(
                f"row {row + 1}: id {external_id!r} repeats the id of row {first_row[external_id] + 1}"
            )
        first_row[external_id] = row


def _refuse_known_ids(session: Session, dataset_id: int, stored_before: int) -> None:
    """Refuse the first row whose id a sample stored before the import has."""
    stored = aliased(Sample)
    taken = session.execute(
        select(Sample.row, Sample.external_id)
        .join(
            stored,
            and_(
                stored.dataset_id == dataset_id,
                stored.external_id == Sample.external_id,
                stored.id <= stored_before,
            ),
        )
        .where(Sample.dataset_id == dataset_id, Sample.id > stored_before)
        .order_by(Sample.row)
        .limit(1)
    ).first()
    if taken is not None:
        raise errors.InvalidArgument(f"row {taken.row + 1}: id {taken.external_id!r} is already in the dataset")


def _find_duplicates(session: Session, dataset_id: int, stored_before: int) -> tuple[list[DuplicateInfo], int]:
    """The import's texts that the dataset holds more than once: the first REPORTED_DUPLICATES of
    them in the order of their first row, each with its first REPORTED_ROWS rows, and the number
    of repeated rows in all.

    A text stored before the import lists the rows of the file that have it (``first_row`` -1);
    a text repeated within the file lists its later rows after the first."""
    earliest: list[tuple[int, DuplicateInfo]] = []  # a heap of (-first row, text): the earliest kept
    repeated_rows = 0
    hashes = _duplicate_hashes(session, dataset_id, stored_before)
    for start in range(0, len(hashes), _HASHES_PER_QUERY):
        stored: set[str] = set()
        rows: dict[str, list[int]] = collections.defaultdict(list)
        for sample_id, row, sample_text in session.execute(
            select(Sample.id, Sample.row, Sample.text).where(
                Sample.dataset_id == dataset_id, Sample.text_hash.in_(hashes[start : start + _HASHES_PER_QUERY])
            )
        ):
            if sample_id <= stored_before:
                stored.add(sample_text)
            else:
                rows[sample_text].append(row)
        for sample_text, occurrences in rows.items():
            occurrences.sort()
            if sample_text in stored:
                info = DuplicateInfo(sample_text[:REPORTED_TEXT_CHARS], occurrences[:REPORTED_ROWS], -1)
                repeated_rows += len(occurrences)
            elif len(occurrences) > 1:
                info = DuplicateInfo(
                    sample_text[:REPORTED_TEXT_CHARS], occurrences[1 : 1 + REPORTED_ROWS], occurrences[0]
                )
                repeated_rows += len(occurrences) - 1
            else:
                continue
            # Row numbers are unique, so two entries never tie and DuplicateInfos are never compared.
            if len(earliest) < REPORTED_DUPLICATES:
                heapq.heappush(earliest, (-occurrences[0], info))
            elif occurrences[0] < -earliest[0][0]:
                heapq.heapreplace(earliest, (-occurrences[0], info))
    return [info for _, info in sorted(earliest, reverse=True)], repeated_rows


def _duplicate_hashes(session: Session, dataset_id: int, stored_before: int) -> list[int]:
    """The text hashes of the import's rows that another row of the dataset has too (candidates:
    equal hashes, the texts decide)."""
    new = select(Sample.text_hash).where(Sample.dataset_id == dataset_id, Sample.id > stored_before)
    return list(
        session.scalars(
            select(Sample.text_hash)
            .where(Sample.dataset_id == dataset_id, Sample.text_hash.in_(new))
            .group_by(Sample.text_hash)
            .having(func.count() > 1)
        )
    )
