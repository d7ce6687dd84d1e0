"""The fast head as a model reference: a logistic regression on a base encoder's cached embeddings,
fit by the scorer on a run's labels as they are at the call (protos: ``ModelRef.fast_head``)."""

from __future__ import annotations

import dataclasses
import numbers

from lesslabels.common.errors import InvalidArgument

#: The longest base model name or path a reference may carry (as RunConfig.base_model).
MAX_BASE_MODEL_CHARS = 1024


@dataclasses.dataclass(frozen=True)
class FastHead:
    """The head fit on the labels of ``run_id`` (0: the dataset's own labels, given outside runs)
    in ``dataset`` over the embeddings of ``base_model`` ("" = the bundled all-MiniLM-L6-v2).
    ``dataset`` may stay "" where the call names it (ScorePool's samples)."""

    run_id: int
    dataset: str = ""
    base_model: str = ""

    def validate(self) -> FastHead:
        """Raise InvalidArgument naming the first impossible field; return self when all are fine."""
        if isinstance(self.run_id, bool) or not isinstance(self.run_id, numbers.Integral) or self.run_id < 0:
            raise InvalidArgument(
                f"fast_head.run_id must be a run id (0 = the dataset's own labels), got {self.run_id!r}"
            )
        if not isinstance(self.dataset, str) or not isinstance(self.base_model, str):
            raise InvalidArgument("fast_head.dataset and fast_head.base_model must be strings")
        if len(self.base_model) > MAX_BASE_MODEL_CHARS:
            raise InvalidArgument(
                f"fast_head.base_model is {len(self.base_model)} characters; at most {MAX_BASE_MODEL_CHARS}"
            )
        return self

    def on(self, dataset: str) -> FastHead:
        """This reference for a call about ``dataset``: its own dataset when it names one (which must
        then be ``dataset``), else ``dataset``."""
        if self.dataset and dataset and self.dataset != dataset:
            raise InvalidArgument(
                f"fast_head.dataset {self.dataset!r} is not the dataset scored ({dataset!r}); leave it empty"
            )
        return dataclasses.replace(self, dataset=self.dataset or dataset)

    def describe(self) -> str:
        scope = f"run {self.run_id}" if self.run_id else f"dataset {self.dataset!r}'s own labels"
        return f"fast head of {scope}"
