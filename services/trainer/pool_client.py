"""What the trainer reads from the pool, over gRPC, as domain objects. Deadlines on every call.

Only the run's acquired labels of the train split are read for training; gold labels are only
asked for the dev split (validation). The test split is never read.
"""

from __future__ import annotations

import dataclasses
import logging

from lesslabels import client
from lesslabels.common.channels import DEFAULT_TIMEOUT
from lesslabels.common.config import ClientTLS
from lesslabels.trainer.engine import Example

log = logging.getLogger(__name__)

#: Deadline of a whole ListSamples stream (large labelled sets come in many pages).
LIST_TIMEOUT = 300.0
PAGE_SIZE = 2000


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    labels: tuple[str, ...]
    train_count: int
    dev_count: int


@dataclasses.dataclass(frozen=True)
class RunInfo:
    id: int
    dataset: str


class PoolClient:
    """The trainer's port to the pool: an adapter over the SDK's ``lesslabels.client.PoolClient``
    (its errors are the domain errors the trainer's servicer maps to status codes)."""

    def __init__(
        self, address: str, *, token: str = "", timeout: float = DEFAULT_TIMEOUT, tls: ClientTLS | None = None
    ):
        self.address = address
        self._pool = client.PoolClient(address, token=token, timeout=timeout, tls=tls)

    def close(self) -> None:
        self._pool.close()

    def dataset(self, name: str) -> DatasetInfo:
        reply = self._pool.get_dataset(name)
        return DatasetInfo(
            name=reply.name, labels=reply.labels, train_count=reply.train_count, dev_count=reply.dev_count
        )

    def run(self, run_id: int) -> RunInfo:
        reply = self._pool.get_run(run_id)
        return RunInfo(id=reply.id, dataset=reply.config.dataset)

    def labelled_counts(self, dataset: str, run_id: int) -> dict[str, int]:
        """Acquired labels per label in the train split, in the scope of ``run_id``."""
        counts = self._pool.get_counts(dataset, run_id=run_id)
        return {label: int(n) for label, n in counts.train.labelled_by_label.items() if n}

    def labelled_examples(self, dataset: str, run_id: int) -> list[Example]:
        """The train-split samples labelled in the scope of ``run_id``, with those labels."""
        samples = self._pool.list_samples(
            dataset, split="train", state="labelled", run_id=run_id, page_size=PAGE_SIZE, timeout=LIST_TIMEOUT
        )
        return [Example(s.id, s.text, s.label) for s in samples if s.label]

    def dev_examples(self, dataset: str) -> list[Example]:
        """The dev split with its gold labels (samples without one are skipped)."""
        samples = self._pool.list_samples(
            dataset, split="dev", include_gold=True, page_size=PAGE_SIZE, timeout=LIST_TIMEOUT
        )
        return [Example(s.id, s.text, s.gold_label) for s in samples if s.gold_label]
