"""The coordinator's core: starts, watches, cancels and resumes runs, takes human labels, and keeps
one worker thread per run in progress, which drives the run step by step (``steps``).

Knows nothing of gRPC; its dependencies are the pool, the run store, the trainer and the scorer
(``ports``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from lesslabels.common import errors, metrics
from lesslabels import contract
from lesslabels.contract import vocabulary
from lesslabels.coordinator.annotator import SimulatedAnnotator
from lesslabels.coordinator.events import EventBus
from lesslabels.coordinator.ports import PoolPort, RunStorePort, ScorerPort, TrainerPort
from lesslabels.coordinator.queue import QueueKeeper, fine_tune_due
from lesslabels.coordinator.shared_reads import SharedRunReads
from lesslabels.coordinator.sharding import ScorerReplicas
from lesslabels.coordinator.steps import StepRunner
from lesslabels.coordinator.worker import Pause, RunLocks, Stopped, Worker

log = logging.getLogger(__name__)

#: First pause after a step failed because a dependency was unavailable; it doubles up to
#: MAX_RETRY_BACKOFF_SECONDS while the outage lasts.
RETRY_BACKOFF_SECONDS = 2.0
MAX_RETRY_BACKOFF_SECONDS = 30.0
#: How long a run rides out UNAVAILABLE / DEADLINE_EXCEEDED from pool, trainer or scorer before it fails.
OUTAGE_SECONDS = 300.0
#: Names of the bundled base model, which every trainer has (others are checked with the trainer).
DEFAULT_BASE_MODELS = ("", "default")
#: How often the coordinator looks for active runs that no worker advances (see ``_supervise``).
SUPERVISE_SECONDS = 5.0


def _sum(a: contract.LabelResult, b: contract.LabelResult) -> contract.LabelResult:
    return contract.LabelResult(
        recorded=a.recorded + b.recorded,
        unchanged=a.unchanged + b.unchanged,
        changed=a.changed + b.changed,
        labels=a.labels + b.labels,
        second_opinions=a.second_opinions + b.second_opinions,
    )


def _count_active(runs: Sequence[contract.Run]) -> None:
    """The active runs by state, for ``metrics.COORDINATOR_RUNS``."""
    states = collections.Counter(run.state for run in runs)
    for state in vocabulary.ACTIVE_RUN_STATES:
        metrics.COORDINATOR_RUNS.labels(state).set(states[state])


class Coordinator:
    """Starts, advances, watches and cancels runs; one thread per run in progress."""

    def __init__(
        self,
        pool: PoolPort,
        runs: RunStorePort,
        trainer: TrainerPort,
        scorer: ScorerPort | ScorerReplicas,
        *,
        retry_backoff: float = RETRY_BACKOFF_SECONDS,
        outage_seconds: float = OUTAGE_SECONDS,
        supervise_seconds: float = SUPERVISE_SECONDS,
    ):
        self.pool = pool
        self.runs = runs
        self.trainer = trainer
        self.scorer = scorer
        self.events = EventBus()
        # What WatchRun streams of a run no worker advances read from the pool: one read per run and poll.
        self._stored_runs = SharedRunReads(lambda run_id: self.runs.get_run(run_id))
        self._retry_backoff = retry_backoff
        self._outage_seconds = outage_seconds
        self._supervise_seconds = supervise_seconds
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._run_lock = RunLocks()
        self._workers: dict[int, Worker] = {}
        self._steps = StepRunner(pool, runs, trainer, scorer, self.events, self._run_lock)
        self.queue = QueueKeeper(runs, self._steps, self._run_lock)
        self._annotators: dict[int, SimulatedAnnotator] = {}
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def recover(self) -> list[int]:
        """Pick up the runs left PENDING/RUNNING/WAITING_FOR_LABELS in the pool and start watching for
        runs no worker advances (``_supervise``). Returns the ids picked up now; with the pool
        unreachable, none: the supervisor picks them up once it answers."""
        with self._lock:
            if self._supervisor is None and not self._closed:
                self._supervisor = threading.Thread(target=self._supervise, name="run-supervisor", daemon=True)
                self._supervisor.start()
        try:
            runs = self.runs.list_runs(states=vocabulary.ACTIVE_RUN_STATES)
        except errors.Unavailable as exc:
            log.warning("event=recover_deferred error=%r", str(exc))
            return []
        _count_active(runs)
        for run in runs:
            log.info("event=recover run=%d state=%s step=%s round=%d", run.id, run.state, run.step, run.round)
            self._ensure_worker(run.id)
        return [r.id for r in runs]

    def _supervise(self) -> None:
        """Every few seconds: start a worker for each active run that has none, or whose worker
        ended without an outcome (it crashed, or the pool was gone when it tried to record one)."""
        while not self._stopping.wait(self._supervise_seconds):
            try:
                runs = self.runs.list_runs(states=vocabulary.ACTIVE_RUN_STATES)
            except errors.LessLabelsError as exc:
                log.warning("event=supervise_skipped error=%r", str(exc))
                continue
            _count_active(runs)
            for run in runs:
                with self._lock:
                    worker = self._workers.get(run.id)
                    orphaned = worker is None or (worker.finished and not worker.outcome)
                if orphaned:
                    log.warning("event=run_picked_up run=%d state=%s step=%s", run.id, run.state, run.step)
                    self._ensure_worker(run.id)

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker, leaving runs as recorded (a later coordinator resumes them)."""
        self._stopping.set()
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

    def start_run(self, config: contract.RunConfig, request_id: str = "") -> contract.Run:
        """Create a run and start driving it. A repeat with the same ``request_id`` returns the run
        created first (the pool keeps the key, so this holds across coordinator restarts)."""
        config = config.with_defaults()
        dataset = self.pool.get_dataset(config.dataset)
        if dataset.train_count == 0:
            raise errors.FailedPrecondition(
                f"dataset {errors.quote(config.dataset)} has no training samples to select from"
            )
        if config.stopping.label_budget is not None and config.stopping.label_budget.count > dataset.train_count:
            raise errors.InvalidArgument(
                f"stopping.label_budget {config.stopping.label_budget.count} exceeds the pool of {dataset.train_count}"
            )
        if config.seed_size is not None and config.seed_size.count > dataset.train_count:
            raise errors.InvalidArgument(
                f"seed_size {config.seed_size.count} exceeds the pool of {dataset.train_count} training texts "
                "(the run would label the whole pool at once); give fewer, or a fraction such as 2%"
            )
        if config.stopping.target_accuracy and dataset.test_count == 0:
            raise errors.InvalidArgument(
                f"stopping.target_accuracy {config.stopping.target_accuracy:g} can never be reached: dataset "
                f"{config.dataset!r} has no test split to measure accuracy on (import labelled test rows first, "
                "or stop on a label budget or a number of rounds)"
            )
        if config.candidates and config.batch_size is not None:
            batch = config.batch_size.resolve(dataset.train_count)
            if batch > config.candidates:
                raise errors.InvalidArgument(
                    f"batch_size {config.batch_size.describe()} ({batch} samples) exceeds candidates "
                    f"{config.candidates}: a round selects its batch out of the candidates it scores; give "
                    "more candidates or a smaller batch"
                )
        self._check_base_model(config)
        run = self.runs.create_run(config, request_id)
        log.info("event=run_created run=%d dataset=%s strategy=%s", run.id, config.dataset, config.strategy)
        self.events.announce(run, message=f"run {run.id} created on {config.dataset}")
        self._ensure_worker(run.id)
        return run

    def _check_base_model(self, config: contract.RunConfig) -> None:
        """Refuse a base model the trainer may not train from before the run is stored (else the run
        would fail at its first fine-tune). The trainer's model folders are the one allow-list (the
        scorer is given the same); the bundled model needs no question."""
        if config.base_model in DEFAULT_BASE_MODELS:
            return
        try:
            self.trainer.check_base_model(config.base_model, config.hyperparameters.max_length)
        except errors.InvalidArgument as exc:
            raise errors.InvalidArgument(exc.details or str(exc)) from None
        except errors.Unavailable as exc:
            log.warning("event=base_model_unchecked error=%r", str(exc))
            raise errors.Unavailable(
                f"base_model {errors.quote(config.base_model)} cannot be checked now: the trainer does not "
                "answer; nothing was stored, try again"
            ) from None

    def get_run(self, run_id: int) -> tuple[contract.Run, list[contract.Round]]:
        return self.runs.get_run(run_id), self.runs.list_rounds(run_id)

    def latest_event(self, run_id: int) -> contract.RunEvent | None:
        """The run's last event (its message and step progress), as WatchRun last sent it."""
        return self.events.latest(run_id)

    def list_runs(self, dataset: str = "", states: Sequence[str] = ()) -> list[contract.Run]:
        return self.runs.list_runs(dataset=dataset, states=states)

    def cancel_run(self, run_id: int) -> contract.Run:
        run = self.runs.get_run(run_id)
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
            run = self.runs.update_run(run_id, state="CANCELLED", stop_reason="cancelled by a user")
            metrics.COORDINATOR_RUNS_ENDED.labels("CANCELLED").inc()
        if job_id:
            try:
                self.trainer.cancel_job(job_id)
            except errors.LessLabelsError as exc:
                log.warning("event=cancel_job_failed run=%d job=%s error=%r", run_id, job_id, str(exc))
        log.info("event=run_cancelled run=%d", run_id)
        self.events.announce(run, message=f"run {run_id} cancelled")
        return run

    def resume_run(self, run_id: int) -> contract.Run:
        run = self.runs.get_run(run_id)
        if run.state == "COMPLETED":
            raise errors.FailedPrecondition(f"run {run_id} is completed ({run.stop_reason}); start a new run instead")
        if run.state in ("FAILED", "CANCELLED"):
            with self._run_lock(run_id):
                run = self.runs.update_run(run_id, state="RUNNING")
            log.info("event=run_resumed run=%d step=%s round=%d", run_id, run.step, run.round)
        self._ensure_worker(run_id)
        return run

    def pending_labels(self, run_id: int, annotator: str = "") -> contract.PendingBatch:
        """The texts waiting for a label: the batch of a synchronous run at LABEL; the queue of an
        asynchronous run at any step, without the texts leased to other annotators (those
        returned are leased to ``annotator`` when one is named)."""
        if len(annotator) > contract.MAX_ANNOTATOR_LENGTH:
            raise errors.InvalidArgument(
                f"annotator is {len(annotator)} characters; at most {contract.MAX_ANNOTATOR_LENGTH}"
            )
        run = self.runs.get_run(run_id)
        labels = self.pool.get_dataset(run.config.dataset).labels
        if run.config.is_asynchronous:
            if run.state not in vocabulary.ACTIVE_RUN_STATES or run.step in ("SEED", "DONE"):
                return contract.PendingBatch(run_id, run.round, labels, ())
            return contract.PendingBatch(run_id, run.round, labels, tuple(self.queue.pending(run, annotator)))
        if run.step != "LABEL":
            return contract.PendingBatch(run_id, run.round, labels, ())
        batch = self.runs.list_acquisitions(run_id, run.round)
        return contract.PendingBatch(run_id, run.round, labels, tuple(batch))

    def submit_labels(
        self, run_id: int, labels: Sequence[tuple[int, str]], *, annotator: str = "", idempotency_key: str = ""
    ) -> tuple[contract.LabelResult, int]:
        """Record human labels for the pending batch. Returns the pool's result and the number of
        samples of the batch still unlabelled; the run continues when that reaches 0."""
        run = self.runs.get_run(run_id)
        if run.config.oracle != "human":
            raise errors.FailedPrecondition(f"run {run_id} uses the simulated oracle; it takes no human labels")
        if not labels:
            raise errors.InvalidArgument("no labels given")
        if run.config.is_asynchronous:
            return self._submit_to_queue(run_id, labels, annotator=annotator, idempotency_key=idempotency_key)
        with self._run_lock(run_id):
            run = self.runs.get_run(run_id)
            if run.state == "CANCELLED":
                raise errors.FailedPrecondition(
                    f"run {run_id} is cancelled: resume it first ('lesslabels resume {run_id}'), then label"
                )
            waiting = run.step == "LABEL" and run.state in ("RUNNING", "WAITING_FOR_LABELS", "PENDING")
            batch = {a.sample_id for a in self.runs.list_acquisitions(run_id, run.round)} if waiting else set()
            in_batch = [(i, label) for i, label in labels if i in batch]
            repeats = self._repeats_of_recorded(run, [(i, label) for i, label in labels if i not in batch])
            if not in_batch:
                return repeats, len(self.runs.list_acquisitions(run_id, run.round, pending_only=True)) if waiting else 0
            # Two people on one batch: a text another named person labelled keeps their label, and
            # this person's goes beside it as their own opinion (flagged when they differ), never over it.
            beside = self._labelled_by_others(run, annotator) if annotator else set()
            given = self._record(
                run,
                [(i, label) for i, label in in_batch if i not in beside],
                [(i, label) for i, label in in_batch if i in beside],
                annotator=annotator,
                idempotency_key=idempotency_key,
            )
            result = _sum(repeats, given)
            remaining = len(self.runs.list_acquisitions(run_id, run.round, pending_only=True))
            log.info(
                "event=labels_submitted run=%d round=%d recorded=%d remaining=%d",
                run_id,
                run.round,
                result.recorded,
                remaining,
            )
            if remaining == 0:
                self._ensure_worker(run_id)
        self.events.announce(self.runs.get_run(run_id), message=f"{remaining} samples of the batch still unlabelled")
        return result, remaining

    def _submit_to_queue(
        self, run_id: int, labels: Sequence[tuple[int, str]], *, annotator: str, idempotency_key: str
    ) -> tuple[contract.LabelResult, int]:
        """Labels for an asynchronous run's queue, taken at any step of an active run; the next
        fine-tune starts when enough came in, and the queue is refilled in the background."""
        with self._run_lock(run_id):
            run = self.runs.get_run(run_id)
            if run.state == "CANCELLED":
                raise errors.FailedPrecondition(
                    f"run {run_id} is cancelled: resume it first ('lesslabels resume {run_id}'), then label"
                )
            open_queue = run.state in vocabulary.ACTIVE_RUN_STATES and run.step not in ("SEED", "DONE")
            queued = (
                {a.sample_id for a in self.runs.list_acquisitions(run_id, pending_only=True)} if open_queue else set()
            )
            fresh = [(i, label) for i, label in labels if i in queued]
            others = [(i, label) for i, label in labels if i not in queued]
            # A text someone else labelled: this person's label is their own opinion beside it (the
            # overlap share asks for it; a text that reached two people after a lease ran out gets it too).
            beside = self._labelled_by_others(run, annotator) if others and open_queue and annotator else set()
            seconds = [(i, label) for i, label in others if i in beside]
            result = self._repeats_of_recorded(run, [(i, label) for i, label in others if i not in beside], annotator)
            given = self._record(run, fresh, seconds, annotator=annotator, idempotency_key=idempotency_key)
            result = _sum(result, given)
            self.queue.release(run_id, [i for i, _ in fresh + seconds])
        remaining = self._after_labels(run_id) if fresh or seconds else len(queued)
        return result, remaining

    def _record(
        self,
        run: contract.Run,
        labels: Sequence[tuple[int, str]],
        second_opinions: Sequence[tuple[int, str]],
        *,
        annotator: str,
        idempotency_key: str,
    ) -> contract.LabelResult:
        """Store a person's labels in the pool: ``labels`` as the texts' labels, ``second_opinions``
        beside the label another person gave (never over it)."""
        result = contract.LabelResult()
        for pairs, second_opinion in ((labels, False), (second_opinions, True)):
            if pairs:
                extra = {"second_opinion": True} if second_opinion else {}
                given = self.pool.submit_labels(
                    run.config.dataset,
                    pairs,
                    run_id=run.id,
                    annotator=annotator,
                    idempotency_key=idempotency_key,
                    **extra,
                )
                result = _sum(result, given)
        return result

    def _labelled_by_others(self, run: contract.Run, annotator: str) -> set[int]:
        """The run's texts that a named person other than ``annotator`` labelled and they did not."""
        return {
            a.sample_id
            for a in self.runs.list_acquisitions(run.id)
            if a.label and a.opinions and annotator not in a.opinions
        }

    def _after_labels(self, run_id: int) -> int:
        """New labels in an asynchronous run: start the fine-tune when it is due, refill the queue
        when it needs it. Returns the texts still queued."""
        run = self.runs.get_run(run_id)
        pending = len(self.runs.list_acquisitions(run_id, pending_only=True))
        if run.step == "LABEL" and fine_tune_due(run, self.runs.list_rounds(run_id), pending):
            self._ensure_worker(run_id)
        self.queue.after_labels(run, pending)
        log.info("event=labels_queued run=%d labelled=%d queued=%d", run_id, run.labelled_count, pending)
        self.events.announce(run, message=f"{run.labelled_count} labels; {pending} texts queued")
        return pending

    def _repeats_of_recorded(
        self, run: contract.Run, labels: Sequence[tuple[int, str]], annotator: str = ""
    ) -> contract.LabelResult:
        """Labels outside the pending batch are fine only as repeats of labels already recorded
        (a retried import after the batch completed), or of the annotator's own second opinion;
        anything else is refused."""
        if not labels:
            return contract.LabelResult()
        acquired = self.runs.list_acquisitions(run.id)
        recorded = {a.sample_id: a.label for a in acquired}
        own = {a.sample_id: a.opinions.get(annotator) for a in acquired} if annotator else {}
        outside = sorted({i for i, label in labels if (recorded.get(i) != label and own.get(i) != label) or not label})
        if outside:
            where = f"round {run.round}" if run.step == "LABEL" else f"none pending: run is {run.state} at {run.step}"
            raise errors.InvalidArgument(
                f"samples {outside[:10]} are not in the pending batch of run {run.id} ({where})"
            )
        return contract.LabelResult(unchanged=len(labels), labels=tuple((i, recorded[i]) for i, _ in labels))

    def watch(
        self, run_id: int, is_active: Callable[[], bool] = lambda: True, poll: float = 1.0
    ) -> Iterator[contract.RunEvent]:
        """The run's current state, then each event until it ends or ``is_active()`` turns false."""
        seq = self.events.last_seq(run_id)
        run = self.runs.get_run(run_id)
        rounds = self.runs.list_rounds(run_id)
        yield contract.RunEvent(run, rounds[-1] if rounds else None, message=f"run {run_id} is {run.state}")
        if run.state in vocabulary.FINAL_RUN_STATES:
            return
        with self._stored_runs.watching(run_id):
            while is_active():
                for seq, event in self.events.after(run_id, seq, poll):  # noqa: B007, B020 - the cursor follows the events read
                    yield event
                    if event.run.state in vocabulary.FINAL_RUN_STATES:
                        return
                if not self._has_live_worker(run_id):
                    # Nothing will publish (paused, or stopped elsewhere): end once the stored state is
                    # final. Every stream of this run shares one read per poll.
                    current = self._stored_runs.get(run_id, poll)
                    if current.state in vocabulary.FINAL_RUN_STATES:
                        yield contract.RunEvent(current, message=f"run {run_id} is {current.state}")
                        return

    # ------------------------------------------------------------------ workers

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
            if (
                worker is not None
                and not worker.finished
                and not worker.stop.is_set()
                and worker.thread is not None
                and worker.thread.is_alive()
            ):
                return
            worker = Worker(run_id)
            worker.thread = threading.Thread(target=self._drive, args=(worker,), name=f"run-{run_id}", daemon=True)
            self._workers[run_id] = worker
            worker.thread.start()

    def _drive(self, worker: Worker) -> None:
        run_id = worker.run_id
        failures, outage_since = 0, 0.0
        try:
            while not worker.stop.is_set():
                try:
                    # The pool is read once per worker (and after a failed step); then each step goes on
                    # from the run as its predecessor advanced it, with the configuration decoded once.
                    run = worker.run or self.runs.get_run(run_id)
                    worker.run = None
                    if run.state not in vocabulary.ACTIVE_RUN_STATES or run.step == "DONE":
                        worker.outcome = True
                        return
                    if run.config.is_asynchronous:
                        self.queue.warm(run)
                    if run.config.is_asynchronous and run.config.oracle == "simulated":
                        self._ensure_annotator(run_id)
                    self._steps.run_step(worker, run)
                    failures = 0
                except (Stopped, Pause):
                    worker.outcome = True
                    return
                except errors.Unavailable as exc:  # DeadlineExceeded too
                    worker.run = None
                    failures += 1
                    now = time.monotonic()
                    if failures == 1:
                        outage_since = now
                    if now - outage_since >= self._outage_seconds:
                        self._fail(worker, run_id, exc)
                        return
                    log.warning("event=step_retry run=%d attempt=%d error=%r", run_id, failures, str(exc))
                    backoff = min(self._retry_backoff * 2 ** (failures - 1), MAX_RETRY_BACKOFF_SECONDS)
                    worker.stop.wait(max(0.0, min(backoff, outage_since + self._outage_seconds - now)))
                except Exception as exc:  # noqa: BLE001 - recorded on the run, which can be resumed
                    if worker.stop.is_set():
                        worker.outcome = True
                        return
                    log.exception("event=step_failed run=%d", run_id)
                    self._fail(worker, run_id, exc)
                    return
            worker.outcome = True
        except Exception:  # noqa: BLE001 - the pool itself is gone; the supervisor picks the run up again
            log.exception("event=worker_crashed run=%d", run_id)
        finally:
            with self._run_lock(run_id):
                worker.finished = True

    def _ensure_annotator(self, run_id: int) -> None:
        """Start the simulated annotator of an asynchronous simulated run unless it labels already."""
        with self._lock:
            annotator = self._annotators.get(run_id)
            if self._closed or (annotator is not None and annotator.alive()):
                return
            self._annotators[run_id] = SimulatedAnnotator(
                run_id, self.runs, self.queue, self._after_labels, self._stopping
            ).start()

    def _fail(self, worker: Worker, run_id: int, exc: BaseException) -> None:
        """Record the run FAILED (then the worker has an outcome); raises when the pool cannot."""
        run = self.runs.get_run(run_id)
        message = f"{run.step} of round {run.round} failed: {exc}"
        with self._run_lock(run_id):
            if worker.cancelled:
                worker.outcome = True
                return
            failed = self.runs.update_run(run_id, state="FAILED", error=message)
            metrics.COORDINATOR_RUNS_ENDED.labels("FAILED").inc()
            worker.outcome = True
        self.events.announce(failed, message=message)
