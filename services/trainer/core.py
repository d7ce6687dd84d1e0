"""The trainer's core: check a request, fetch its data from the pool, train, publish. No gRPC types.

``Trainer.check`` runs synchronously when a job is asked for, so bad input comes back as the
call's status (NOT_FOUND, FAILED_PRECONDITION, INVALID_ARGUMENT); ``Trainer.run`` is the job
runner handed to the JobManager.

Validation data: the dataset's dev split (gold labels) when it has one, unless
``use_labelled_validation``; otherwise a stratified held-out part of the labelled set when it has
at least ``holdout_min_per_class`` labels per class, else none (every label trains, no early
stopping). Never the test split. A warm start keeps its checkpoint's head; a fresh head starts
from the class prototypes (``head_init``).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from google.protobuf import json_format

from lesslabels.common import checkpoints, errors, metrics
from lesslabels.common.checkpoints import CheckpointStore
from lesslabels.contract import Comparison, Hyperparameters, TrainRequest, wire
from lesslabels.modeling import models
from lesslabels.modeling.pooling import pooling_of
from lesslabels.trainer import loop
from lesslabels.trainer.loop import Example, Progress
from lesslabels.trainer.job_types import Job, RunResult
from lesslabels.trainer.label_source import PoolLabelSource
from lesslabels.trainer.threads import ThreadGovernor

log = logging.getLogger(__name__)

# torch.set_num_threads is process-wide: only the job thread changes it, one job at a time.
_threads_lock = threading.Lock()


def hyperparameters_dict(config: Hyperparameters) -> dict:
    """Hyperparameters as the manifest records them: every value, by CheckpointManifest field
    names and enum names."""
    return json_format.MessageToDict(
        wire.hyperparameters_to_proto(config, explicit=True),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


class Trainer:
    def __init__(
        self,
        pool: PoolLabelSource,
        store: CheckpointStore,
        *,
        device: str = "",
        keep_checkpoints: int = 3,
        default_threads: int = 0,
        progress_every_s: float = 2.0,
        model_dirs: tuple[str, ...] = (),
        onnx: bool = False,
    ):
        self.pool = pool
        self.store = store
        #: Where a request's base_model may come from (the bundled model, model_dirs, the store).
        self.places = models.ModelPlaces(tuple(model_dirs), str(store.root))
        self.device = models.select_device(device)
        self.keep_checkpoints = keep_checkpoints
        self.default_threads = default_threads
        self.progress_every_s = progress_every_s
        #: Publish each checkpoint with its ONNX graphs, fp32 and int8 (lesslabels.modeling.onnx_runtime).
        self.onnx = onnx

    # -- checks at submission -----------------------------------------------------------------

    def check_settings(self, settings: Hyperparameters) -> Hyperparameters:
        """The settings this trainer trains with: the contract's bounds, and what its device can do."""
        settings.validate()
        if settings.precision == "fp16" and self.device.type != "cuda":
            raise errors.InvalidArgument("precision fp16 needs CUDA; this trainer runs on cpu (use bf16 or fp32)")
        return settings

    def check(self, request: TrainRequest) -> TrainRequest:
        """Raise the domain error a caller can act on, or return the request with labels filled in."""
        self.check_settings(request.hyperparameters)
        if not request.dataset:
            raise errors.InvalidArgument("dataset is required")
        if request.run_id < 0 or request.round < 0:
            raise errors.InvalidArgument(f"run_id {request.run_id} and round {request.round} must not be negative")
        dataset = self.pool.dataset(request.dataset)
        if request.run_id:
            run = self.pool.run(request.run_id)
            if run.config.dataset and run.config.dataset != dataset.name:
                raise errors.InvalidArgument(
                    f"run {run.id} belongs to dataset {errors.quote(run.config.dataset)}, not {errors.quote(dataset.name)}"
                )
        labels = tuple(request.labels) or dataset.labels
        if len(set(labels)) != len(labels):
            raise errors.InvalidArgument(f"labels {list(labels)} contain duplicates")
        counts = self.pool.labelled_counts(dataset.name, request.run_id)
        scope = f"run {request.run_id}" if request.run_id else "the dataset (run 0)"
        if sum(counts.values()) == 0:
            raise errors.FailedPrecondition(
                f"no labelled samples in {scope} of {errors.quote(dataset.name)}: nothing to train on"
            )
        if len(counts) < 2:
            raise errors.FailedPrecondition(
                f"training needs labelled samples of at least 2 classes; {scope} of {errors.quote(dataset.name)} has {counts}"
            )
        outside = sorted(set(counts) - set(labels))
        if outside:
            raise errors.InvalidArgument(f"labelled classes {outside} are not in the label set {list(labels)}")
        if request.warm_start_checkpoint:
            own = self.store.get(request.warm_start_checkpoint).labels
            if own != list(labels):
                raise errors.InvalidArgument(
                    f"warm start checkpoint {request.warm_start_checkpoint} has labels {own}, not {list(labels)}"
                )
        else:
            self.check_base_model(request.base_model, request.hyperparameters.max_length)
        return dataclasses.replace(request, labels=labels)

    def check_base_model(self, base_model: str, max_length: int = 0) -> str:
        """The name a caller may be shown for ``base_model`` (``ModelPlaces.name_of``) when this
        trainer may train from it: inside its allowed places (else NOT_ALLOWED, whatever the disk
        holds there), loadable, with at least ``max_length`` positions (0: not checked). Errors
        quote the caller's name (``errors.quote``), never the server's path to it."""
        from transformers import AutoConfig

        def refused(reason: str) -> errors.InvalidArgument:
            return errors.InvalidArgument(f"base_model {errors.quote(base_model)}: {reason}")

        try:
            resolved = self.places.resolve(base_model)
        except errors.InvalidArgument as exc:
            raise refused(str(exc)) from None
        try:
            config = AutoConfig.from_pretrained(resolved, local_files_only=True, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001 - its text names the server's path: logged, not sent
            log.info("event=base_model_unloadable model=%s error=%r", resolved, str(exc))
            raise refused("cannot be loaded: its folder holds no model config that transformers reads") from None
        limit = getattr(config, "max_position_embeddings", 0) or 0
        if limit and max_length > limit:
            raise refused(f"max_length {max_length} exceeds the {limit} positions of the model")
        return self.places.name_of(resolved)

    # -- the job runner -------------------------------------------------------------------

    def run(self, job: Job, report: Callable[[Progress | str], None]) -> RunResult:
        import torch

        request = job.request
        config = request.hyperparameters
        labelled = self.pool.labelled_examples(request.dataset, request.run_id)
        if len({e.label for e in labelled}) < 2:
            raise errors.FailedPrecondition(f"the labelled set now has {len(labelled)} samples of fewer than 2 classes")
        train_set, validation_set, source = self._split(request, labelled)
        report(f"data: {len(train_set)} training samples, {len(validation_set)} validation samples ({source})")
        kept = self._kept_checkpoint(request)
        comparison: Comparison | None = None
        _raise_if_cancelled(job)
        with _threads_lock:
            previous = torch.get_num_threads()
            governor = ThreadGovernor(config.num_threads or self.default_threads)
            threads = governor.start()
            metrics.TRAINER_THREADS.set(threads)
            report(f"threads: {threads} of {governor.usable} usable CPUs" + ("" if governor.fixed else " (free now)"))

            def between_steps() -> int:
                chosen = governor.tick()
                metrics.TRAINER_THREADS.set(chosen)
                return chosen

            try:
                torch.manual_seed(request.seed)  # the fresh head's initialisation
                source_model = (
                    str(self.store.get(request.warm_start_checkpoint).path)
                    if request.warm_start_checkpoint
                    else self.places.resolve(request.base_model)
                )
                classifier = models.load_classifier(
                    source_model, list(request.labels), device=self.device, pooling=config.pooling
                )
                _raise_if_cancelled(job)
                outcome = loop.train(
                    classifier.model,
                    classifier.tokenizer,
                    list(request.labels),
                    train_set,
                    validation_set,
                    config,
                    seed=request.seed,
                    device=self.device,
                    cancel=job.cancel,
                    on_progress=report,
                    progress_every_s=self.progress_every_s,
                    fresh_head=not request.warm_start_checkpoint,
                    between_steps=between_steps,
                )
                _raise_if_cancelled(job)
                if kept is not None:
                    comparison = self._compare(kept, classifier, validation_set, request, report)
                if len(governor.changes) > 1:
                    log.info(
                        "event=threads_changed run=%s round=%s threads=%s",
                        request.run_id,
                        request.round,
                        governor.changes,
                    )
            finally:
                torch.set_num_threads(previous)
                metrics.TRAINER_THREADS.set(0)  # no training runs
        _raise_if_cancelled(job)
        manifest: dict[str, Any] = {  # the store's publish() fills in id, created_at, weights_sha256
            "run_id": request.run_id,
            "round": request.round,
            "base_model": request.base_model or "default",
            "labels": list(request.labels),
            # the pooling the model computes with (a warm start keeps its checkpoint's)
            "hyperparameters": hyperparameters_dict(dataclasses.replace(config, pooling=pooling_of(classifier.model))),
            "validation": outcome.validation.as_dict() if outcome.validation else None,
            "labelled_set_hash": checkpoints.labelled_set_hash((e.sample_id, e.label) for e in labelled),
            "dataset": request.dataset,
            "train_count": len(train_set),
            "seed": request.seed,
            "job_id": job.id,
            "best_epoch": outcome.best_epoch,
        }
        if manifest["validation"] is None:
            del manifest["validation"]
        if comparison is not None:
            manifest["comparison"] = comparison.as_dict()
        with self.store.publish(manifest) as folder:
            self.store.write_training_samples(folder, (e.sample_id for e in train_set))
            # transformers declares to() through functools.wraps(torch.nn.Module.to), which drops the bound self
            cpu_model = classifier.model.to("cpu")  # type: ignore[arg-type]
            models.save_classifier(cpu_model, classifier.tokenizer, folder)
            if self.onnx:
                report("exporting the model to ONNX (fp32 and int8) for the scorer")
                self._export_onnx(cpu_model, classifier.tokenizer, folder, request, [e.text for e in labelled])
        checkpoint_id = manifest["id"]
        metrics.TRAINER_TRAININGS.inc()
        metrics.TRAINER_STEPS.inc(outcome.steps)
        metrics.TRAINER_SAMPLES.inc(outcome.samples_seen)
        metrics.TRAINER_SAMPLES_PER_SECOND.set(outcome.samples_per_second)
        metrics.TRAINER_SECONDS.observe(outcome.train_seconds)
        if request.run_id and self.keep_checkpoints > 0:
            self.store.apply_retention(request.run_id, self.keep_checkpoints)
        message = f"{outcome.stop_reason}; published checkpoint {checkpoint_id} (best epoch {outcome.best_epoch})"
        return RunResult(
            checkpoint_id=checkpoint_id, validation=outcome.validation, message=message, comparison=comparison
        )

    def _export_onnx(self, model, tokenizer, folder, request: TrainRequest, texts: list[str]) -> None:
        """Write the checkpoint's ONNX graphs into its staging ``folder`` (so they are published with
        it), the int8 one checked on the run's labelled ``texts``. A model the export cannot handle
        is published without them (the scorer then serves it with torch) and the reason logged."""
        import torch

        from lesslabels.modeling import inference, onnx_runtime

        loaded = inference.InferenceModel(
            name=f"run {request.run_id} round {request.round}",
            model=model,
            tokenizer=tokenizer,
            device=torch.device("cpu"),
            max_length=request.hyperparameters.max_length,
            labels=list(request.labels),
        )
        try:
            onnx_runtime.build(loaded, folder, texts, threads=self.default_threads or torch.get_num_threads())
        except Exception as exc:  # noqa: BLE001 - any exporter or quantizer failure: torch serves it
            log.warning("event=onnx_export_failed run=%s round=%s error=%r", request.run_id, request.round, exc)
            shutil.rmtree(folder / onnx_runtime.FOLDER, ignore_errors=True)

    def _kept_checkpoint(self, request: TrainRequest) -> checkpoints.Checkpoint | None:
        """The checkpoint the request's run keeps now (``CheckpointStore.best``), which the new model
        is compared with; None for no run, none published yet, or other labels."""
        if not request.run_id:
            return None
        try:
            kept = self.store.best(request.run_id)
        except errors.NotFound:
            return None
        return kept if kept.labels == list(request.labels) else None

    def _compare(
        self,
        kept: checkpoints.Checkpoint,
        classifier: models.LoadedClassifier,
        validation_set: list[Example],
        request: TrainRequest,
        report: Callable[[Progress | str], None],
    ) -> Comparison | None:
        """The new model against ``kept`` on the validation texts ``kept`` did not train on (paired
        counts for ``lesslabels.common.best``); None when there are none, or ``kept`` did not
        record what it trained on or cannot be loaded."""
        trained = self.store.training_samples(kept)
        held_out = [e for e in validation_set if trained is not None and e.sample_id not in trained]
        if not held_out:
            return None
        report(f"comparing with checkpoint {kept.id}, which the run keeps, on {len(held_out)} held-out texts")
        try:
            previous = models.load_classifier(str(kept.path), list(request.labels), device=self.device)
        except errors.LessLabelsError as exc:
            log.warning("event=kept_checkpoint_unloadable id=%s error=%r", kept.id, str(exc))
            return None
        labels = list(request.labels)
        gold = np.array([labels.index(e.label) for e in held_out])  # [n]
        texts = [e.text for e in held_out]
        config = request.hyperparameters
        new_right = loop.predict_labels(classifier.model, classifier.tokenizer, texts, config, self.device) == gold
        kept_right = loop.predict_labels(previous.model, previous.tokenizer, texts, config, self.device) == gold
        comparison = Comparison(
            against=kept.id,
            count=len(held_out),
            new_only=int((new_right & ~kept_right).sum()),
            kept_only=int((kept_right & ~new_right).sum()),
        )
        report(
            f"on those texts the new model is right on {int(new_right.sum())}, checkpoint {kept.id} on "
            f"{int(kept_right.sum())}; the run keeps the "
            + ("earlier model" if comparison.kept_is_better() else "new model")
        )
        return comparison

    def _split(self, request: TrainRequest, labelled: list[Example]) -> tuple[list[Example], list[Example], str]:
        config = request.hyperparameters
        if not config.use_labelled_validation:
            dev = [e for e in self.pool.dev_examples(request.dataset) if e.label in set(request.labels)]
            if dev:
                return sorted(labelled, key=lambda e: e.sample_id), dev, "dev split"
        train_set, validation_set = loop.validation_split(labelled, config, request.seed)
        source = f"{config.validation_fraction:g} of the labelled set held out"
        if not validation_set:
            source = (
                f"fewer than {config.holdout_min_per_class} labels per class (or too few to hold out): "
                "no validation, no early stopping, last epoch kept"
            )
        return train_set, validation_set, source


def _raise_if_cancelled(job: Job) -> None:
    if job.cancel.is_set():
        raise errors.Cancelled("cancelled")
