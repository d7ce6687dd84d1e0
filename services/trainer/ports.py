"""What the trainer needs from outside, as typed ports.

:class:`~lesslabels.trainer.core.Trainer` reads labelled examples and run facts from a
:class:`LabelSource` (in production :class:`lesslabels.trainer.label_source.PoolLabelSource`) and
publishes checkpoints to a :class:`CheckpointSink` (:class:`lesslabels.common.checkpoints.CheckpointStore`).
Anything with these methods will do, a test fake included, and mypy checks that it fits.
"""

from __future__ import annotations

import contextlib
import pathlib
from typing import Any, Protocol

from lesslabels.common.checkpoints import Checkpoint
from lesslabels.trainer.loop import Example
from lesslabels import contract
from lesslabels.client import Dataset


class LabelSource(Protocol):
    """The pool, as far as training reads it."""

    def dataset(self, name: str) -> Dataset: ...

    def run(self, run_id: int) -> contract.Run: ...

    def labelled_counts(self, dataset: str, run_id: int) -> dict[str, int]: ...

    def labelled_examples(self, dataset: str, run_id: int) -> list[Example]: ...

    def dev_examples(self, dataset: str) -> list[Example]: ...

    def close(self) -> None:
        """Release the connection (the trainer server calls it when it stops)."""


class CheckpointSink(Protocol):
    """The checkpoint store, as far as training uses it: read a base checkpoint, publish, prune."""

    def get(self, checkpoint_id: str) -> Checkpoint: ...

    def publish(self, manifest: dict[str, Any]) -> contextlib.AbstractContextManager[pathlib.Path]: ...

    def apply_retention(self, run_id: int, keep_last: int, metric: str = "accuracy") -> list[str]: ...
