"""Scoring with the fast head (``contract.FastHead``): a run's labels read from the pool, their
texts' embeddings from the embedding store (computed once with the base encoder through the model
cache), a logistic regression fit on them (cached per labelled set), and probabilities for any
texts whose embeddings the store holds or computes. Knows nothing of gRPC."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from lesslabels.common import errors
from lesslabels.common.checkpoints import labelled_set_hash
from lesslabels.contract import FastHead
from lesslabels.scorer import fast_head
from lesslabels.scorer.embedding_store import Embedded, EmbeddingModel, EmbeddingStore, folder_identity
from lesslabels.scorer.model_cache import ModelCache, ModelSpec, Scores
from lesslabels.scorer.pool_source import LabelledSample

log = logging.getLogger(__name__)

#: Scores a page of texts (a ScorePool chunk) with a head fit once for the whole stream.
PageScorer = Callable[[list[str], bool], Scores]

_PRECISION_NAMES = {"None": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16", "torch.float32": "fp32"}


class LabelSource(Protocol):
    """What the fast head reads about a run (``pool_source.PoolLabels`` over the pool service)."""

    def label_set(self, dataset: str) -> list[str]: ...

    def labelled(self, dataset: str, run_id: int) -> list[LabelledSample]: ...


def head_version(run_id: int, labelled_hash: str, model: EmbeddingModel) -> str:
    """``head-<run>-<12 hex of the labelled set hash>-<8 hex of the embedding model's key>``."""
    return f"head-{run_id}-{labelled_hash[:12]}-{model.key[:8]}"


class FastHeads:
    """Fit and apply fast heads; thread-safe."""

    def __init__(
        self,
        cache: ModelCache,
        store: EmbeddingStore,
        labels: LabelSource,
        heads: fast_head.HeadCache | None = None,
    ):
        self.cache = cache
        self.store = store
        self.labels = labels
        self.heads = heads or fast_head.HeadCache()

    # -- embeddings ------------------------------------------------------------------------------
    def embedding_model(self, base_model: str) -> tuple[ModelSpec, EmbeddingModel]:
        """The base encoder ``base_model`` names (loaded: InvalidArgument when it is not allowed) and
        the identity of the embeddings it computes."""
        spec = ModelSpec(base_model=base_model or "default")
        entry = self.cache.load(spec)  # InvalidArgument for a base model outside the allowed places
        source = self.cache.places.resolve(spec.base_model)  # its folder on this server
        model = EmbeddingModel(
            source=source,
            files=folder_identity(source),
            max_length=entry.model.max_length,
            precision=_PRECISION_NAMES.get(str(entry.model.dtype), str(entry.model.dtype)),
        )
        return spec, model

    def embed(
        self, base_model: str, texts: Sequence[str], *, cancelled: Callable[[], bool] = lambda: False
    ) -> Embedded:
        """Embeddings of ``texts`` by ``base_model``, kept ones read, the others computed and kept."""
        spec, model = self.embedding_model(base_model)
        return self._embed(spec, model, texts, cancelled)

    def embedder(
        self, base_model: str, *, cancelled: Callable[[], bool] = lambda: False
    ) -> Callable[[Sequence[str]], Embedded]:
        """``embed`` with ``base_model`` resolved once (InvalidArgument now when it is not allowed),
        for many pages of texts."""
        spec, model = self.embedding_model(base_model)
        return lambda texts: self._embed(spec, model, texts, cancelled)

    def _embed(
        self, spec: ModelSpec, model: EmbeddingModel, texts: Sequence[str], cancelled: Callable[[], bool]
    ) -> Embedded:
        def encode(batch: list[str]) -> tuple[np.ndarray, np.ndarray]:
            scores = self.cache.score(spec, batch, embeddings=True)
            assert scores.embeddings is not None  # asked for
            return scores.embeddings, scores.truncated

        return self.store.embeddings(model, texts, encode, cancelled=cancelled)

    # -- the head --------------------------------------------------------------------------------
    def head(self, ref: FastHead, *, cancelled: Callable[[], bool] = lambda: False) -> fast_head.FittedHead:
        """The head fit on ``ref``'s labels as they are now (fit once per labelled set)."""
        ref.validate()
        if not ref.dataset:
            raise errors.InvalidArgument("fast_head.dataset is required: the dataset of the run's labels")
        spec, model = self.embedding_model(ref.base_model)  # an unknown base model fails before pool traffic
        label_set = self.labels.label_set(ref.dataset)
        samples = self.labels.labelled(ref.dataset, ref.run_id)
        label_set = label_set or sorted({s.label for s in samples})
        labelled_hash = labelled_set_hash((s.sample_id, s.label) for s in samples)
        version = head_version(ref.run_id, labelled_hash, model)
        present = {s.label for s in samples}
        if len(present) < 2:  # before any embedding is computed
            have = f"only {next(iter(present))!r}" if present else "no labels"
            raise errors.FailedPrecondition(
                f"the {ref.describe()} needs labels of at least 2 classes; its labelled set has {have}"
                f" ({len(samples)} labels)"
            )

        line = (ref.dataset, ref.run_id, model.key)  # the run's heads on one model: each starts from the last

        def fit() -> fast_head.FittedHead:
            embedded = self._embed(spec, model, [s.text for s in samples], cancelled)
            start = self.heads.latest(line)
            head = fast_head.fit(embedded.vectors, [s.label for s in samples], label_set, version=version, start=start)
            log.info(
                "event=fast_head_fit version=%s labels=%d classes=%d/%d embedded=%d fit_seconds=%.3f iterations=%d"
                " warm=%s",
                version,
                head.train_count,
                len(head.classes),
                len(label_set),
                embedded.computed,
                head.fit_seconds,
                head.iterations,
                start is not None,
            )
            return head

        return self.heads.get((*line, labelled_hash, tuple(label_set)), fit, line=line)

    def score(
        self,
        ref: FastHead,
        texts: Sequence[str],
        *,
        embeddings: bool = False,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Scores:
        """Probabilities of ``texts`` under the head of ``ref`` (labels read now)."""
        return self.page_scorer(ref, cancelled=cancelled)(list(texts), embeddings)

    def page_scorer(self, ref: FastHead, *, cancelled: Callable[[], bool] = lambda: False) -> PageScorer:
        """Fit (or find) the head now and return a function scoring pages of texts with it: every
        page of one ScorePool stream is scored by the same head version."""
        head = self.head(ref, cancelled=cancelled)
        spec, model = self.embedding_model(ref.base_model)

        def score_page(texts: list[str], embeddings: bool) -> Scores:
            embedded = self._embed(spec, model, texts, cancelled)
            probs = head.probabilities(embedded.vectors)  # [n, c]
            return Scores.from_probabilities(
                head.version, head.labels, probs, embedded.truncated, embedded.vectors if embeddings else None
            )

        return score_page
