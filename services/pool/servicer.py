"""PoolService, the pool's public API (datasets, samples, labels, exports): validate, convert, call the
core, convert back. The run store beside it is ``run_servicer``."""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from collections.abc import Iterator
from typing import IO

from lesslabels.common.errors import InvalidArgument, ResourceExhausted, quote

from lesslabels.contract import wire
from lesslabels.pool import convert, importers
from lesslabels.pool.imports import ImportRequest
from lesslabels.pool.store import PoolStore
from lesslabels.v1 import pool_pb2, pool_pb2_grpc

#: Largest file ImportSamples accepts (all rows are stored in one transaction).
MAX_IMPORT_BYTES = 256 * 1024 * 1024
#: Bytes of an import file kept in memory as it arrives; the rest waits in a temporary file (TMPDIR).
SPOOL_BYTES = 4 * 1024 * 1024
#: Imports at once; one more is RESOURCE_EXHAUSTED. Each is read as a stream (in memory: SPOOL_BYTES
#: of its file and a batch of rows, a few tens of MiB in all), but takes a temporary file of up to
#: MAX_IMPORT_BYTES, and locks its dataset while it stores its rows (on SQLite, the whole database:
#: one writer at a time).
MAX_CONCURRENT_IMPORTS = 2
#: Bytes of samples in one ListSamples message: far under any message limit, however long the texts.
PAGE_BYTES = 4 * 1024 * 1024


def _by_bytes(items: list, budget: int) -> Iterator[list]:
    """``items`` (messages) in runs of at most ``budget`` serialized bytes; an item larger than the
    budget goes alone. A list that fits is yielded as itself."""
    sizes = [item.ByteSize() + 8 for item in items]  # + field tag and length prefix
    if sum(sizes) <= budget:
        yield items
        return
    part: list = []
    used = 0
    for item, size in zip(items, sizes, strict=True):
        if part and used + size > budget:
            yield part
            part, used = [], 0
        part.append(item)
        used += size
    if part:
        yield part


#: Page tokens are sample ids: ASCII digits, at most a 64-bit integer.
_PAGE_TOKEN = re.compile(r"[0-9]{1,19}")


def _page_token(token: str) -> int:
    """The sample id a page token names; InvalidArgument for anything but one (``isdigit`` would let
    "²" through, and 25 nines overflow the database's integers)."""
    if not token:
        return 0
    if not _PAGE_TOKEN.fullmatch(token) or int(token) > 2**63 - 1:
        raise InvalidArgument(f"invalid page_token {quote(token)}: give the next_page_token of the previous page")
    return int(token)


class PoolServicer(pool_pb2_grpc.PoolServiceServicer):
    def __init__(
        self,
        store: PoolStore,
        *,
        max_import_bytes: int = MAX_IMPORT_BYTES,
        page_bytes: int = PAGE_BYTES,
        max_concurrent_imports: int = MAX_CONCURRENT_IMPORTS,
    ):
        self.store = store
        self.max_import_bytes = max_import_bytes
        self.page_bytes = page_bytes
        self.max_concurrent_imports = max_concurrent_imports
        self._imports = threading.BoundedSemaphore(max_concurrent_imports)

    def CreateDataset(self, request, context):
        return convert.dataset_to_proto(
            self.store.create_dataset(request.name, request.description, list(request.labels))
        )

    def GetDataset(self, request, context):
        return convert.dataset_to_proto(self.store.get_dataset(request.name))

    def ListDatasets(self, request, context):
        return pool_pb2.ListDatasetsResponse(datasets=[convert.dataset_to_proto(d) for d in self.store.list_datasets()])

    def ImportSamples(self, request_iterator, context):
        if not self._imports.acquire(blocking=False):
            raise ResourceExhausted(
                f"{self.max_concurrent_imports} imports are in progress, the most this pool takes at once; retry later"
            )
        try:
            # Set when the call ends: the caller went away, or the server is stopping (SIGTERM,
            # past the grace period). The import then rolls back instead of committing unseen.
            ended = threading.Event()
            context.add_callback(ended.set)
            return self._import(request_iterator, ended)
        finally:
            self._imports.release()

    def _import(self, request_iterator, ended: threading.Event):
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as file:
            digest = hashlib.sha256()
            header = self._receive(request_iterator, file, digest)
            result = self.store.import_samples(
                header.dataset,
                file,
                fmt=importers.Format(wire.enum_name(wire.IMPORT_FORMAT_TO_CORE, header.format, "import format")),
                default_split=wire.enum_name(wire.SPLIT_TO_CORE, header.split, "split") or "train",
                create_dataset=header.create_dataset,
                keep_whitespace=header.keep_whitespace,
                columns=convert.import_columns_from_proto(header),
                allow_similar_labels=header.allow_similar_labels,
                check_only=header.check_only,
                request=ImportRequest(header.request_id, digest.hexdigest(), ended.is_set),
            )
        return convert.import_result_to_proto(result)

    def _receive(self, request_iterator, file: IO[bytes], digest) -> pool_pb2.ImportHeader:
        """The import's header; its data written to ``file`` (and hashed) as it arrives, up to the
        size limit."""
        header, size = None, 0
        for message in request_iterator:
            part = message.WhichOneof("part")
            if part == "header":
                if header is not None:
                    raise InvalidArgument("ImportSamples: the header must be sent once, first")
                header = message.header
            elif part == "data":
                if header is None:
                    raise InvalidArgument("ImportSamples: the first message must be the header")
                size += len(message.data)
                if size > self.max_import_bytes:
                    raise ResourceExhausted(f"import larger than the limit of {self.max_import_bytes} bytes")
                file.write(message.data)
                digest.update(message.data)
        if header is None:
            raise InvalidArgument("ImportSamples: no header was sent")
        return header

    def ListSamples(self, request, context):
        pages = self.store.list_samples(
            request.dataset,
            split=wire.enum_name(wire.SPLIT_TO_CORE, request.split, "split") or None,
            state=wire.enum_name(wire.LABEL_STATE_TO_CORE, request.state, "label state"),
            run_id=request.run_id,
            page_size=request.page_size,
            after_id=_page_token(request.page_token),
            limit=request.limit,
            include_gold=request.include_gold,
            subset_size=request.subset.size,
            subset_seed=request.subset.seed,
            sample_ids=request.sample_ids,
            shard=wire.shard_from_proto(request),
            annotator=request.annotator or None,
        )
        first = True
        for samples, last_id, total in pages:
            protos = [convert.sample_to_proto(s) for s in samples]
            for part in _by_bytes(protos, self.page_bytes):
                if not context.is_active():
                    return
                # Each message goes on from its own last sample; the store's last page ends the stream.
                last = part is protos or part[-1] is protos[-1]
                yield pool_pb2.SamplePage(
                    samples=part,
                    next_page_token=(str(last_id) if last_id else "") if last else str(part[-1].id),
                    total=total if first else 0,
                )
                first = False

    def SubmitLabels(self, request, context):
        source = wire.enum_name(wire.SOURCE_TO_CORE, request.source, "label source") or "human"
        result = self.store.submit_labels(
            request.dataset,
            [(a.sample_id, a.label) for a in request.labels],
            run_id=request.run_id,
            source=source,
            annotator=request.annotator,
            idempotency_key=request.idempotency_key,
            second_opinion=request.second_opinion,
        )
        return wire.label_result_to_proto(result)

    def GetCounts(self, request, context):
        counts = self.store.counts(request.dataset, request.run_id)
        return pool_pb2.Counts(
            dataset=request.dataset,
            run_id=request.run_id,
            **{split: convert.split_counts_to_proto(c) for split, c in counts.items()},
        )

    def ExportLabels(self, request, context):
        for chunk in self.store.export_labels(request.dataset, request.run_id):
            yield pool_pb2.ExportChunk(data=chunk)

    def SetDatasetLabels(self, request, context):
        return convert.dataset_to_proto(self.store.set_labels(request.dataset, list(request.labels)))

    def DeleteDataset(self, request, context):
        removed = self.store.delete_dataset(request.dataset)
        return pool_pb2.DeleteDatasetResponse(dataset=request.dataset, samples=removed)

    def GetLabelHistory(self, request, context):
        events = self.store.label_history(request.dataset, request.sample_id)
        return pool_pb2.LabelHistory(events=[convert.label_event_to_proto(e) for e in events])

    def ListAnnotators(self, request, context):
        annotators = self.store.annotators(request.dataset, request.run_id)
        return pool_pb2.ListAnnotatorsResponse(annotators=[convert.annotator_to_proto(a) for a in annotators])

    def ListLabelOpinions(self, request, context):
        texts = self.store.label_opinions(request.dataset, disputed_only=request.disputed_only)
        return pool_pb2.ListLabelOpinionsResponse(texts=[convert.text_opinions_to_proto(t) for t in texts])


def registration(servicer: PoolServicer):
    from lesslabels.common.server import ServiceRegistration

    return ServiceRegistration(
        names=(pool_pb2.DESCRIPTOR.services_by_name["PoolService"].full_name,),
        register=lambda server: pool_pb2_grpc.add_PoolServiceServicer_to_server(servicer, server),
    )
