"""Everything the web app asks of the other services, in one place, as plain view dicts.

Handlers never see protobuf or gRPC. Service failures arrive as the domain errors of
``lesslabels.common.errors`` (mapped to HTTP status in ``app.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Protocol

import grpc

from lesslabels.common import errors
from lesslabels.common.channels import make_channel
from lesslabels.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc, pool_pb2, pool_pb2_grpc, run_pb2
from lesslabels.v1 import scorer_pb2, scorer_pb2_grpc

log = logging.getLogger(__name__)

_STATUS_TO_ERROR = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Unavailable,
    grpc.StatusCode.CANCELLED: errors.Cancelled,
}
SPLITS = {"train": common_pb2.SPLIT_TRAIN, "test": common_pb2.SPLIT_TEST, "dev": common_pb2.SPLIT_DEV}
IMPORT_CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Addresses:
    coordinator: str
    pool: str
    scorer: str
    token: str = ""
    timeout: float = 30.0


class Backend(Protocol):  # what the routers use; tests may give a fake
    def list_runs(self) -> list[dict]: ...


def _state(value: int) -> str:
    return run_pb2.RunState.Name(value).removeprefix("RUN_STATE_")


def _step(value: int) -> str:
    return run_pb2.RunStep.Name(value).removeprefix("RUN_STEP_")


def run_view(run: run_pb2.Run) -> dict:
    return {
        "id": run.id, "dataset": run.config.dataset, "state": _state(run.state), "step": _step(run.step),
        "round": run.round, "labelled": run.labelled_count, "pool_size": run.pool_size, "error": run.error,
        "stop_reason": run.stop_reason, "human": run.config.oracle == run_pb2.ORACLE_MODE_HUMAN,
        "strategy": run_pb2.Strategy.Name(run.config.strategy).removeprefix("STRATEGY_").lower().replace("_", "-"),
        "created_at": run.created_at, "updated_at": run.updated_at,
    }


def round_view(r: run_pb2.Round) -> dict:
    return {
        "index": r.index, "labelled": r.labelled_count, "checkpoint_id": r.checkpoint_id,
        "accuracy": r.test.accuracy if r.test.count else None, "macro_f1": r.test.macro_f1 if r.test.count else None,
        "per_class_f1": dict(sorted(r.test.per_class_f1.items())), "selected": r.selected_count,
        "train_seconds": r.train_seconds,
    }


class GrpcBackend:
    """The services through their gRPC APIs. Every call has a deadline."""

    def __init__(self, addresses: Addresses):
        self.addresses = addresses
        self.timeout = addresses.timeout
        self._channels = [make_channel(a, token=addresses.token) for a in (addresses.coordinator, addresses.pool, addresses.scorer)]
        self._coordinator = coordinator_pb2_grpc.CoordinatorServiceStub(self._channels[0])
        self._pool = pool_pb2_grpc.PoolServiceStub(self._channels[1])
        self._scorer = scorer_pb2_grpc.ScorerServiceStub(self._channels[2])
        # Suggestions per (run, round, checkpoint): the batch is scored once, not per keystroke.
        self._suggestions: dict[tuple[int, int, str], dict[int, list[tuple[str, float]]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def _call(self, stub, method: str, request, service: str, timeout: float | None = None):
        try:
            return getattr(stub, method)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise _domain_error(exc, service) from None

    # -- runs ---------------------------------------------------------------------------

    def list_runs(self) -> list[dict]:
        reply = self._call(self._coordinator, "ListRuns", pool_pb2.ListRunsRequest(), "coordinator")
        return [run_view(r) for r in reversed(reply.runs)]

    def run_detail(self, run_id: int) -> dict:
        detail = self._call(self._coordinator, "GetRun", pool_pb2.GetRunRequest(run_id=run_id), "coordinator")
        return {"run": run_view(detail.run), "rounds": [round_view(r) for r in detail.rounds]}

    def queue(self, run_id: int) -> dict:
        """The pending batch of a human-mode run, each text with the model's suggestion."""
        detail = self._call(self._coordinator, "GetRun", pool_pb2.GetRunRequest(run_id=run_id), "coordinator")
        pending = self._call(self._coordinator, "GetPendingLabels", coordinator_pb2.GetPendingLabelsRequest(run_id=run_id),
                             "coordinator")
        run = run_view(detail.run)
        checkpoint = next((r.checkpoint_id for r in sorted(detail.rounds, key=lambda r: -r.index)
                           if r.checkpoint_id and r.index < pending.round), "")
        suggestions = self._suggest(run_id, pending.round, checkpoint, pending.samples) if checkpoint else {}
        labels = list(pending.labels)
        items = []
        for s in pending.samples:
            probabilities = dict(suggestions.get(s.sample_id, ()))
            options = sorted(labels, key=lambda label: (-probabilities.get(label, -1.0), labels.index(label)))
            items.append({
                "sample_id": s.sample_id, "text": s.text, "label": s.label,
                "suggestion": options[0] if probabilities and options else "",
                "options": [{"label": label, "probability": probabilities.get(label)} for label in options],
            })
        return {"run": run, "round": pending.round, "labels": labels, "items": items,
                "total": len(items), "done": len(items) - pending.remaining, "remaining": pending.remaining,
                "model": checkpoint}

    def _suggest(self, run_id: int, round_: int, checkpoint: str, samples) -> dict[int, list[tuple[str, float]]]:
        key = (run_id, round_, checkpoint)
        with self._lock:
            cached = self._suggestions.get(key)
        if cached is not None and all(s.sample_id in cached for s in samples):
            return cached
        try:
            reply = self._call(self._scorer, "Score", scorer_pb2.ScoreRequest(
                model=common_pb2.ModelRef(checkpoint_id=checkpoint), texts=[s.text for s in samples]), "scorer", timeout=120)
        except errors.LessLabelsError as exc:  # labelling goes on without suggestions
            log.warning("event=suggestions_unavailable run=%d round=%d error=%s", run_id, round_, exc)
            return {}
        result = {s.sample_id: list(zip(reply.labels, score.probabilities)) for s, score in zip(samples, reply.scores)}
        with self._lock:
            self._suggestions = {k: v for k, v in self._suggestions.items() if k[0] != run_id}
            self._suggestions[key] = result
        return result

    def submit_label(self, run_id: int, sample_id: int, label: str, annotator: str, key: str) -> dict:
        reply = self._call(self._coordinator, "SubmitRunLabels", coordinator_pb2.SubmitRunLabelsRequest(
            run_id=run_id, labels=[pool_pb2.LabelAssignment(sample_id=sample_id, label=label)], annotator=annotator,
            idempotency_key=key), "coordinator")
        in_force = {a.sample_id: a.label for a in reply.result.labels}
        return {"sample_id": sample_id, "label": in_force.get(sample_id, label), "remaining": reply.remaining,
                "recorded": reply.result.recorded, "changed": reply.result.changed, "unchanged": reply.result.unchanged}

    # -- datasets -----------------------------------------------------------------------

    def list_datasets(self) -> list[dict]:
        reply = self._call(self._pool, "ListDatasets", pool_pb2.ListDatasetsRequest(), "pool")
        return [_dataset_view(d) for d in reply.datasets]

    def dataset(self, name: str) -> dict:
        dataset = self._call(self._pool, "GetDataset", pool_pb2.GetDatasetRequest(name=name), "pool")
        counts = self._call(self._pool, "GetCounts", pool_pb2.GetCountsRequest(dataset=name), "pool")
        view = _dataset_view(dataset)
        splits = {"train": counts.train, "test": counts.test, "dev": counts.dev}
        names = list(dataset.labels) + sorted(
            {k for c in splits.values() for k in (*c.labelled_by_label, *c.gold_by_label) if k} - set(dataset.labels))
        view["splits"] = {s: {"total": c.total, "labelled": c.labelled, "unlabelled": c.total - c.labelled} for s, c in splits.items()}
        view["by_label"] = [
            {"label": label, **{f"{s}_given": c.labelled_by_label.get(label, 0) for s, c in splits.items()},
             **{f"{s}_gold": c.gold_by_label.get(label, 0) for s, c in splits.items()}}
            for label in names
        ]
        return view

    def import_data(self, dataset: str, data: bytes, split: str = "train") -> dict:
        if split not in SPLITS:
            raise errors.InvalidArgument(f"unknown split {split!r} (train, test or dev)")
        header = pool_pb2.ImportHeader(dataset=dataset, split=SPLITS[split], create_dataset=True)

        def messages():
            yield pool_pb2.ImportSamplesRequest(header=header)
            for start in range(0, len(data), IMPORT_CHUNK):
                yield pool_pb2.ImportSamplesRequest(data=data[start:start + IMPORT_CHUNK])

        summary = self._call(self._pool, "ImportSamples", messages(), "pool", timeout=300)
        return {"dataset": summary.dataset, "imported": summary.imported, "duplicate_rows": summary.duplicate_rows}

    def export_labels(self, dataset: str) -> bytes:
        try:
            return b"".join(c.data for c in self._pool.ExportLabels(
                pool_pb2.ExportLabelsRequest(dataset=dataset), timeout=300))
        except grpc.RpcError as exc:
            raise _domain_error(exc, "pool") from None


def _dataset_view(d: pool_pb2.Dataset) -> dict:
    return {"name": d.name, "description": d.description, "labels": list(d.labels), "train": d.train_count,
            "test": d.test_count, "dev": d.dev_count, "labelled": d.labelled_count}


def _domain_error(exc: grpc.RpcError, service: str) -> errors.LessLabelsError:
    code = exc.code()
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return errors.Unavailable(f"the {service} service refused the web app's token (--token / LESSLABELS_TOKEN)")
    kind = _STATUS_TO_ERROR.get(code, errors.LessLabelsError)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return kind(f"the {service} service is not reachable ({code.name}): {exc.details()}")
    return kind(exc.details() or code.name)
