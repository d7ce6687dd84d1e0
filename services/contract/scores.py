"""Scores of texts under a model, as plain arrays (the scorer's replies, decoded by ``contract.wire``)."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Uncertainty:
    """Per-text uncertainty, each an array of shape [n] (higher = less certain, except margin)."""

    entropy: np.ndarray  # [n] float64
    margin: np.ndarray  # [n] float64: top-1 minus top-2 probability (small = uncertain)
    least_confidence: np.ndarray  # [n] float64: 1 - top-1 probability
    ratio: np.ndarray  # [n] float64: top-2 / top-1 probability


@dataclasses.dataclass(frozen=True)
class PoolScores:
    """A scored split (or one chunk of it), in the order the scorer returned it."""

    labels: tuple[str, ...]
    sample_ids: np.ndarray  # [n] int64
    predicted: np.ndarray  # [n] str
    probabilities: np.ndarray | None = None  # [n, c] float64, in label order
    embeddings: np.ndarray | None = None  # [n, d] float32
    gold: np.ndarray | None = None  # [n] str, test/dev splits only
    uncertainty: Uncertainty | None = None  # [n] each, as the scorer computed them from the probabilities
    checkpoint_id: str = ""  # the model that scored (the first chunk's): a checkpoint id or a fast head's version


@dataclasses.dataclass(frozen=True)
class EmbedProgress:
    """How far an embedding of a pool for the fast head is (the scorer's EmbedPool): samples done
    (embedded or found kept) of ``total``, and how many of them the encoder computed."""

    done: int
    total: int
    computed: int
