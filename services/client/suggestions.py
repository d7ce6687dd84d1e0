"""The model's suggestions for a batch a person labels: the one place both the web app and
``lesslabels label export`` get them from.

For each pending text: the predicted label, its probability and every label's probability, highest
first, from the model of the round before the batch (the model whose uncertainty chose the batch),
or, in an asynchronous run, from its fast head (refit on every label so far).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from lesslabels.client.scorer import ScorerClient
from lesslabels.client.types import PendingLabels
from lesslabels.contract import FastHead


@dataclasses.dataclass(frozen=True)
class Suggestion:
    sample_id: int
    predicted: str
    probability: float
    #: Every label with its probability, highest first.
    options: tuple[tuple[str, float], ...]


def batch_model(rounds: Sequence, batch_round: int) -> str:
    """The checkpoint of the latest round before ``batch_round`` that published one ("" for none:
    the seed batch of a run is chosen before any model exists)."""
    earlier = [r for r in rounds if r.checkpoint_id and r.index < batch_round]
    return max(earlier, key=lambda r: r.index).checkpoint_id if earlier else ""


def suggest(
    scorer: ScorerClient,
    pending: PendingLabels,
    checkpoint: str,
    *,
    fast_head: FastHead | None = None,
    timeout: float | None = None,
) -> dict[int, Suggestion]:
    """Score the batch's texts with ``checkpoint``, or with ``fast_head`` (an asynchronous run's
    newest model: refit on its labels as they are now); ``{}`` when there is no model yet."""
    if not (checkpoint or fast_head) or not pending.samples:
        return {}
    texts = [s.text for s in pending.samples]
    if fast_head is not None:
        scores = scorer.score(texts, fast_head=fast_head, timeout=timeout)
    else:
        scores = scorer.score(texts, checkpoint=checkpoint, timeout=timeout)
    probabilities = scores.probabilities  # [n, k], columns in scores.labels order
    order = np.argsort(-probabilities, axis=1, kind="stable")  # [n, k]
    result = {}
    for sample, row, ranks in zip(pending.samples, probabilities, order, strict=True):
        options = tuple((scores.labels[j], float(row[j])) for j in ranks)
        result[sample.sample_id] = Suggestion(sample.sample_id, options[0][0], options[0][1], options)
    return result
