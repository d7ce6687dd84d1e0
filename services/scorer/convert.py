"""Protobuf <-> the scorer's own values (model references, scores, pool chunks), at the edge of ScorerService."""

from __future__ import annotations

from lesslabels.common import errors
from lesslabels.common.timeutil import rfc3339
from lesslabels.contract import FastHead, SampleQuery, wire
from lesslabels.scorer.model_cache import LoadedEntry, ModelSpec, Scores
from lesslabels.scorer.pool_scoring import PoolChunk, PoolQuery
from lesslabels.v1 import common_pb2, scorer_pb2


def model_from_proto(ref: common_pb2.ModelRef) -> ModelSpec | FastHead:
    """The model a Score or ScorePool request names: a loaded model's spec, or a fast head."""
    if ref.WhichOneof("ref") == "fast_head":
        return wire.fast_head_from_proto(ref.fast_head)
    return spec_from_proto(ref)


def spec_from_proto(ref: common_pb2.ModelRef) -> ModelSpec:
    """The loadable model ``ref`` names (a fast head is fit per call, never loaded: InvalidArgument)."""
    which = ref.WhichOneof("ref")
    if which is None:
        raise errors.InvalidArgument(
            "model is required: set checkpoint_id, latest_of_run, best_of_run, base_model or fast_head"
        )
    if which == "fast_head":
        raise errors.InvalidArgument("a fast head is fit at each Score or ScorePool call; it cannot be loaded")
    if which in ("latest_of_run", "best_of_run") and getattr(ref, which) <= 0:
        raise errors.InvalidArgument(f"{which} must be a positive run id, got {getattr(ref, which)}")
    if which == "checkpoint_id" and not ref.checkpoint_id:
        raise errors.InvalidArgument("checkpoint_id is empty")
    return ModelSpec(
        checkpoint_id=ref.checkpoint_id if which == "checkpoint_id" else "",
        latest_of_run=ref.latest_of_run if which == "latest_of_run" else 0,
        base_model=ref.base_model if which == "base_model" else "",
        best_of_run=ref.best_of_run if which == "best_of_run" else 0,
    )


def add_text_scores(container, scores: Scores, *, omit_probabilities: bool = False) -> None:
    """Append one TextScore per row of ``scores``, in row order, to the repeated field ``container``.
    Built in place: a list of TextScores given to the parent's constructor is copied into it (twice
    the response in memory). Probabilities and embeddings become Python floats one row at a time
    (4,096 embeddings of 384 floats are 48 MiB as Python floats at once)."""
    predicted = scores.predicted_labels()
    ent, mar = scores.entropy.tolist(), scores.margin.tolist()
    lc, rat = scores.least_confidence.tolist(), scores.ratio.tolist()
    trunc = scores.truncated.tolist()
    for i in range(len(scores)):
        container.add(
            probabilities=() if omit_probabilities else scores.probabilities[i].tolist(),
            predicted_label=predicted[i],
            entropy=ent[i],
            margin=mar[i],
            least_confidence=lc[i],
            ratio=rat[i],
            truncated=trunc[i],
            embedding=scores.embeddings[i].tolist() if scores.embeddings is not None else (),
        )


def score_response_to_proto(scores: Scores, *, omit_probabilities: bool = False) -> scorer_pb2.ScoreResponse:
    response = scorer_pb2.ScoreResponse(checkpoint_id=scores.checkpoint_id, labels=scores.labels)
    add_text_scores(response.scores, scores, omit_probabilities=omit_probabilities)
    return response


def loaded_to_proto(entry: LoadedEntry) -> scorer_pb2.LoadedModel:
    return scorer_pb2.LoadedModel(
        checkpoint_id=entry.name,  # a base model by its name, never its path on this server
        labels=entry.labels,
        base_model=entry.base_model,
        device=str(entry.model.device),
        max_length=entry.model.max_length,
        loaded_at=rfc3339(entry.loaded_at),
        runtime=entry.runtime,
    )


def pool_query_from_proto(request: scorer_pb2.ScorePoolRequest) -> PoolQuery:
    """The samples and model a ScorePool request asks for; InvalidArgument when it is not valid."""
    return PoolQuery(
        samples=wire.sample_query_from_proto(request),
        spec=model_from_proto(request.model),
        chunk_size=request.chunk_size,
        embeddings=request.include_embeddings,
    )


def embed_query_from_proto(request: scorer_pb2.EmbedPoolRequest) -> SampleQuery:
    """The samples an EmbedPool request embeds: every training sample of the dataset (or one shard),
    labelled or not, since the fast head reads the labelled ones' embeddings too."""
    return SampleQuery(dataset=request.dataset, include_all=True, shard=wire.shard_from_proto(request)).validate()


def pool_chunk_to_proto(chunk: PoolChunk, *, omit_probabilities: bool = False) -> scorer_pb2.ScorePoolChunk:
    message = scorer_pb2.ScorePoolChunk(
        checkpoint_id=chunk.checkpoint_id,
        labels=chunk.scores.labels,
        sample_ids=chunk.sample_ids,
        done=chunk.done,
        total=chunk.total,
        gold_labels=chunk.gold_labels,
    )
    add_text_scores(message.scores, chunk.scores, omit_probabilities=omit_probabilities)
    return message
