"""``PoolClient``: datasets, samples, labels and exports of the pool service. Runs are read and
changed through the coordinator (``CoordinatorClient``); the pool's run store is internal."""

from __future__ import annotations

import json
import numbers
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, overload

import grpc

from lesslabels.client import frames
from lesslabels.client.base import ServiceClient
from lesslabels.common.errors import quote
from lesslabels.client.errors import InvalidArgument, LessLabelsError
from lesslabels.client.types import (
    Annotator,
    Counts,
    Dataset,
    Duplicate,
    ImportSummary,
    LabelOpinion,
    LabelOpinions,
    LabelResult,
    Sample,
    SamplePage,
    SplitCounts,
)
from lesslabels.contract.shards import Shard
from lesslabels.contract import vocabulary, wire
from lesslabels.v1 import common_pb2, pool_pb2, pool_pb2_grpc

#: Bytes per ImportSamples message: imports stream in bounded chunks, never one giant message.
CHUNK_BYTES = 1024 * 1024
#: Deadline of a whole import or export stream.
STREAM_TIMEOUT = 300.0
#: The pool's largest page of ListSamples.
MAX_PAGE = 5000

#: Import formats by the names users give them (``--format csv-header``): the vocabulary's.
FORMATS = {vocabulary.flag_name(name): value for value, name in wire.IMPORT_FORMAT_TO_CORE.items()}
FORMAT_NAMES = {v: k for k, v in FORMATS.items()}
LABEL_STATES = wire.LABEL_STATE_TO_PROTO

#: A row to import: ``(text, label)`` (label "" or None: unlabelled) or a mapping with "text"
#: and optional "label" and "split".
Row = tuple | Mapping


def random_subset(size: int, seed: int) -> common_pb2.RandomSubset | None:
    """The RandomSubset of ``size`` samples under ``seed`` (None for 0: no subset)."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 0:
        raise InvalidArgument(f"subset must be a number of samples, 0 or more (0 = all of them), got {quote(size)}")
    return wire.random_subset(int(size), int(seed))


def _dataset(message: pool_pb2.Dataset) -> Dataset:
    return Dataset(
        name=message.name,
        labels=tuple(message.labels),
        description=message.description,
        train_count=message.train_count,
        test_count=message.test_count,
        dev_count=message.dev_count,
        labelled_count=message.labelled_count,
        created_at=message.created_at,
    )


#: Failures after which an import may or may not have been stored: retry with its request_id.
_OUTCOME_UNKNOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


def _summary(message: pool_pb2.ImportSummary) -> ImportSummary:
    return ImportSummary(
        dataset=message.dataset,
        imported=message.imported,
        by_label=dict(message.by_label),
        format=FORMAT_NAMES.get(message.format, "auto"),
        duplicate_rows=message.duplicate_rows,
        duplicates=tuple(Duplicate(rows=tuple(d.rows), text=d.text, first_row=d.first_row) for d in message.duplicates),
        by_split=dict(message.by_split),
        columns=dict(message.columns),
        checked_only=message.checked_only,
        replayed=message.replayed,
    )


def _sample(message: common_pb2.Sample) -> Sample:
    return Sample(
        id=message.id,
        text=message.text,
        split=wire.SPLIT_TO_CORE.get(message.split, ""),
        label=message.label,
        gold_label=message.gold_label,
        row=message.row,
        dataset=message.dataset,
        annotator=message.annotator,
        label_source=wire.SOURCE_TO_CORE.get(message.label_source, ""),
        labelled_at=message.labelled_at,
    )


def _split_counts(message: pool_pb2.SplitCounts) -> SplitCounts:
    return SplitCounts(
        total=message.total,
        labelled=message.labelled,
        labelled_by_label=dict(message.labelled_by_label),
        gold_by_label=dict(message.gold_by_label),
    )


#: Labels to submit: ``{sample_id: label}``, ``(sample_id, label)`` pairs, or a DataFrame with
#: ``sample_id`` (or ``id``) and ``label`` columns.
Labels = Mapping[int, str] | Iterable[tuple[int, str]] | Any


def _frame_pairs(frame: Any) -> Iterable[tuple[Any, Any]]:
    ids = next((c for c in ("sample_id", "id") if c in frame.columns), None)
    if ids is None or "label" not in frame.columns:
        raise InvalidArgument(
            f"a DataFrame of labels needs a 'sample_id' (or 'id') and a 'label' column; it has {quote(list(frame.columns))}"
        )
    return zip(frame[ids].tolist(), frame["label"].tolist(), strict=True)


def _assignments(labels: Labels) -> list[pool_pb2.LabelAssignment]:
    if frames.is_frame(labels):
        pairs: Iterable = _frame_pairs(labels)
    else:
        pairs = labels.items() if isinstance(labels, Mapping) else labels
    out = []
    for i, pair in enumerate(pairs):
        try:
            sample_id, label = pair
        except (TypeError, ValueError):
            raise InvalidArgument(f"labels[{i}]: expected a (sample_id, label) pair, got {quote(pair)}") from None
        if isinstance(sample_id, bool) or not isinstance(sample_id, numbers.Integral) or not isinstance(label, str):
            raise InvalidArgument(f"labels[{i}]: expected (int sample_id, str label), got {quote(pair)}")
        out.append(pool_pb2.LabelAssignment(sample_id=int(sample_id), label=label))
    return out


def rows_to_jsonl(rows: Iterable[Row], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Encode rows as JSON lines, in chunks of about ``chunk_bytes`` (a row is never split)."""
    buffer: list[bytes] = []
    size = 0
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            if "text" not in row:
                raise InvalidArgument(f"row {i + 1}: a record needs a 'text' field")
            record = {k: row[k] for k in ("text", "label", "split") if row.get(k) is not None}
        elif isinstance(row, (tuple, list)) and len(row) == 2:
            record = {"text": row[0]} if row[1] in (None, "") else {"text": row[0], "label": row[1]}
        else:
            raise InvalidArgument(f"row {i + 1}: expected (text, label) or a mapping with 'text', got {quote(row)}")
        if not isinstance(record["text"], str):
            raise InvalidArgument(f"row {i + 1}: text must be a string, got {type(record['text']).__name__}")
        line = (json.dumps(record) + "\n").encode()  # ensure_ascii: no raw line separators inside a row
        buffer.append(line)
        size += len(line)
        if size >= chunk_bytes:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


class SampleStream:
    """Pages of one ListSamples stream, read lazily; ``cancel()`` stops it from another thread."""

    def __init__(self, client: PoolClient, request: pool_pb2.ListSamplesRequest, timeout: float | None):
        self._client = client
        self._call = client._stub.ListSamples(request, timeout=client._deadline(timeout))
        self._what = f"listing samples of dataset {quote(request.dataset)}"

    def cancel(self) -> None:
        self._call.cancel()

    def __iter__(self) -> Iterator[SamplePage]:
        try:
            for page in self._call:
                yield SamplePage(tuple(_sample(s) for s in page.samples), page.next_page_token, page.total)
        except grpc.RpcError as exc:
            raise self._client._error(exc, self._what) from None
        finally:
            self._call.cancel()


class PoolClient(ServiceClient):
    """Client of the pool service (default port 50051).

    >>> with PoolClient("localhost:50051") as pool:
    ...     pool.import_samples("flights", [("show me flights to denver", "flight")])
    ...     pool.get_counts("flights").train.labelled
    """

    service = "pool"

    def __init__(self, address: str, **kwargs):
        super().__init__(address, **kwargs)
        self._stub = pool_pb2_grpc.PoolServiceStub(self._channel)

    # ------------------------------------------------------------ datasets

    def create_dataset(
        self, name: str, *, labels: Sequence[str] = (), description: str = "", timeout: float | None = None
    ) -> Dataset:
        """Create an empty dataset (AlreadyExists if the name is taken)."""
        request = pool_pb2.CreateDatasetRequest(name=name, labels=list(labels), description=description)
        return _dataset(self._unary(self._stub.CreateDataset, request, f"create dataset {quote(name)}", timeout))

    def get_dataset(self, name: str, *, timeout: float | None = None) -> Dataset:
        """The dataset called ``name`` (NotFound if there is none)."""
        return _dataset(
            self._unary(self._stub.GetDataset, pool_pb2.GetDatasetRequest(name=name), f"dataset {quote(name)}", timeout)
        )

    def list_datasets(self, *, timeout: float | None = None) -> list[Dataset]:
        reply = self._unary(self._stub.ListDatasets, pool_pb2.ListDatasetsRequest(), "list datasets", timeout)
        return [_dataset(d) for d in reply.datasets]

    def set_dataset_labels(self, name: str, labels: Sequence[str], *, timeout: float | None = None) -> Dataset:
        """Declare the label set of dataset ``name``, in order (it replaces the one there); the
        dataset as it is now. InvalidArgument for near-duplicate names ("Weather" / "weather "),
        FailedPrecondition when a label in use would be dropped."""
        request = pool_pb2.SetDatasetLabelsRequest(dataset=name, labels=list(labels))
        return _dataset(
            self._unary(self._stub.SetDatasetLabels, request, f"label set of dataset {quote(name)}", timeout)
        )

    def delete_dataset(self, name: str, *, timeout: float | None = None) -> int:
        """Delete dataset ``name`` with its samples, labels and runs; the number of samples removed.
        FailedPrecondition while the dataset has active runs."""
        request = pool_pb2.DeleteDatasetRequest(dataset=name)
        return self._unary(self._stub.DeleteDataset, request, f"delete dataset {quote(name)}", timeout).samples

    # ------------------------------------------------------------ import / export

    def import_chunks(
        self,
        dataset: str,
        chunks: Iterable[bytes],
        *,
        split: str = "train",
        format: str = "auto",
        create: bool = True,
        keep_whitespace: bool = False,
        text_column: str = "",
        label_column: str = "",
        id_column: str = "",
        allow_similar_labels: bool = False,
        check: bool = False,
        ignore_extra: bool = False,
        request_id: str = "",
        timeout: float | None = STREAM_TIMEOUT,
    ) -> ImportSummary:
        """Stream file contents (CSV or JSONL bytes, in chunks) into ``dataset``.

        ``split`` applies to rows that do not name one; ``create`` creates a missing dataset. The
        pool stores every row or none: a bad row raises InvalidArgument naming it. ``*_column``
        name the header columns (or JSON keys) to read; ``check`` only reports what would be stored;
        ``ignore_extra`` leaves out columns (keys) no field reads instead of refusing the file.

        ``request_id`` ("" = a new random one) makes the import idempotent: when a call fails
        without telling whether the rows were stored (UNAVAILABLE, a deadline, the server
        stopping), retry with the same id and the same bytes: the pool stores them at most once and
        answers the first import's summary (``replayed``). The raised error carries the id as
        ``request_id``."""
        request_id = request_id or uuid.uuid4().hex
        header = pool_pb2.ImportHeader(
            dataset=dataset,
            format=wire.proto_value(format, FORMATS, "import format"),
            split=wire.proto_value(split, wire.SPLIT_TO_PROTO, "split"),
            create_dataset=create,
            keep_whitespace=keep_whitespace,
            text_column=text_column,
            label_column=label_column,
            id_column=id_column,
            allow_similar_labels=allow_similar_labels,
            check_only=check,
            ignore_extra=ignore_extra,
            request_id=request_id,
        )

        failures: list[BaseException] = []

        def messages() -> Iterator[pool_pb2.ImportSamplesRequest]:
            yield pool_pb2.ImportSamplesRequest(header=header)
            try:
                for chunk in chunks:
                    for start in range(0, len(chunk), CHUNK_BYTES):
                        yield pool_pb2.ImportSamplesRequest(data=bytes(chunk[start : start + CHUNK_BYTES]))
            except Exception as exc:
                failures.append(exc)  # grpc swallows it and cancels the call; raised below instead
                raise

        try:
            reply = self._unary(self._stub.ImportSamples, messages(), f"import into dataset {quote(dataset)}", timeout)
        except LessLabelsError as exc:
            if failures:
                raise failures[0] from None
            exc.request_id = request_id  # type: ignore[attr-defined]
            if exc.status in _OUTCOME_UNKNOWN:
                exc.add_note(f"retry with request_id={request_id!r}: the rows are stored at most once")
            raise
        return _summary(reply)

    def import_file(
        self,
        path: str | os.PathLike,
        dataset: str,
        *,
        split: str = "train",
        format: str = "auto",
        create: bool = True,
        text_column: str = "",
        label_column: str = "",
        id_column: str = "",
        allow_similar_labels: bool = False,
        check: bool = False,
        ignore_extra: bool = False,
        request_id: str = "",
        timeout: float | None = STREAM_TIMEOUT,
    ) -> ImportSummary:
        """Import a headerless ``label,text`` CSV, a CSV with a header (``text``, ``label``, ``split``,
        ``id`` or the columns named by ``*_column``), or JSONL. See ``import_chunks``."""
        if not os.path.isfile(path):
            raise InvalidArgument(f"{path}: no such file")

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                yield from iter(lambda: f.read(CHUNK_BYTES), b"")

        return self.import_chunks(
            dataset,
            chunks(),
            split=split,
            format=format,
            create=create,
            text_column=text_column,
            label_column=label_column,
            id_column=id_column,
            allow_similar_labels=allow_similar_labels,
            check=check,
            ignore_extra=ignore_extra,
            request_id=request_id,
            timeout=timeout,
        )

    def import_samples(
        self,
        dataset: str,
        rows: Iterable[Row],
        *,
        split: str = "train",
        create: bool = True,
        request_id: str = "",
        timeout: float | None = STREAM_TIMEOUT,
    ) -> ImportSummary:
        """Import ``(text, label)`` pairs or records (``{"text", "label", "split"}``) from any
        iterable, streamed as JSON lines in bounded chunks (the iterable is read once, lazily); a
        DataFrame goes to ``import_dataframe``. ``request_id``: see ``import_chunks``."""
        if frames.is_frame(rows):
            return self.import_dataframe(
                rows, dataset, split=split, create=create, request_id=request_id, timeout=timeout
            )
        return self.import_chunks(
            dataset,
            rows_to_jsonl(rows),
            split=split,
            format="jsonl",
            create=create,
            request_id=request_id,
            timeout=timeout,
        )

    def import_dataframe(
        self,
        frame: Any,
        dataset: str,
        *,
        text: str | None = None,
        label: str | None = None,
        id: str | None = None,
        split: str = "train",
        split_column: str | None = None,
        create: bool = True,
        allow_similar_labels: bool = False,
        check: bool = False,
        ignore_extra: bool = False,
        request_id: str = "",
        timeout: float | None = STREAM_TIMEOUT,
    ) -> ImportSummary:
        """Import a pandas DataFrame, a row a sample, by the pool's rules for any import (all rows
        or none; the same refusals; ``check``, ``ignore_extra``, ``request_id`` as in ``import_chunks``).

        ``text``, ``label``, ``id`` and ``split_column`` name its columns; with ``text`` named only
        the named columns are sent, otherwise every column is, and the pool reads them by their
        names (text/utterance/sentence..., label/intent/class..., id, split) and refuses the others
        unless ``ignore_extra``. Missing labels (None, NaN, ``<NA>``) import unlabelled. Texts that
        are not strings and labels that are not names (class indices) are refused here, naming the
        row, before anything is sent; a refusal from the pool notes which DataFrame row its
        "row N" is. Streamed as JSON lines, 5,000 rows at a time."""
        part, flags = frames.frame_columns(frame, text=text, label=label, id=id, split=split_column)
        try:
            return self.import_chunks(
                dataset,
                frames.frame_to_jsonl(part),
                split=split,
                format="jsonl",
                create=create,
                allow_similar_labels=allow_similar_labels,
                check=check,
                ignore_extra=ignore_extra,
                request_id=request_id,
                timeout=timeout,
                text_column=flags["text_column"],
                label_column=flags["label_column"],
                id_column=flags["id_column"],
            )
        except InvalidArgument as exc:
            note = frames.where_in_frame(getattr(exc, "details", "") or str(exc), part)
            if note:
                exc.add_note(note)
            raise

    def export_labels(self, dataset: str, *, run_id: int = 0, timeout: float | None = STREAM_TIMEOUT) -> bytes:
        """The labelled set as CSV bytes (``label,text``): the run's labels, or the dataset's own."""
        request = pool_pb2.ExportLabelsRequest(dataset=dataset, run_id=run_id)
        return b"".join(
            c.data
            for c in self._stream(
                self._stub.ExportLabels, request, f"export labels of dataset {quote(dataset)}", timeout
            )
        )

    # ------------------------------------------------------------ samples, counts, labels

    def sample_pages(
        self,
        dataset: str,
        *,
        split: str = "train",
        state: str = "any",
        run_id: int = 0,
        include_gold: bool = False,
        page_size: int = 2000,
        page_token: str = "",
        limit: int = 0,
        subset: int = 0,
        subset_seed: int = 0,
        sample_ids: Sequence[int] = (),
        shard: Shard | None = None,
        annotator: str = "",
        timeout: float | None = STREAM_TIMEOUT,
    ) -> SampleStream:
        """One ListSamples stream of pages; ``page_token`` resumes after an earlier page. ``subset``:
        only that many of the matching samples, a random subset the pool draws under ``subset_seed``
        (the same seed over the same samples, the same subset); ``sample_ids``: only those samples;
        ``shard``: only the samples of that shard (of the subset, when one is asked for);
        ``annotator``: only the samples whose label in force that person gave."""
        if not 0 < page_size <= MAX_PAGE:
            raise InvalidArgument(f"page_size must be in 1..{MAX_PAGE}, got {page_size}")
        request = pool_pb2.ListSamplesRequest(
            dataset=dataset,
            split=wire.proto_value(split, wire.SPLIT_TO_PROTO, "split"),
            state=wire.proto_value(state, LABEL_STATES, "label state"),
            run_id=run_id,
            include_gold=include_gold,
            page_size=page_size,
            page_token=page_token,
            limit=limit,
            subset=random_subset(subset, subset_seed),
            sample_ids=sample_ids,
            shard=wire.shard_to_proto(shard),
            annotator=annotator,
        )
        return SampleStream(self, request, timeout)

    @overload
    def list_samples(
        self,
        dataset: str,
        *,
        split: str = "train",
        state: str = "any",
        run_id: int = 0,
        include_gold: bool = False,
        limit: int = 0,
        page_size: int = 2000,
        subset: int = 0,
        subset_seed: int = 0,
        sample_ids: Sequence[int] = (),
        shard: Shard | None = None,
        annotator: str = "",
        as_frame: Literal[False] = False,
        timeout: float | None = STREAM_TIMEOUT,
    ) -> list[Sample]: ...
    @overload
    def list_samples(
        self,
        dataset: str,
        *,
        split: str = "train",
        state: str = "any",
        run_id: int = 0,
        include_gold: bool = False,
        limit: int = 0,
        page_size: int = 2000,
        subset: int = 0,
        subset_seed: int = 0,
        sample_ids: Sequence[int] = (),
        shard: Shard | None = None,
        annotator: str = "",
        as_frame: Literal[True],
        timeout: float | None = STREAM_TIMEOUT,
    ) -> Any: ...
    def list_samples(
        self,
        dataset: str,
        *,
        split: str = "train",
        state: str = "any",
        run_id: int = 0,
        include_gold: bool = False,
        limit: int = 0,
        page_size: int = 2000,
        subset: int = 0,
        subset_seed: int = 0,
        sample_ids: Sequence[int] = (),
        shard: Shard | None = None,
        annotator: str = "",
        as_frame: bool = False,
        timeout: float | None = STREAM_TIMEOUT,
    ) -> list[Sample] | Any:
        """Every matching sample (``state``: "any", "labelled" or "unlabelled" in the scope of ``run_id``);
        ``subset``/``subset_seed``, ``sample_ids`` and ``shard`` as in ``sample_pages``. ``as_frame``:
        a pandas DataFrame instead (columns and dtypes: ``lesslabels.client.frames``), e.g. the labels
        with who gave them and when: ``list_samples(name, state="labelled", as_frame=True)``."""
        stream = self.sample_pages(
            dataset,
            split=split,
            state=state,
            run_id=run_id,
            include_gold=include_gold,
            limit=limit,
            page_size=page_size,
            subset=subset,
            subset_seed=subset_seed,
            sample_ids=sample_ids,
            shard=shard,
            annotator=annotator,
            timeout=timeout,
        )
        samples = [s for page in stream for s in page.samples]
        return frames.samples_frame(samples) if as_frame else samples

    def list_annotators(self, dataset: str, *, run_id: int = 0, timeout: float | None = None) -> list[Annotator]:
        """Who gave the labels in force (in the scope of ``run_id``; 0 = the dataset's own), most first."""
        reply = self._unary(
            self._stub.ListAnnotators,
            pool_pb2.ListAnnotatorsRequest(dataset=dataset, run_id=run_id),
            f"annotators of dataset {dataset!r}",
            timeout,
        )
        return [Annotator(a.name, a.labels, a.last_labelled_at) for a in reply.annotators]

    def get_counts(self, dataset: str, *, run_id: int = 0, timeout: float | None = None) -> Counts:
        """Sizes and labelled counts per split (labels in the scope of ``run_id``; 0 = the dataset's own)."""
        reply = self._unary(
            self._stub.GetCounts,
            pool_pb2.GetCountsRequest(dataset=dataset, run_id=run_id),
            f"counts of dataset {quote(dataset)}",
            timeout,
        )
        return Counts(
            dataset=reply.dataset,
            run_id=reply.run_id,
            train=_split_counts(reply.train),
            test=_split_counts(reply.test),
            dev=_split_counts(reply.dev),
        )

    def submit_labels(
        self,
        dataset: str,
        labels: Mapping[int, str] | Iterable[tuple[int, str]],
        *,
        run_id: int = 0,
        annotator: str = "",
        idempotency_key: str = "",
        second_opinion: bool = False,
        timeout: float | None = None,
    ) -> LabelResult:
        """Record human labels, ``{sample_id: label}`` or ``(sample_id, label)`` pairs. Resending
        the same labels (or the same ``idempotency_key``) records nothing twice. ``second_opinion``:
        keep each label beside a label another person gave instead of replacing it (a different
        label flags the text for review, ``label_opinions``)."""
        request = pool_pb2.SubmitLabelsRequest(
            dataset=dataset,
            run_id=run_id,
            labels=_assignments(labels),
            source=common_pb2.LABEL_SOURCE_HUMAN,
            annotator=annotator,
            idempotency_key=idempotency_key,
            second_opinion=second_opinion,
        )
        reply = self._unary(self._stub.SubmitLabels, request, f"labels for dataset {quote(dataset)}", timeout)
        return wire.label_result_from_proto(reply)

    def review_labels(
        self,
        dataset: str,
        labels: Mapping[int, str] | Iterable[tuple[int, str]],
        *,
        reviewer: str,
        idempotency_key: str = "",
        timeout: float | None = None,
    ) -> LabelResult:
        """Resolve flagged texts: each label becomes the one in force for the dataset and in every
        run where a person labelled the text, recorded as a review by ``reviewer``; the flag clears."""
        request = pool_pb2.SubmitLabelsRequest(
            dataset=dataset,
            labels=_assignments(labels),
            source=common_pb2.LABEL_SOURCE_REVIEW,
            annotator=reviewer,
            idempotency_key=idempotency_key,
        )
        reply = self._unary(self._stub.SubmitLabels, request, f"review of dataset {quote(dataset)}", timeout)
        return wire.label_result_from_proto(reply)

    def label_opinions(
        self, dataset: str, *, disputed_only: bool = False, timeout: float | None = None
    ) -> list[LabelOpinions]:
        """The texts two or more people labelled (each one's latest label), by sample id;
        ``disputed_only``: only the flagged ones (they disagree, no review since)."""
        reply = self._unary(
            self._stub.ListLabelOpinions,
            pool_pb2.ListLabelOpinionsRequest(dataset=dataset, disputed_only=disputed_only),
            f"label opinions of dataset {quote(dataset)}",
            timeout,
        )

        def opinion(message: pool_pb2.LabelOpinion) -> LabelOpinion:
            return LabelOpinion(message.annotator, message.label, message.labelled_at)

        return [
            LabelOpinions(
                sample_id=t.sample_id,
                text=t.text,
                label=t.label,
                opinions=tuple(opinion(o) for o in t.opinions),
                disputed=t.disputed,
                review=opinion(t.review) if t.HasField("review") else None,
            )
            for t in reply.texts
        ]
