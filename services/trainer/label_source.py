"""What the trainer reads from the pool, over gRPC, as domain objects. Deadlines on every call.

Only the run's acquired labels of the train split are read for training; gold labels are only
asked for the dev split (validation). The test split is never read.

A job's reads (ListSamples streams, which the channel does not retry) ride out a pool that is
unreachable for up to ``outage_seconds`` (a pool restart), retrying with backoff, before the job
fails, and with it the run.

The run a job trains for is read from the pool process's internal run store (``RunStoreClient``,
with the internal token the trainer sends); everything else from the public pool service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from lesslabels import client, contract
from lesslabels.client import Dataset
from lesslabels.common import errors
from lesslabels.common.channels import DEFAULT_TIMEOUT
from lesslabels.common.config import ClientTLS
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.trainer.loop import Example

log = logging.getLogger(__name__)

#: Deadline of a whole ListSamples stream (large labelled sets come in many pages).
LIST_TIMEOUT = 300.0
PAGE_SIZE = 2000
#: How long a job's reads wait for an unreachable pool, and the first and longest pause between tries.
OUTAGE_SECONDS = 60.0
RETRY_BACKOFF_SECONDS = 0.5
MAX_RETRY_BACKOFF_SECONDS = 5.0

T = TypeVar("T")


class PoolLabelSource:
    """The trainer's ``LabelSource``: the pool read through the SDK's ``lesslabels.client.PoolClient`` and
    the ``RunStoreClient`` (their errors are the domain errors the trainer's servicer maps to status
    codes)."""

    def __init__(
        self,
        address: str,
        *,
        token: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        tls: ClientTLS | None = None,
        outage_seconds: float = OUTAGE_SECONDS,
        retry_backoff: float = RETRY_BACKOFF_SECONDS,
    ):
        self.address = address
        self.outage_seconds = outage_seconds
        self.retry_backoff = retry_backoff
        self._pool = client.PoolClient(address, token=token, timeout=timeout, tls=tls)
        self._runs = RunStoreClient(address, token=token, timeout=timeout, tls=tls)

    def close(self) -> None:
        self._pool.close()
        self._runs.close()

    def dataset(self, name: str) -> Dataset:
        return self._pool.get_dataset(name)

    def run(self, run_id: int) -> contract.Run:
        return self._runs.get_run(run_id)

    def labelled_counts(self, dataset: str, run_id: int) -> dict[str, int]:
        """Acquired labels per label in the train split, in the scope of ``run_id``."""
        counts = self._pool.get_counts(dataset, run_id=run_id)
        return {label: int(n) for label, n in counts.train.labelled_by_label.items() if n}

    def labelled_examples(self, dataset: str, run_id: int) -> list[Example]:
        """The train-split samples labelled in the scope of ``run_id``, with those labels."""
        samples = self._riding_out(
            f"labelled samples of run {run_id}",
            lambda: self._pool.list_samples(
                dataset, split="train", state="labelled", run_id=run_id, page_size=PAGE_SIZE, timeout=LIST_TIMEOUT
            ),
        )
        return [Example(s.id, s.text, s.label) for s in samples if s.label]

    def dev_examples(self, dataset: str) -> list[Example]:
        """The dev split with its gold labels (samples without one are skipped)."""
        samples = self._riding_out(
            f"dev split of {dataset!r}",
            lambda: self._pool.list_samples(
                dataset, split="dev", include_gold=True, page_size=PAGE_SIZE, timeout=LIST_TIMEOUT
            ),
        )
        return [Example(s.id, s.text, s.gold_label) for s in samples if s.gold_label]

    def _riding_out(self, what: str, read: Callable[[], T]) -> T:
        """``read()``, tried again with backoff while the pool is unavailable, for up to ``outage_seconds``."""
        started = time.monotonic()
        pause = self.retry_backoff
        attempt = 1
        while True:
            try:
                return read()
            except errors.Unavailable as exc:  # DeadlineExceeded too (a stream's deadline outlasts the window)
                if time.monotonic() - started + pause > self.outage_seconds:
                    raise
                log.warning("event=pool_read_retry what=%r attempt=%d error=%r", what, attempt, str(exc))
            time.sleep(pause)
            pause = min(pause * 2, MAX_RETRY_BACKOFF_SECONDS)
            attempt += 1
