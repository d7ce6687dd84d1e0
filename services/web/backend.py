"""Everything the web app asks of the other services, through the client SDK, as plain view dicts.

Handlers never see protobuf or gRPC. Failures arrive as the SDK's domain errors
(``lesslabels.client.errors``, the same hierarchy as ``lesslabels.common.errors``), mapped to
HTTP status in ``app.py``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading

from lesslabels.client import (
    CoordinatorClient,
    InvalidArgument,
    LessLabelsError,
    PoolClient,
    ScorerClient,
    Suggestion,
    batch_model,
    kept_round,
    suggest,
)
from lesslabels.common.config import ClientTLS
from lesslabels.contract import FastHead, vocabulary
from lesslabels.web.agreement import label_agreement, pair_agreement
from lesslabels.web.importform import ImportOptions
from lesslabels.web.picker import LOW_CONFIDENCE, first_batch_order

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Addresses:
    coordinator: str
    pool: str
    scorer: str
    token: str = ""
    timeout: float = 30.0
    tls: ClientTLS | None = None


def run_view(run) -> dict:
    config = run.config
    return {
        "id": run.id,
        "name": config.name,
        "dataset": config.dataset,
        "state": run.state,
        "step": run.step,
        "round": run.round,
        "labelled": run.labelled_count,
        "pool_size": run.pool_size,
        "error": run.error,
        "stop_reason": run.stop_reason,
        "human": config.oracle == "human",
        "asynchronous": config.is_asynchronous,
        "ended": run.state in vocabulary.FINAL_RUN_STATES,
        "strategy": vocabulary.flag_name(config.strategy) if config.strategy else "",  # as the CLI spells it
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    }


def activity_view(detail) -> dict | None:
    """What the coordinator does for a run in progress: its latest line and the step's measured
    progress (done/total, speed, elapsed, ETA); None when it says nothing (an ended run)."""
    if not detail.message and detail.progress is None:
        return None
    progress = detail.progress
    return {
        "message": detail.message,
        "fraction": progress.fraction if progress else None,
        "done": progress.done if progress else None,
        "total": progress.total if progress else None,
        "unit": progress.unit if progress else "",
        "eta_seconds": progress.eta_seconds if progress else None,
        "elapsed_seconds": progress.elapsed_seconds if progress else None,
    }


def round_view(r) -> dict:
    test = r.test
    return {
        "index": r.index,
        "labelled": r.labelled_count,
        "checkpoint_id": r.checkpoint_id,
        "accuracy": test.accuracy if test else None,
        "macro_f1": test.macro_f1 if test else None,
        "per_class_f1": dict(sorted(test.per_class_f1.items())) if test else {},
        "selected": r.selected_count,
        "train_seconds": r.train_seconds,
        "validation_accuracy": r.validation.accuracy if r.validation and r.validation.count else None,
    }


class SdkBackend:
    """The services through ``lesslabels.client``. Every call has the SDK's deadline."""

    def __init__(self, addresses: Addresses):
        options = {"token": addresses.token, "timeout": addresses.timeout, "tls": addresses.tls}
        self.coordinator = CoordinatorClient(addresses.coordinator, **options)
        self.pool = PoolClient(addresses.pool, **options)
        self.scorer = ScorerClient(addresses.scorer, **options)
        self._suggestions: dict[tuple[int, int, str], dict[int, Suggestion]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        for client in (self.coordinator, self.pool, self.scorer):
            client.close()

    # -- runs ---------------------------------------------------------------------------

    def list_runs(self) -> list[dict]:
        return [run_view(r) for r in reversed(self.coordinator.list_runs())]

    def run_detail(self, run_id: int) -> dict:
        detail = self.coordinator.get_run(run_id)
        kept = kept_round(detail.rounds)
        return {
            "run": run_view(detail.run),
            "rounds": [round_view(r) for r in detail.rounds],
            "kept": round_view(kept) if kept else None,
            "activity": activity_view(detail),
        }

    def queue(self, run_id: int, annotator: str = "") -> dict:
        """The pending batch of a human-mode run, each text with the model's suggestion; an
        asynchronous run's queue as ``annotator`` may take it (the texts others hold left out),
        with the fast head's suggestions."""
        detail = self.coordinator.get_run(run_id)
        pending = self.coordinator.pending_labels(run_id, annotator=annotator)
        config = detail.run.config
        if config.is_asynchronous:
            head = FastHead(run_id, dataset=config.dataset, base_model=config.base_model)
            checkpoint = f"fast head at {detail.run.labelled_count} labels" if detail.run.labelled_count else ""
            suggestions = self._suggest(run_id, checkpoint, pending, fast_head=head) if checkpoint else {}
        else:
            checkpoint = batch_model(detail.rounds, pending.round)
            suggestions = self._suggest(run_id, checkpoint, pending)
        labels, order = list(pending.labels), "model"
        if not suggestions and pending.samples:
            labels, order = first_batch_order(labels, self._label_frequency(detail.run.config.dataset, run_id))
        items = []
        for s in pending.samples:
            suggestion = suggestions.get(s.sample_id)
            probabilities = dict(suggestion.options) if suggestion else {}
            options = sorted(labels, key=lambda label: (-probabilities.get(label, -1.0), labels.index(label)))
            items.append(
                {
                    "sample_id": s.sample_id,
                    "text": s.text,
                    "label": s.label,
                    "suggestion": options[0] if probabilities and options else "",
                    "options": [{"label": label, "probability": probabilities.get(label)} for label in options],
                }
            )
        return {
            "run": run_view(detail.run),
            "round": pending.round,
            "labels": labels,
            "items": items,
            "total": len(items),
            "done": len(items) - pending.remaining,
            "remaining": pending.remaining,
            "model": checkpoint,
            "order": order if items else "",
            "low_confidence": LOW_CONFIDENCE,
            "activity": activity_view(detail),
        }

    def _label_frequency(self, dataset: str, run_id: int) -> dict[str, int]:
        """How often each label occurs in the labelled data: labels people gave (in the run's
        scope) and the gold labels of the test and dev splits (train gold is the answer people
        are asked for, so it does not count)."""
        counts = self.pool.get_counts(dataset, run_id=run_id)
        frequency = collections.Counter(counts.train.labelled_by_label)
        frequency.update(counts.test.gold_by_label)
        frequency.update(counts.dev.gold_by_label)
        return dict(frequency)

    def _suggest(
        self, run_id: int, checkpoint: str, pending, fast_head: FastHead | None = None
    ) -> dict[int, Suggestion]:
        """Suggestions per (run, round, model): the batch is scored once, not per keystroke."""
        key = (run_id, pending.round, checkpoint)
        with self._lock:
            cached = self._suggestions.get(key)
        if cached is not None and all(s.sample_id in cached for s in pending.samples):
            return cached
        try:
            result = suggest(self.scorer, pending, checkpoint, fast_head=fast_head, timeout=120)
        except LessLabelsError as exc:  # labelling goes on without suggestions
            log.warning("event=suggestions_unavailable run=%d round=%d error=%s", run_id, pending.round, exc)
            return {}
        with self._lock:
            self._suggestions = {k: v for k, v in self._suggestions.items() if k[0] != run_id}
            self._suggestions[key] = result
        return result

    def submit_label(self, run_id: int, sample_id: int, label: str, annotator: str, key: str) -> dict:
        reply = self.coordinator.submit_labels(run_id, [(sample_id, label)], annotator=annotator, idempotency_key=key)
        in_force = dict(reply.result.labels).get(sample_id, label)
        # A second opinion (a text someone else labelled first) stays beside theirs: the person sees
        # their own label, and whether it differs (the text is then flagged for review).
        second = reply.result.second_opinions > 0
        return {
            "sample_id": sample_id,
            "label": label if second else in_force,
            "remaining": reply.remaining,
            "recorded": reply.result.recorded,
            "changed": reply.result.changed,
            "unchanged": reply.result.unchanged,
            "second_opinion": second,
            "flagged": second and in_force != label,
        }

    # -- datasets -----------------------------------------------------------------------

    def list_datasets(self) -> list[dict]:
        return [_dataset_view(d) for d in self.pool.list_datasets()]

    def dataset(self, name: str) -> dict:
        dataset = self.pool.get_dataset(name)
        counts = self.pool.get_counts(name)
        view = _dataset_view(dataset)
        splits = {"train": counts.train, "test": counts.test, "dev": counts.dev}
        names = list(dataset.labels) + sorted(
            {k for c in splits.values() for k in (*c.labelled_by_label, *c.gold_by_label) if k} - set(dataset.labels)
        )
        view["splits"] = {
            s: {"total": c.total, "labelled": c.labelled, "unlabelled": c.total - c.labelled} for s, c in splits.items()
        }
        view["by_label"] = [
            {
                "label": label,
                **{f"{s}_given": c.labelled_by_label.get(label, 0) for s, c in splits.items()},
                **{f"{s}_gold": c.gold_by_label.get(label, 0) for s, c in splits.items()},
            }
            for label in names
        ]
        return view

    def team(self, name: str) -> dict:
        """Who labelled what in the dataset (labels in force per annotator), how well people agree on
        the texts two or more of them labelled, and how many are flagged for review."""
        texts = self.pool.label_opinions(name)
        return {
            "annotators": [
                {"name": a.name, "labels": a.labels, "last_labelled_at": a.last_labelled_at}
                for a in self.pool.list_annotators(name)
            ],
            "double_labelled": len(texts),
            "flagged": sum(t.disputed for t in texts),
            "pairs": pair_agreement(texts),
            "per_label": label_agreement(texts),
        }

    def annotator_labels(self, name: str, annotator: str) -> list[dict]:
        """The labels in force in the dataset that ``annotator`` gave, newest first."""
        samples = self.pool.list_samples(name, state="labelled", annotator=annotator)
        rows = [
            {
                "sample_id": s.id,
                "text": s.text,
                "label": s.label,
                "labelled_at": s.labelled_at,
                "source": s.label_source,
            }
            for s in samples
        ]
        return sorted(rows, key=lambda r: r["labelled_at"], reverse=True)

    def flagged(self, name: str) -> list[dict]:
        """The texts people labelled differently, with no review since, each with every opinion."""
        return [
            {
                "sample_id": t.sample_id,
                "text": t.text,
                "label": t.label,
                "opinions": [{"annotator": o.annotator, "label": o.label, "at": o.labelled_at} for o in t.opinions],
                "review": {"annotator": t.review.annotator, "label": t.review.label} if t.review else None,
            }
            for t in self.pool.label_opinions(name, disputed_only=True)
        ]

    def resolve(self, name: str, sample_id: int, label: str, reviewer: str, key: str) -> dict:
        """The reviewer's final label for a flagged text: in force for the dataset and its runs."""
        result = self.pool.review_labels(name, [(sample_id, label)], reviewer=reviewer, idempotency_key=key)
        return {"sample_id": sample_id, "label": dict(result.labels).get(sample_id, label)}

    def import_data(
        self, dataset: str, data: bytes, split: str = "train", options: ImportOptions | None = None, check: bool = False
    ) -> dict:
        """Import a file (``check``: a dry run, nothing stored) with the form's column mapping; the
        summary as the pool reports it: columns read and left out, rows per label and split, and the
        rows repeating a text."""
        options = options or ImportOptions(dataset=dataset, split=split)
        problems = options.problems()
        if problems:
            raise InvalidArgument(problems[0])
        summary = self.pool.import_chunks(
            dataset,
            [data],
            split=options.split,
            format=options.format,
            create=True,
            text_column=options.text_column,
            label_column=options.label_column,
            id_column=options.id_column,
            ignore_extra=options.ignore_extra,
            allow_similar_labels=options.allow_similar_labels,
            check=check,
        )
        order = ("text", "label", "id", "split")
        read = {f: c for f, c in summary.columns.items() if f != "ignored"}
        return {
            "dataset": summary.dataset,
            "imported": summary.imported,
            "checked_only": summary.checked_only,
            "format": summary.format,
            "columns": sorted(read.items(), key=lambda fc: (order.index(fc[0]) if fc[0] in order else 9, fc[0])),
            "left_out": summary.columns.get("ignored", ""),
            "by_label": sorted(summary.by_label.items(), key=lambda kv: (-kv[1], kv[0])),
            "by_split": sorted(summary.by_split.items()),
            "duplicate_rows": summary.duplicate_rows,
            "duplicates": [
                {"rows": [r + 1 for r in d.rows[:5]], "text": d.text, "first_row": d.first_row + 1}
                for d in summary.duplicates[:10]
            ],
        }

    def export_labels(self, dataset: str) -> bytes:
        return self.pool.export_labels(dataset)


def _dataset_view(d) -> dict:
    return {
        "name": d.name,
        "description": d.description,
        "labels": list(d.labels),
        "train": d.train_count,
        "test": d.test_count,
        "dev": d.dev_count,
        "labelled": d.labelled_count,
    }
