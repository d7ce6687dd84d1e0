"""The run state machine: seed -> label -> train -> evaluate -> score -> select -> label -> ...

Knows nothing of gRPC. It talks to three ports (see ``clients``): ``pool`` (runs, rounds,
acquisitions, labels), ``trainer`` (training jobs) and ``scorer`` (pool and test-split scores).

Durability: every step writes its outcome to the pool, then moves the run to the next step with a
compare-and-set on (step, round). A coordinator killed anywhere re-reads the run and redoes at most
the step it was in, and every step is safe to redo:
- SEED/SELECT store their acquisitions *before* advancing; a redo finds them and selects nothing new
  (the pool also refuses a sample acquired twice in a run);
- LABEL only reveals/asks for labels still missing;
- TRAIN uses an idempotency key derived from (run, round, attempt), so a retried StartTraining
  returns the job already started; a job the trainer lost is started again under the next attempt;
- EVALUATE/SCORE are pure functions of the round's checkpoint.

Acquisition rounds: the seed set is stored as round 0, the batch selected at the end of round r as
round r + 1, i.e. acquisitions of round r are labelled in round r's LABEL step and first trained on
in round r.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from lesslabels.common import errors
from lesslabels.common.timeutil import rfc3339, utcnow
from lesslabels.coordinator import convert, metrics, model, strategies

log = logging.getLogger(__name__)

#: Training jobs started for one round before the run fails (a job lost by a trainer restart, or
#: ended by a cancel or failure before a resume, is started again under the next attempt key).
MAX_TRAIN_ATTEMPTS = 20
#: Retries of a step that failed because a dependency was unavailable.
MAX_STEP_RETRIES = 5
RETRY_BACKOFF_SECONDS = 2.0
#: Base model name the scorer resolves to the bundled encoder, used when a run leaves it empty.
DEFAULT_BASE_MODEL = "default"


class _Stopped(Exception):
    """The worker was asked to stop (shutdown or cancel); the run is left as recorded."""


class _Pause(Exception):
    """The run waits for something outside the coordinator (human labels)."""


@dataclasses.dataclass
class _Worker:
    run_id: int
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    cancelled: bool = False
    finished: bool = False
    thread: threading.Thread | None = None
    job_id: str = ""


class EventBus:
    """Recent events per run, for WatchRun streams. Bounded; watchers wake on publish."""

    def __init__(self, keep: int = 200):
        self._cond = threading.Condition()
        self._events: dict[int, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=keep))
        self._seq = itertools.count(1)

    def publish(self, event: model.RunEvent) -> None:
        with self._cond:
            self._events[event.run.id].append((next(self._seq), event))
            self._cond.notify_all()

    def after(self, run_id: int, seq: int, timeout: float) -> list[tuple[int, model.RunEvent]]:
        with self._cond:
            def fresh():
                return [(s, e) for s, e in self._events.get(run_id, ()) if s > seq]

            found = fresh()
            if not found:
                self._cond.wait(timeout)
                found = fresh()
            return found

    def last_seq(self, run_id: int) -> int:
        with self._cond:
            events = self._events.get(run_id)
            return events[-1][0] if events else 0


class Coordinator:
    """Starts, advances, watches and cancels runs; one thread per run in progress."""

    def __init__(self, pool, trainer, scorer, *, retry_backoff: float = RETRY_BACKOFF_SECONDS):
        self.pool = pool
        self.trainer = trainer
        self.scorer = scorer
        self.events = EventBus()
        self._retry_backoff = retry_backoff
        self._lock = threading.Lock()
        self._run_locks_by_id: dict[int, threading.Lock] = {}
        self._workers: dict[int, _Worker] = {}
        # (run_id, round) -> pool scores of that round's checkpoint, for selection and agreement.
        self._scores: dict[tuple[int, int], model.PoolScores] = {}
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def recover(self) -> list[int]:
        """Pick up the runs left PENDING/RUNNING/WAITING_FOR_LABELS in the pool. Returns their ids."""
        runs = self.pool.list_runs(states=model.ACTIVE_STATES)
        for run in runs:
            log.info("event=recover run=%d state=%s step=%s round=%d", run.id, run.state, run.step, run.round)
            self._ensure_worker(run.id)
        return [r.id for r in runs]

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker, leaving runs as recorded (a later coordinator resumes them)."""
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
        for worker in workers:
            worker.stop.set()
        deadline = time.monotonic() + timeout
        for worker in workers:
            if worker.thread is not None:
                worker.thread.join(max(0.0, deadline - time.monotonic()))

    def active_runs(self) -> list[int]:
        with self._lock:
            return [i for i, w in self._workers.items() if w.thread is not None and w.thread.is_alive()]

    # ------------------------------------------------------------------ API

    def start_run(self, config: model.RunConfig, request_id: str = "") -> model.RunInfo:
        """Create a run and start driving it. A repeat with the same ``request_id`` returns the run
        created first (the pool keeps the key, so this holds across coordinator restarts)."""
        config = model.with_defaults(config)
        dataset = self.pool.get_dataset(config.dataset)
        if dataset.train_count == 0:
            raise errors.FailedPrecondition(f"dataset {config.dataset!r} has no training samples to select from")
        if config.stopping.label_budget is not None and config.stopping.label_budget.count > dataset.train_count:
            raise errors.InvalidArgument(
                f"stopping.label_budget {config.stopping.label_budget.count} exceeds the pool of {dataset.train_count}"
            )
        run = self.pool.create_run(config, request_id)
        log.info("event=run_created run=%d dataset=%s strategy=%s", run.id, config.dataset, config.strategy)
        self._publish(run, message=f"run {run.id} created on {config.dataset}")
        self._ensure_worker(run.id)
        return run

    def get_run(self, run_id: int) -> tuple[model.RunInfo, list[model.RoundInfo]]:
        return self.pool.get_run(run_id), self.pool.list_rounds(run_id)

    def list_runs(self, dataset: str = "", states: Sequence[str] = ()) -> list[model.RunInfo]:
        return self.pool.list_runs(dataset=dataset, states=states)

    def cancel_run(self, run_id: int) -> model.RunInfo:
        run = self.pool.get_run(run_id)
        if run.state in ("CANCELLED", "COMPLETED"):
            return run
        with self._run_lock(run_id):
            with self._lock:
                worker = self._workers.get(run_id)
            job_id = ""
            if worker is not None:
                job_id = worker.job_id  # read before stopping: the worker clears it on its way out
                worker.cancelled = True
                worker.stop.set()
            run = self.pool.update_run(run_id, state="CANCELLED", stop_reason="cancelled by a user")
        if job_id:
            try:
                self.trainer.cancel_job(job_id)
            except errors.LessLabelsError as exc:
                log.warning("event=cancel_job_failed run=%d job=%s error=%r", run_id, job_id, str(exc))
        log.info("event=run_cancelled run=%d", run_id)
        self._publish(run, message=f"run {run_id} cancelled")
        return run

    def resume_run(self, run_id: int) -> model.RunInfo:
        run = self.pool.get_run(run_id)
        if run.state == "COMPLETED":
            raise errors.FailedPrecondition(f"run {run_id} is completed ({run.stop_reason}); start a new run instead")
        if run.state in ("FAILED", "CANCELLED"):
            with self._run_lock(run_id):
                run = self.pool.update_run(run_id, state="RUNNING")
            log.info("event=run_resumed run=%d step=%s round=%d", run_id, run.step, run.round)
        self._ensure_worker(run_id)
        return run

    def pending_labels(self, run_id: int) -> model.PendingBatch:
        run = self.pool.get_run(run_id)
        labels = self.pool.get_dataset(run.config.dataset).labels
        if run.step != "LABEL":
            return model.PendingBatch(run_id, run.round, labels, ())
        batch = self.pool.list_acquisitions(run_id, run.round)
        return model.PendingBatch(run_id, run.round, labels, tuple(batch))

    def submit_labels(self, run_id: int, labels: Sequence[tuple[int, str]], *, annotator: str = "",
                      idempotency_key: str = "") -> tuple[model.LabelResult, int]:
        """Record human labels for the pending batch. Returns the pool's result and the number of
        samples of the batch still unlabelled; the run continues when that reaches 0."""
        run = self.pool.get_run(run_id)
        if run.config.oracle != "human":
            raise errors.FailedPrecondition(f"run {run_id} uses the simulated oracle; it takes no human labels")
        if not labels:
            raise errors.InvalidArgument("no labels given")
        with self._run_lock(run_id):
            run = self.pool.get_run(run_id)
            waiting = run.step == "LABEL" and run.state in ("RUNNING", "WAITING_FOR_LABELS", "PENDING")
            batch = {a.sample_id for a in self.pool.list_acquisitions(run_id, run.round)} if waiting else set()
            fresh = [(i, label) for i, label in labels if i in batch]
            repeats = self._repeats_of_recorded(run, [(i, label) for i, label in labels if i not in batch])
            if not fresh:
                return repeats, len(self.pool.list_acquisitions(run_id, run.round, pending_only=True)) if waiting else 0
            result = self.pool.submit_labels(run.config.dataset, run_id, fresh, annotator=annotator,
                                             idempotency_key=idempotency_key)
            result = dataclasses.replace(result, unchanged=result.unchanged + repeats.unchanged,
                                         labels=result.labels + repeats.labels)
            remaining = len(self.pool.list_acquisitions(run_id, run.round, pending_only=True))
            log.info("event=labels_submitted run=%d round=%d recorded=%d remaining=%d", run_id, run.round,
                     result.recorded, remaining)
            if remaining == 0:
                self._ensure_worker(run_id)
        self._publish(self.pool.get_run(run_id), message=f"{remaining} samples of the batch still unlabelled")
        return result, remaining

    def _repeats_of_recorded(self, run: model.RunInfo, labels: Sequence[tuple[int, str]]) -> model.LabelResult:
        """Labels outside the pending batch are fine only as repeats of labels already recorded
        (a retried import after the batch completed); anything else is refused."""
        if not labels:
            return model.LabelResult()
        recorded = {a.sample_id: a.label for a in self.pool.list_acquisitions(run.id)}
        outside = sorted({i for i, label in labels if recorded.get(i) != label or not label})
        if outside:
            where = f"round {run.round}" if run.step == "LABEL" else f"none pending: run is {run.state} at {run.step}"
            raise errors.InvalidArgument(
                f"samples {outside[:10]} are not in the pending batch of run {run.id} ({where})"
            )
        return model.LabelResult(unchanged=len(labels), labels=tuple(labels))

    def watch(self, run_id: int, is_active: Callable[[], bool] = lambda: True,
              poll: float = 1.0) -> Iterator[model.RunEvent]:
        """The run's current state, then each event until it ends or ``is_active()`` turns false."""
        seq = self.events.last_seq(run_id)
        run = self.pool.get_run(run_id)
        rounds = self.pool.list_rounds(run_id)
        yield model.RunEvent(run, rounds[-1] if rounds else None, message=f"run {run_id} is {run.state}")
        if run.state in model.FINAL_STATES:
            return
        while is_active():
            for seq, event in self.events.after(run_id, seq, poll):  # noqa: B007, B020 - the cursor follows the events read
                yield event
                if event.run.state in model.FINAL_STATES:
                    return
            if not self._has_live_worker(run_id):
                # Nothing will publish (paused, or stopped elsewhere): end once the stored state is final.
                current = self.pool.get_run(run_id)
                if current.state in model.FINAL_STATES:
                    yield model.RunEvent(current, message=f"run {run_id} is {current.state}")
                    return

    # ------------------------------------------------------------------ workers

    def _run_lock(self, run_id: int) -> threading.Lock:
        """Serialises a run's state changes between its worker, cancel and label submissions."""
        with self._lock:
            return self._run_locks_by_id.setdefault(run_id, threading.Lock())

    def _has_live_worker(self, run_id: int) -> bool:
        with self._lock:
            worker = self._workers.get(run_id)
            return worker is not None and not worker.finished and worker.thread is not None and worker.thread.is_alive()

    def _ensure_worker(self, run_id: int) -> None:
        """Start a worker for ``run_id`` unless one is advancing it already."""
        with self._lock:
            if self._closed:
                return
            worker = self._workers.get(run_id)
            # A stopped worker (cancelled) may still be finishing a call; it writes nothing more.
            if (worker is not None and not worker.finished and not worker.stop.is_set()
                    and worker.thread is not None and worker.thread.is_alive()):
                return
            worker = _Worker(run_id)
            worker.thread = threading.Thread(target=self._drive, args=(worker,), name=f"run-{run_id}", daemon=True)
            self._workers[run_id] = worker
            worker.thread.start()

    def _drive(self, worker: _Worker) -> None:
        run_id = worker.run_id
        failures = 0
        try:
            while not worker.stop.is_set():
                run = self.pool.get_run(run_id)
                if run.state not in model.ACTIVE_STATES or run.step == "DONE":
                    return
                try:
                    self._step(worker, run)
                    failures = 0
                except (_Stopped, _Pause):
                    return
                except errors.Unavailable as exc:
                    failures += 1
                    if failures > MAX_STEP_RETRIES:
                        self._fail(worker, run, exc)
                        return
                    log.warning("event=step_retry run=%d step=%s attempt=%d error=%r", run_id, run.step, failures, str(exc))
                    worker.stop.wait(self._retry_backoff * failures)
                except Exception as exc:  # noqa: BLE001 - recorded on the run, which can be resumed
                    if worker.stop.is_set():
                        return
                    log.exception("event=step_failed run=%d step=%s round=%d", run_id, run.step, run.round)
                    self._fail(worker, run, exc)
                    return
        except Exception:  # noqa: BLE001 - the pool itself is gone; the run stays as recorded
            log.exception("event=worker_crashed run=%d", run_id)
        finally:
            with self._run_lock(run_id):
                worker.finished = True

    def _fail(self, worker: _Worker, run: model.RunInfo, exc: BaseException) -> None:
        message = f"{run.step} of round {run.round} failed: {exc}"
        with self._run_lock(run.id):
            if worker.cancelled:
                return
            failed = self.pool.update_run(run.id, state="FAILED", error=message)
        self._publish(failed, message=message)

    def _advance(self, worker: _Worker, run: model.RunInfo, *, step: str = "", round: int | None = None,
                 state: str = "RUNNING", stop_reason: str = "", message: str = "",
                 round_info: model.RoundInfo | None = None) -> model.RunInfo:
        """Move ``run`` on from the step it was read at (compare-and-set), unless cancelled/stopped."""
        with self._run_lock(run.id):
            if worker.cancelled or worker.stop.is_set():
                raise _Stopped()
            updated = self.pool.update_run(
                run.id, state=state, step=step, round=run.round if round is None else round,
                stop_reason=stop_reason, expected_step=run.step, expected_round=run.round,
            )
        self._publish(updated, round_info, message=message)
        return updated

    def _publish(self, run: model.RunInfo, round_info: model.RoundInfo | None = None, *,
                 progress: float = 0.0, message: str = "") -> None:
        self.events.publish(model.RunEvent(run, round_info, progress, message))

    def _step(self, worker: _Worker, run: model.RunInfo) -> None:
        if run.state == "PENDING":
            run = self._advance(worker, run, message=f"run {run.id} started")
        handler = {
            "SEED": self._seed,
            "LABEL": self._label,
            "TRAIN": self._train,
            "EVALUATE": self._evaluate,
            "SCORE": self._score,
            "SELECT": self._select,
        }[run.step]
        handler(worker, run)

    # ------------------------------------------------------------------ steps

    def _seed(self, worker: _Worker, run: model.RunInfo) -> None:
        config = run.config
        existing = self.pool.list_acquisitions(run.id, 0)
        if not existing:
            ids = np.asarray(self.pool.train_sample_ids(config.dataset), dtype=np.int64)  # [n]
            assert config.seed_size is not None  # filled in by model.with_defaults
            k = config.seed_size.resolve(len(ids))
            budget = self._budget(run)
            if budget:
                k = min(k, budget)
            rng = np.random.default_rng([config.random_seed, 0])
            if config.seed_strategy == "diverse":
                self._publish(run, message="embedding the pool with the pretrained encoder")
                scores = self.scorer.score_pool(
                    dataset=config.dataset, run_id=run.id, base_model=config.base_model or DEFAULT_BASE_MODEL,
                    split="train", include_all=True, embeddings=True, probabilities=False,
                    progress=self._progress_cb(run, "embedding the pool"),
                )
                selection = strategies.select_seed("diverse", k, embeddings=scores.embeddings, rng=rng)
                chosen_ids = scores.sample_ids[selection.indices]
                strategy = ""
            else:
                selection = strategies.select_seed("random", k, n_samples=len(ids), rng=rng)
                chosen_ids = ids[selection.indices]
                strategy = "random"
            items = [model.Acquisition(int(i), 0, strategy, float(s)) for i, s in zip(chosen_ids, selection.scores, strict=True)]
            self._check_not_stopped(worker)
            self.pool.add_acquisitions(run.id, 0, items)
            count = len(items)
        else:
            count = len(existing)
        self._advance(worker, run, step="LABEL", round=0, message=f"seed set of {count} samples chosen "
                                                                   f"({config.seed_strategy})")

    def _label(self, worker: _Worker, run: model.RunInfo) -> None:
        pending = self.pool.list_acquisitions(run.id, run.round, pending_only=True)
        if pending and run.config.oracle == "human":
            with self._run_lock(run.id):
                if worker.cancelled or worker.stop.is_set():
                    raise _Stopped()
                still = self.pool.list_acquisitions(run.id, run.round, pending_only=True)
                if still:
                    waiting = run
                    if run.state != "WAITING_FOR_LABELS":
                        waiting = self.pool.update_run(run.id, state="WAITING_FOR_LABELS")
                    # Marked finished under the lock, so a submission completing the batch starts a new worker.
                    worker.finished = True
            if still:
                self._publish(waiting, message=f"round {run.round}: waiting for {len(still)} human labels")
                raise _Pause()
        elif pending:
            source = "seed" if run.round == 0 else "oracle"
            self.pool.reveal_labels(run.id, [a.sample_id for a in pending], source)
        labelled = self.pool.get_run(run.id).labelled_count
        self._advance(worker, run, step="TRAIN", message=f"round {run.round}: {labelled} labels")

    def _train(self, worker: _Worker, run: model.RunInfo) -> None:
        config = run.config
        rounds = {r.index: r for r in self.pool.list_rounds(run.id)}
        warm = rounds[run.round - 1].checkpoint_id if config.warm_start and run.round - 1 in rounds else ""
        info = rounds.get(run.round) or model.RoundInfo(run.id, run.round, started_at=rfc3339(utcnow()))
        info = dataclasses.replace(info, labelled_count=run.labelled_count)
        self._publish(run, info, message=f"round {run.round}: training on {run.labelled_count} labels")
        job = None
        for attempt in range(MAX_TRAIN_ATTEMPTS):
            request = model.TrainRequest(
                dataset=config.dataset, run_id=run.id, round=run.round, base_model=config.base_model,
                hyperparameters=config.hyperparameters, seed=config.random_seed, warm_start_checkpoint=warm,
                request_id=f"run-{run.id}-round-{run.round}-attempt-{attempt}",
            )
            job = self.trainer.start_training(request)
            # Ended before this worker watched it: INTERRUPTED (lost by a trainer restart), CANCELLED
            # (with this run, now resumed) or FAILED (the run failed and was resumed): train afresh.
            if job.state in ("INTERRUPTED", "CANCELLED", "FAILED"):
                log.info("event=train_job_lost run=%d round=%d job=%s attempt=%d", run.id, run.round, job.id, attempt)
                continue
            worker.job_id = job.id
            if info.train_job_id != job.id:
                info = dataclasses.replace(info, train_job_id=job.id)
                self.pool.put_round(info)
            try:
                job = self.trainer.wait_job(job.id, self._train_progress_cb(run, info), worker.stop.is_set)
            except errors.NotFound:
                log.info("event=train_job_lost run=%d round=%d job=%s attempt=%d", run.id, run.round, job.id, attempt)
                continue
            finally:
                worker.job_id = ""
            if job.state not in ("INTERRUPTED", "CANCELLED") or worker.stop.is_set():
                break
        self._check_not_stopped(worker)
        if job is None or job.state in ("INTERRUPTED", "CANCELLED", "QUEUED", "RUNNING"):
            raise errors.Unavailable(f"training of round {run.round} was interrupted {MAX_TRAIN_ATTEMPTS} times")
        if job.state != "SUCCEEDED":
            raise errors.FailedPrecondition(f"training job {job.id} {job.state.lower()}: {job.error or 'no reason given'}")
        started, finished = convert.parse_time(job.started_at), convert.parse_time(job.finished_at)
        seconds = (finished - started).total_seconds() if started and finished else 0.0
        info = dataclasses.replace(info, checkpoint_id=job.checkpoint_id, train_seconds=seconds)
        self.pool.put_round(info)
        self._advance(worker, run, step="EVALUATE", round_info=info,
                      message=f"round {run.round}: trained checkpoint {job.checkpoint_id} in {seconds:.0f}s")

    def _evaluate(self, worker: _Worker, run: model.RunInfo) -> None:
        info = self._round(run)
        scores = self.scorer.score_pool(
            dataset=run.config.dataset, run_id=run.id, checkpoint_id=info.checkpoint_id, split="test",
            include_all=True, probabilities=False, progress=self._progress_cb(run, "scoring the test split"),
        )
        test = metrics.classification_metrics(scores.gold if scores.gold is not None else [], scores.predicted
                                              if scores.gold is not None else [])
        info = dataclasses.replace(info, test=test, labelled_count=run.labelled_count)
        self.pool.put_round(info)
        text = f"round {run.round}: test accuracy {test.accuracy:.4f} macro-F1 {test.macro_f1:.4f} on {test.count}"
        reason = self._stop_reason(run, test)
        if reason:
            info = dataclasses.replace(info, finished_at=rfc3339(utcnow()))
            self.pool.put_round(info)
            self._advance(worker, run, step="DONE", state="COMPLETED", stop_reason=reason, round_info=info,
                          message=f"{text}; stopping: {reason}")
        else:
            self._advance(worker, run, step="SCORE", round_info=info, message=text)

    def _score(self, worker: _Worker, run: model.RunInfo) -> None:
        info = self._round(run)
        started = time.monotonic()
        scores = self._pool_scores(run, run.round, info.checkpoint_id)
        agreement = 0.0
        if run.round > 0:
            previous = self._previous_scores(run)
            if previous is not None:
                agreement = metrics.agreement(scores.sample_ids, scores.predicted, previous.sample_ids, previous.predicted)
        info = dataclasses.replace(info, agreement=agreement, score_seconds=time.monotonic() - started)
        self.pool.put_round(info)
        rule = run.config.stopping.stable_agreement
        if rule and run.round > 0 and agreement >= rule:
            reason = f"predictions stable: {agreement:.4f} of the pool unchanged (>= {rule:g})"
            info = dataclasses.replace(info, finished_at=rfc3339(utcnow()))
            self.pool.put_round(info)
            self._advance(worker, run, step="DONE", state="COMPLETED", stop_reason=reason, round_info=info,
                          message=f"round {run.round}: stopping: {reason}")
            return
        self._advance(worker, run, step="SELECT", round_info=info,
                      message=f"round {run.round}: pool scored, agreement {agreement:.4f}")

    def _select(self, worker: _Worker, run: model.RunInfo) -> None:
        config = run.config
        info = self._round(run)
        next_round = run.round + 1
        existing = self.pool.list_acquisitions(run.id, next_round)
        if existing:
            count = len(existing)  # selected before a restart: never select again
        else:
            started = time.monotonic()
            scores = self._pool_scores(run, run.round, info.checkpoint_id)
            acquired = {a.sample_id for a in self.pool.list_acquisitions(run.id)}
            exclude = np.isin(scores.sample_ids, np.fromiter(acquired, dtype=np.int64, count=len(acquired)))  # [n]
            assert config.batch_size is not None  # filled in by model.with_defaults
            k = config.batch_size.resolve(run.pool_size)
            budget = self._budget(run)
            if budget:
                k = min(k, budget - run.labelled_count)
            rng = np.random.default_rng([config.random_seed, next_round])
            selection = strategies.select(config.strategy, k, probs=scores.probabilities, embeddings=scores.embeddings,
                                          exclude=exclude, rng=rng)
            items = [
                model.Acquisition(int(scores.sample_ids[i]), next_round, config.strategy, float(s))
                for i, s in zip(selection.indices, selection.scores, strict=True)
            ]
            if not items:
                info = dataclasses.replace(info, finished_at=rfc3339(utcnow()))
                self.pool.put_round(info)
                self._advance(worker, run, step="DONE", state="COMPLETED", stop_reason="every pool sample is labelled",
                              round_info=info, message="pool exhausted")
                return
            self._check_not_stopped(worker)
            self.pool.add_acquisitions(run.id, next_round, items)
            count = len(items)
            info = dataclasses.replace(info, score_seconds=info.score_seconds + time.monotonic() - started)
        info = dataclasses.replace(info, selected_count=count, finished_at=rfc3339(utcnow()))
        self.pool.put_round(info)
        self._forget_scores(run.id, run.round - 1)
        self._advance(worker, run, step="LABEL", round=next_round, round_info=info,
                      message=f"round {run.round}: selected {count} samples ({config.strategy})")

    # ------------------------------------------------------------------ helpers

    def _check_not_stopped(self, worker: _Worker) -> None:
        if worker.cancelled or worker.stop.is_set():
            raise _Stopped()

    def _round(self, run: model.RunInfo) -> model.RoundInfo:
        for info in self.pool.list_rounds(run.id):
            if info.index == run.round:
                return info
        raise errors.FailedPrecondition(f"run {run.id} is at {run.step} of round {run.round} but the round is not recorded")

    def _budget(self, run: model.RunInfo) -> int:
        budget = run.config.stopping.label_budget
        return budget.resolve(run.pool_size) if budget is not None else 0

    def _stop_reason(self, run: model.RunInfo, test: model.Metrics) -> str:
        stop = run.config.stopping
        budget = self._budget(run)
        if budget and run.labelled_count >= budget:
            return f"label budget {budget} reached ({run.labelled_count} labelled)"
        if stop.max_rounds and run.round + 1 >= stop.max_rounds:
            return f"round limit {stop.max_rounds} reached"
        if stop.target_accuracy and test.count and test.accuracy >= stop.target_accuracy:
            return f"target accuracy {stop.target_accuracy:g} reached ({test.accuracy:.4f})"
        if run.labelled_count >= run.pool_size:
            return "every pool sample is labelled"
        return ""

    def _pool_scores(self, run: model.RunInfo, round_index: int, checkpoint_id: str) -> model.PoolScores:
        key = (run.id, round_index)
        with self._lock:
            cached = self._scores.get(key)
        if cached is not None:
            return cached
        strategy = run.config.strategy
        scores = self.scorer.score_pool(
            dataset=run.config.dataset, run_id=run.id, checkpoint_id=checkpoint_id, split="train", include_all=True,
            embeddings=strategy in strategies.NEEDS_EMBEDDINGS, probabilities=True,
            progress=self._progress_cb(run, f"round {round_index}: scoring the pool"),
        )
        with self._lock:
            self._scores[key] = scores
        return scores

    def _previous_scores(self, run: model.RunInfo) -> model.PoolScores | None:
        with self._lock:
            cached = self._scores.get((run.id, run.round - 1))
        if cached is not None:
            return cached
        previous = {r.index: r for r in self.pool.list_rounds(run.id)}.get(run.round - 1)
        if previous is None or not previous.checkpoint_id:
            return None
        # Lost with a restart: re-score the previous checkpoint (deterministic) for the agreement.
        return self.scorer.score_pool(
            dataset=run.config.dataset, run_id=run.id, checkpoint_id=previous.checkpoint_id, split="train",
            include_all=True, probabilities=False,
        )

    def _forget_scores(self, run_id: int, round_index: int) -> None:
        with self._lock:
            for key in [k for k in self._scores if k[0] == run_id and k[1] <= round_index]:
                del self._scores[key]

    def _progress_cb(self, run: model.RunInfo, what: str):
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if total and (done >= total or now - last[0] > 1.0):
                last[0] = now
                self._publish(run, progress=done / total, message=f"{what}: {done}/{total}")

        return progress

    def _train_progress_cb(self, run: model.RunInfo, info: model.RoundInfo):
        def progress(event: model.TrainProgress) -> None:
            fraction = event.step / event.total_steps if event.total_steps else 0.0
            text = f"round {run.round}: training epoch {event.epoch} step {event.step}/{event.total_steps}"
            self._publish(run, info, progress=fraction, message=event.message or text)

        return progress
