"""Pull a dataset's samples from the pool service page by page (a client of PoolService.ListSamples).

Pages are read lazily from one server stream, so only one page is held at a time however large
the pool is; when the stream breaks (UNAVAILABLE, deadline) it resumes after the last page seen.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator

from lesslabels.client import PoolClient
from lesslabels.client.pool import MAX_PAGE
from lesslabels.common import errors
from lesslabels.contract import SampleQuery

log = logging.getLogger(__name__)


class CancelScope:
    """Set once when the scorer's own caller goes away: the work checks ``is_set()`` between steps,
    and the pool call in flight (``attach``) is cancelled at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._current = None
        self._cancelled = threading.Event()

    def attach(self, call) -> None:
        with self._lock:
            self._current = call
            cancelled = self._cancelled.is_set()
        if cancelled:
            call.cancel()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            call = self._current
        if call is not None:
            call.cancel()

    def is_set(self) -> bool:
        return self._cancelled.is_set()


@dataclasses.dataclass
class PoolPage:
    sample_ids: list[int]
    texts: list[str]
    gold_labels: list[str]
    total: int  # matching samples, as the pool counted them at the start


def iter_pool_pages(
    pool: PoolClient,
    query: SampleQuery,
    *,
    page_size: int,
    cancel: CancelScope,
    stream_timeout: float,
    max_resumes: int = 3,
) -> Iterator[PoolPage]:
    """Yield pages of at most ``page_size`` of ``query``'s samples until the pool is exhausted or
    ``cancel`` is set (a resumed stream asks for the same random subset)."""
    dataset = query.dataset
    with_gold = query.split in ("test", "dev")
    token = ""
    total = 0
    resumes = 0
    while not cancel.is_set():
        stream = pool.sample_pages(
            dataset,
            split=query.split,
            state="any" if query.include_all else "unlabelled",
            run_id=query.run_id,
            page_size=min(page_size, MAX_PAGE),
            page_token=token,
            include_gold=with_gold,
            subset=query.subset,
            subset_seed=query.subset_seed,
            sample_ids=query.sample_ids,
            shard=query.shard,
            timeout=stream_timeout,
        )
        cancel.attach(stream)  # the pool's stream stops as soon as our caller goes away
        try:
            for page in stream:
                if cancel.is_set():
                    return
                if page.total and not total:
                    total = page.total
                yield PoolPage(
                    sample_ids=[s.id for s in page.samples],
                    texts=[s.text for s in page.samples],
                    gold_labels=[s.gold_label for s in page.samples] if with_gold else [],
                    total=total,
                )
                token = page.next_page_token
                if not token:
                    return
            return
        except errors.Unavailable as exc:  # DeadlineExceeded included: resume after the last page seen
            if cancel.is_set():
                return
            if resumes < max_resumes:
                resumes += 1
                log.warning("event=pool_stream_resumed dataset=%s after=%s error=%r", dataset, token, str(exc))
                continue
            raise errors.Unavailable(
                f"listing samples of dataset {errors.quote(dataset)} from the pool: {exc}"
            ) from None
        except errors.LessLabelsError:
            if cancel.is_set():
                return
            raise
        finally:
            stream.cancel()
    return


#: Deadline of reading a run's labelled set (large sets come in many pages).
LABELLED_TIMEOUT = 300.0


@dataclasses.dataclass(frozen=True)
class LabelledSample:
    sample_id: int
    text: str
    label: str


class PoolLabels:
    """What the fast head reads from the pool: a dataset's label set and a run's labelled train samples."""

    def __init__(self, pool: PoolClient, *, timeout: float = LABELLED_TIMEOUT):
        self._pool = pool
        self._timeout = timeout

    def label_set(self, dataset: str) -> list[str]:
        """The dataset's labels in their declared order (NotFound for an unknown dataset)."""
        return list(self._pool.get_dataset(dataset).labels)

    def labelled(self, dataset: str, run_id: int) -> list[LabelledSample]:
        """The train samples labelled in the scope of ``run_id`` (0: the dataset's own labels), with
        those labels. NotFound for an unknown run, InvalidArgument for a run of another dataset."""
        samples = self._pool.list_samples(
            dataset, split="train", state="labelled", run_id=run_id, page_size=MAX_PAGE, timeout=self._timeout
        )
        return [LabelledSample(s.id, s.text, s.label) for s in samples if s.label]
