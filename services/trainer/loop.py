"""The fine-tuning loop. Knows nothing of gRPC, the pool or jobs: examples in, trained model out.

AdamW with linear warm-up and decay, length-grouped batches with dynamic padding (texts are
tokenised once), early stopping with patience on validation accuracy keeping the best epoch's
weights (validation after every epoch, or every few epochs so that a training validates at most
``MAX_VALIDATIONS`` times, always after the last), a length planned from the data (``max_epochs`` passes, more when ``min_steps`` or
``min_steps_per_class`` x classes need more; ``max_steps`` caps), a fresh head initialised from
class prototypes, no hold-out below ``holdout_min_per_class`` labels per class
(``validation_split``), seeded shuffling and initialisation (a CPU run with the same
seed and thread count is repeatable), optional class-weighted loss or class-balanced sampling,
bf16/fp16 autocast on CUDA (fp16 with a gradient scaler), where batches are built in pinned memory
and copied without blocking (``lesslabels.modeling.batching.to_device``). On CPU, ``auto``
precision means bf16 where the CPU computes it natively and fp32 elsewhere (bench/README.md has the
measurement). A cancel event is checked before every step.
"""

from __future__ import annotations

import hashlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lesslabels.common import errors
from lesslabels.modeling.batching import iterate_batches, length_grouped_batches, pin_memory_for, to_device, tokenize
from lesslabels.contract.metrics import classification_metrics
from lesslabels.contract import Hyperparameters, Metrics

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

EVAL_BATCH_SIZE = 128
# Validation passes per training at most: with few labels per class training runs many short
# epochs (300 CLINC150 labels: 64 epochs of 19 steps), and a 3,000-text dev split evaluated after
# each of them cost several times the training itself.
MAX_VALIDATIONS = 10
MAX_GRAD_NORM = 1.0


@dataclasses.dataclass(frozen=True)
class Example:
    sample_id: int
    text: str
    label: str


@dataclasses.dataclass(frozen=True)
class Progress:
    """One progress report of the loop (mirrors the training part of lesslabels.v1.TrainProgress)."""

    epoch: int
    step: int
    total_steps: int
    loss: float
    samples_per_second: float
    eta_seconds: float
    validation: Metrics | None = None
    message: str = ""


@dataclasses.dataclass
class TrainOutcome:
    best_epoch: int
    validation: Metrics | None
    epochs_run: int
    steps: int
    train_seconds: float
    samples_seen: int
    stop_reason: str

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.train_seconds if self.train_seconds > 0 else 0.0


def holdout_rank(sample_id: int, seed: int) -> int:
    """A sample's place in the order in which its class gives texts to the hold-out: a hash of
    (seed, sample id), so that it does not change as the labelled set grows."""
    digest = hashlib.blake2b(f"{seed}:{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def stratified_split(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out about ``fraction`` of each class for validation, keeping at least one per class
    for training. Deterministic in ``seed`` whatever the input order, and stable as the labelled
    set grows: each class holds out its texts of lowest ``holdout_rank``, so a text held out in one
    round stays held out in the next unless a newer text of its class ranks lower (then it trains).
    The rounds of a run therefore share most of their held-out texts, on which the trainer compares
    a new model with the model the run kept (``lesslabels.common.best``)."""
    by_label: dict[str, list[Example]] = {}
    for example in sorted(examples, key=lambda e: e.sample_id):
        by_label.setdefault(example.label, []).append(example)
    train: list[Example] = []
    validation: list[Example] = []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda e: holdout_rank(e.sample_id, seed))
        n_val = min(int(round(fraction * len(group))), len(group) - 1)
        validation.extend(group[:n_val])
        train.extend(group[n_val:])
    return sorted(train, key=lambda e: e.sample_id), sorted(validation, key=lambda e: e.sample_id)


def validation_split(
    examples: Sequence[Example], config: Hyperparameters, seed: int
) -> tuple[list[Example], list[Example]]:
    """The labelled set as (train, validation): a stratified hold-out of ``validation_fraction``
    when there are at least ``holdout_min_per_class`` labels per class on average, else every
    label for training and no validation (no early stopping). A hold-out of one or two texts per
    class judges epochs on noise and takes labels the model needs (bench/README.md)."""
    ordered = sorted(examples, key=lambda e: e.sample_id)
    n_classes = len({e.label for e in ordered})
    if not ordered or len(ordered) < config.holdout_min_per_class * n_classes:
        return ordered, []
    return stratified_split(ordered, config.validation_fraction, seed)


def validation_every(epochs: int) -> int:
    """Validate every this many epochs (and after the last): at most ``MAX_VALIDATIONS`` passes."""
    return max(1, math.ceil(epochs / MAX_VALIDATIONS))


def planned_steps(config: Hyperparameters, n_train: int, n_classes: int) -> tuple[int, int]:
    """(epochs, steps) the loop plans: ``max_epochs`` passes, more when ``min_steps`` or
    ``min_steps_per_class * n_classes`` need more, capped by ``max_steps``."""
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    floor = max(config.min_steps, config.min_steps_per_class * n_classes)
    epochs = max(config.max_epochs, math.ceil(floor / steps_per_epoch))
    total = steps_per_epoch * epochs
    if config.max_steps:
        total = min(total, config.max_steps)
    return epochs, total


def class_weights(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """n_samples / (n_classes_present * n_class_samples); 0 for classes without samples."""
    counts = np.bincount(targets, minlength=n_classes).astype(float)  # [n_classes]
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = targets.size / (present.sum() * counts[present])
    return weights


def balanced_order(targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """len(targets) indices drawn with replacement, each class equally likely."""
    counts = np.bincount(targets)  # [n_classes]
    p = 1.0 / counts[targets]  # [n_samples]
    return rng.choice(targets.size, size=targets.size, replace=True, p=p / p.sum())


def autocast_dtype(precision: str, device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = fp32): the scorer's rule
    (``auto`` = bf16 on CPUs with native bf16, where training steps run 2x fp32 on a 2-core Zen 4:
    bench/README.md), except that fp16 training needs CUDA (its gradient scaler)."""
    from lesslabels.modeling import inference

    if precision == "fp16" and device.type != "cuda":
        raise errors.InvalidArgument("precision fp16 needs CUDA; use bf16 or fp32 on CPU")
    return inference.autocast_dtype(precision, device)


def _linear_schedule(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def _param_groups(model, weight_decay: float) -> list[dict]:
    decay: list[Any] = []  # torch parameters
    no_decay: list[Any] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def evaluate(
    model,
    token_ids: Sequence[Sequence[int]],
    targets: np.ndarray,
    labels: Sequence[str],
    *,
    device,
    pad_id: int,
    dtype=None,
    batch_size: int = EVAL_BATCH_SIZE,
) -> Metrics:
    """Accuracy, F1 and mean cross-entropy of ``model`` on tokenised texts (batched by length)."""
    import torch

    logits = predict_logits(model, token_ids, device=device, pad_id=pad_id, dtype=dtype, batch_size=batch_size)
    loss = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(targets, dtype=torch.long)))
    return classification_metrics(targets, logits.argmax(dim=1).numpy(), labels, loss=loss)


def predict_logits(
    model, token_ids: Sequence[Sequence[int]], *, device, pad_id: int, dtype=None, batch_size: int = EVAL_BATCH_SIZE
):
    """Logits [n, n_classes] (float32, CPU) in input order; batches sorted by length, inference mode."""
    import torch

    was_training = model.training
    model.eval()
    n_classes = model.config.num_labels
    out = torch.empty((len(token_ids), n_classes), dtype=torch.float32)
    lengths = [len(ids) for ids in token_ids]
    try:
        with torch.inference_mode():
            batches = length_grouped_batches(lengths, batch_size)
            for indices, batch in iterate_batches(token_ids, batches, pad_id, pin_memory=pin_memory_for(device)):
                batch = to_device(batch, device)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logits = model(**batch).logits
                out[torch.as_tensor(indices)] = logits.float().cpu()
    finally:
        model.train(was_training)
    return out


def predict_labels(model, tokenizer, texts: Sequence[str], config: Hyperparameters, device) -> np.ndarray:
    """Predicted class indices [n] of ``model`` for ``texts``, tokenised and run as validation is."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    token_ids = tokenize(tokenizer, list(texts), config.max_length)
    dtype = autocast_dtype(config.precision, device)
    return predict_logits(model, token_ids, device=device, pad_id=pad_id, dtype=dtype).argmax(dim=1).numpy()


def init_head_from_prototypes(
    model,
    token_ids: Sequence[Sequence[int]],
    targets: np.ndarray,
    *,
    device,
    pad_id: int,
    dtype=None,
    batch_size: int = EVAL_BATCH_SIZE,
) -> bool:
    """Set the linear classification head to the class prototypes: row c = the L2-normalised mean
    of the features the head receives (e.g. BERT's pooled output) over class c's texts, zeros for
    a class without texts, bias 0. Weight imprinting (Qi et al. 2018) / prototypical networks
    (Snell et al. 2017). Returns False (head unchanged) when the model's ``classifier`` is not a
    single linear layer."""
    import torch

    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        log.info("event=prototype_head_skipped reason=classifier_not_linear")
        return False
    features = torch.zeros((len(token_ids), head.in_features), dtype=torch.float32)
    captured: list = []
    hook = head.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach().float().cpu()))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            lengths = [len(ids) for ids in token_ids]
            batches = length_grouped_batches(lengths, batch_size)
            for indices, batch in iterate_batches(token_ids, batches, pad_id, pin_memory=pin_memory_for(device)):
                batch = to_device(batch, device)
                captured.clear()
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    model(**batch)
                features[torch.as_tensor(indices)] = captured[0]
    finally:
        hook.remove()
        model.train(was_training)
    n_classes = head.out_features
    target = torch.as_tensor(targets, dtype=torch.long)
    sums = torch.zeros((n_classes, head.in_features)).index_add_(0, target, features)  # [c, d]
    counts = torch.bincount(target, minlength=n_classes).clamp(min=1)[:, None]  # [c, 1]
    prototypes = torch.nn.functional.normalize(sums / counts, dim=1)  # zero rows stay zero
    with torch.no_grad():
        head.weight.copy_(prototypes.to(head.weight.dtype))
        if head.bias is not None:
            head.bias.zero_()
    return True


def train(
    model,
    tokenizer,
    labels: Sequence[str],
    train_set: Sequence[Example],
    validation_set: Sequence[Example],
    config: Hyperparameters,
    *,
    seed: int,
    device,
    cancel: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 2.0,
    fresh_head: bool = True,
    between_steps: Callable[[], object] | None = None,
) -> TrainOutcome:
    """Fine-tune ``model`` in place; on return it holds the best epoch's weights.

    ``fresh_head``: the head is untrained (not a warm start), so ``head_init`` applies to it.
    ``between_steps`` is called after every optimizer step (the trainer's thread governor).

    Without validation examples every epoch counts as an improvement (no early stopping) and the
    last epoch is kept. Raises errors.Cancelled when ``cancel`` is set.
    """
    import torch

    config.validate()
    if not train_set:
        raise errors.FailedPrecondition("no training examples")
    label_index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({e.label for e in [*train_set, *validation_set]} - set(label_index))
    if unknown:
        raise errors.InvalidArgument(f"labels {unknown} are not in the classifier's label set {list(labels)}")
    cancel = cancel or threading.Event()
    emit = on_progress or (lambda _p: None)
    dtype = autocast_dtype(config.precision, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_ids = tokenize(tokenizer, [e.text for e in train_set], config.max_length)
    train_targets = np.array([label_index[e.label] for e in train_set], dtype=np.int64)
    val_ids = tokenize(tokenizer, [e.text for e in validation_set], config.max_length)
    val_targets = np.array([label_index[e.label] for e in validation_set], dtype=np.int64)
    lengths = np.array([len(ids) for ids in train_ids])
    pin = pin_memory_for(device)

    model.to(device)
    if fresh_head and config.head_init == "prototype":
        init_head_from_prototypes(model, train_ids, train_targets, device=device, pad_id=pad_id, dtype=dtype)
    model.train()
    # The fused kernel matters on CPU: the unfused step over MiniLM's 12M-parameter embedding
    # matrix cost about as much as the forward pass (bench/README.md).
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.learning_rate, fused=True)
    # A small labelled set gets more epochs: a few dozen steps leave the model predicting the
    # majority class (97 ATIS labels: 79% test accuracy after 18 steps, 97% after 252), and many
    # classes need steps in proportion to their number (bench/README.md, "Many classes").
    min_total = max(config.min_steps, config.min_steps_per_class * len(labels))
    epochs, total_steps = planned_steps(config, len(train_set), len(labels))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _linear_schedule(int(config.warmup_ratio * total_steps), total_steps)
    )
    weight = None
    if config.class_balance == "weighted_loss":
        weight = torch.as_tensor(class_weights(train_targets, len(labels)), dtype=torch.float32, device=device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)

    step = 0
    samples_seen = 0
    train_seconds = 0.0
    best_epoch = 0
    best_metrics: Metrics | None = None
    best_state = None
    bad_epochs = 0
    stop_reason = (
        f"max_epochs {config.max_epochs} reached"
        if epochs == config.max_epochs
        else f"{epochs} epochs reached (min_steps {config.min_steps}, "
        f"min_steps_per_class {config.min_steps_per_class} x {len(labels)} classes)"
    )
    epoch = 0
    every = validation_every(epochs)
    for epoch in range(1, epochs + 1):
        order = balanced_order(train_targets, rng) if config.class_balance == "sampling" else None
        batches = length_grouped_batches(lengths, config.batch_size, rng=rng, order=order)
        window_loss, window_steps, last_emit = 0.0, 0, time.monotonic()
        for indices, batch in iterate_batches(train_ids, batches, pad_id, pin_memory=pin):
            if cancel.is_set():
                raise errors.Cancelled(f"cancelled at epoch {epoch} step {step}")
            started = time.perf_counter()
            target = torch.empty(len(indices), dtype=torch.long, pin_memory=pin)  # [b]
            target.copy_(torch.from_numpy(train_targets[indices]))
            batch = to_device(batch, device)
            target = target.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(**batch).logits
            loss = loss_fn(logits.float(), target)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = float(loss.detach())
            train_seconds += time.perf_counter() - started
            step += 1
            samples_seen += len(indices)
            if between_steps is not None:
                between_steps()
            window_loss += loss_value
            window_steps += 1
            if not math.isfinite(loss_value):
                raise errors.FailedPrecondition(f"training diverged: loss {loss_value} at step {step}")
            if time.monotonic() - last_emit >= progress_every_s:
                emit(_progress(epoch, step, total_steps, window_loss / window_steps, samples_seen, train_seconds))
                window_loss, window_steps, last_emit = 0.0, 0, time.monotonic()
            if step >= total_steps:
                break
        metrics = None
        message = f"epoch {epoch} done"
        last = step >= total_steps or epoch == epochs
        validates = bool(validation_set) and (epoch % every == 0 or last)
        if validates:
            metrics = evaluate(model, val_ids, val_targets, labels, device=device, pad_id=pad_id, dtype=dtype)
            message += f", validation accuracy {metrics.accuracy:.4f}"
        if not validation_set or (metrics is not None and improves(metrics, best_metrics)):
            best_epoch, best_metrics, bad_epochs = epoch, metrics, 0
            if validation_set:
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        elif validates:
            bad_epochs += 1
        stop = ""
        if step >= total_steps and config.max_steps and step >= config.max_steps:
            stop = f"max_steps {config.max_steps} reached"
        elif bad_epochs >= config.patience and step >= min_total:
            stop = (
                f"early stop: no gain in validation accuracy for {bad_epochs} validations"
                f" (one every {every} epochs; best epoch {best_epoch})"
            )
        if stop:
            message += f"; {stop}"
        mean_loss = window_loss / window_steps if window_steps else 0.0
        emit(_progress(epoch, step, total_steps, mean_loss, samples_seen, train_seconds, metrics, message))
        log.info(
            "event=epoch_done epoch=%d step=%d val_accuracy=%s",
            epoch,
            step,
            f"{metrics.accuracy:.4f}" if metrics else "-",
        )
        if stop:
            stop_reason = stop
            break
    if best_state is not None and best_epoch != epoch:
        model.load_state_dict(best_state)
    return TrainOutcome(
        best_epoch=best_epoch,
        validation=best_metrics,
        epochs_run=epoch,
        steps=step,
        train_seconds=train_seconds,
        samples_seen=samples_seen,
        stop_reason=stop_reason,
    )


def improves(metrics: Metrics, best: Metrics | None) -> bool:
    """Higher validation accuracy, or equal accuracy and lower loss: a tie is common on a small
    validation set, and a plateau at the majority class must not pin the first epoch as the best."""
    if best is None:
        return True
    return metrics.accuracy > best.accuracy or (metrics.accuracy == best.accuracy and metrics.loss < best.loss)


def _progress(epoch, step, total_steps, loss, samples_seen, train_seconds, validation=None, message="") -> Progress:
    rate = samples_seen / train_seconds if train_seconds > 0 else 0.0
    seconds_per_step = train_seconds / step if step else 0.0
    return Progress(
        epoch=epoch,
        step=step,
        total_steps=total_steps,
        loss=loss,
        samples_per_second=rate,
        eta_seconds=max(0, total_steps - step) * seconds_per_step,
        validation=validation,
        message=message,
    )
