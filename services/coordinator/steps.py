"""The steps of a run: seed -> label -> train -> evaluate -> score -> select -> label -> ...

Knows nothing of gRPC. It talks to four ports (see ``ports``): ``pool`` (datasets, samples,
labels), ``runs`` (the pool's run store: runs, rounds, acquisitions), ``trainer`` (training jobs)
and ``scorer`` (pool and test-split scores).

Durability: every step ends with one run-store call (RecordStep) that stores the step's outcome
(round record, acquisitions) and moves the run to the next step with a compare-and-set on (step,
round), in one database transaction: the step happened entirely or not at all. A coordinator killed
anywhere re-reads the run and redoes at most the step it was in, and every step is safe to redo:
- SEED/SELECT are deterministic under the run's seed, so a redo selects the same samples (a run
  whose acquisitions are stored but which did not advance reuses them);
- LABEL only reveals/asks for labels still missing;
- TRAIN uses an idempotency key derived from (run, round, attempt), so a retried StartTraining
  returns the job already started; a job the trainer lost is started again under the next attempt;
- EVALUATE/SCORE are pure functions of the round's checkpoint.

Acquisition rounds: the seed set is stored as round 0, the batch selected at the end of round r as
round r + 1, i.e. acquisitions of round r are labelled in round r's LABEL step and first trained on
in round r.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lesslabels.common import errors, metrics, tracing
from lesslabels.common.timeutil import rfc3339, utcnow
from lesslabels.contract.metrics import classification_metrics
from lesslabels import contract
from lesslabels.contract import vocabulary, wire
from lesslabels.coordinator import domain, strategies
from lesslabels.coordinator.events import EventBus
from lesslabels.coordinator.ports import PoolPort, Progress, RunStorePort, ScorerPort, TrainerPort
from lesslabels.coordinator.queue import fine_tune_due, labels_due
from lesslabels.coordinator.scores import PoolScoreCache, RoundScores, seed_set_seed
from lesslabels.coordinator.sharding import ScorerReplicas, as_replicas
from lesslabels.coordinator.stopping import label_budget, stop_reason
from lesslabels.coordinator.worker import Pause, RunLocks, Stopped, Worker

log = logging.getLogger(__name__)

#: Training jobs of one round a worker may see lost (a trainer restart) before the round is an
#: outage, which fails the run after --outage-seconds. A job lost, or ended by a cancel or failure
#: before a resume, is started again under the next attempt key.
MAX_TRAIN_ATTEMPTS = 20
#: Keys tried for one round's training before giving up on a trainer that answers only ended jobs.
MAX_TRAIN_KEYS = 10_000
#: Base model name the scorer resolves to the bundled encoder, used when a run leaves it empty.
DEFAULT_BASE_MODEL = "default"
#: The diverse seed set of k samples embeds at most max(DIVERSE_SAMPLE_PER_SEED * k, DIVERSE_SAMPLE_FLOOR)
#: samples of the pool, a random subset the pool draws (k-means finds k clusters in a few thousand
#: points as well as in millions; embedding millions with the base encoder costs hours).
DIVERSE_SAMPLE_PER_SEED = 20
DIVERSE_SAMPLE_FLOOR = 2000


def diverse_seed_sample(k: int) -> int:
    """The most samples the diverse seed set of ``k`` embeds."""
    return max(DIVERSE_SAMPLE_PER_SEED * k, DIVERSE_SAMPLE_FLOOR)


def _waited_for_labels(run: contract.Run) -> None:
    """A run of the human oracle that was WAITING_FOR_LABELS went on: observe how long it waited,
    from when it was stored in that state (its ``updated_at``; nothing else changes the run while
    it waits), so a coordinator restarted meanwhile measures the whole wait."""
    if run.state != "WAITING_FOR_LABELS" or run.config.oracle != "human" or not run.updated_at:
        return
    since = datetime.datetime.fromisoformat(run.updated_at)
    metrics.COORDINATOR_LABEL_WAIT.observe(max(0.0, (utcnow() - since).total_seconds()))


class StepRunner:
    """Runs one step of a run and records its outcome."""

    def __init__(
        self,
        pool: PoolPort,
        runs: RunStorePort,
        trainer: TrainerPort,
        scorer: ScorerPort | ScorerReplicas,
        events: EventBus,
        locks: RunLocks,
    ):
        self.pool = pool
        self.runs = runs
        self.trainer = trainer
        # Every call goes to one of the scorer replicas, on another when one is unavailable; a
        # round's scoring is sharded over all of them (PoolScoreCache).
        self.scorer = as_replicas(scorer)
        self.events = events
        self.locks = locks
        self.scores = PoolScoreCache(runs, self.scorer)

    def run_step(self, worker: Worker, run: contract.Run) -> None:
        if run.state == "PENDING":
            run = self.advance(worker, run, message=f"run {run.id} started")
        handler = {
            "SEED": self._seed,
            "LABEL": self._label,
            "TRAIN": self._train,
            "EVALUATE": self._evaluate,
            "SCORE": self._score,
            "SELECT": self._select,
        }[run.step]
        begun, outcome = time.perf_counter(), "error"
        # One trace per step (tracing on): the calls the step makes, and the calls those make, nest in it.
        attributes = {
            "lesslabels.run_id": run.id,
            "lesslabels.round": run.round,
            "lesslabels.step": run.step,
            "lesslabels.strategy": run.config.strategy,
            "lesslabels.dataset": run.config.dataset,
        }
        try:
            with tracing.span(f"step {run.step}", attributes, expected=(Pause, Stopped)):
                handler(worker, run)
            outcome = "ok"
        finally:
            metrics.COORDINATOR_STEP_SECONDS.labels(run.step, outcome).observe(time.perf_counter() - begun)

    def advance(
        self,
        worker: Worker,
        run: contract.Run,
        *,
        step: str = "",
        round: int | None = None,
        state: str = "RUNNING",
        stop_reason: str = "",
        message: str | Callable[[contract.Run], str] = "",
        round_info: contract.Round | None = None,
        acquisitions: Sequence[contract.Acquisition] = (),
        acquisition_round: int = 0,
    ) -> contract.Run:
        """Store the step's outcome (``round_info``, ``acquisitions``) and move ``run`` on from the step
        it was read at (compare-and-set), in one pool transaction, unless cancelled/stopped. ``message``
        may be a function of the advanced run."""
        with self.locks(run.id):
            worker.check_not_stopped()
            updated = self.runs.record_step(
                run.id,
                expected_step=run.step,
                expected_round=run.round,
                state=state,
                step=step,
                round=run.round if round is None else round,
                stop_reason=stop_reason,
                round_info=round_info,
                acquisitions=acquisitions,
                acquisition_round=acquisition_round,
            )
        if updated.round > run.round:
            metrics.COORDINATOR_ROUNDS.inc()
        metrics.COORDINATOR_ACQUIRED.inc(len(acquisitions))
        if updated.state != run.state and updated.state in vocabulary.FINAL_RUN_STATES:
            metrics.COORDINATOR_RUNS_ENDED.labels(updated.state).inc()
        # The configuration never changes: keep the one decoded when the worker first read the run.
        updated = dataclasses.replace(updated, config=run.config)
        worker.run = updated
        self.events.announce(updated, round_info, message=message(updated) if callable(message) else message)
        return updated

    # ------------------------------------------------------------------ steps

    def _seed(self, worker: Worker, run: contract.Run) -> None:
        config = run.config
        existing = self.runs.list_acquisitions(run.id, 0)
        items: list[contract.Acquisition] = []
        if not existing:
            n = self.pool.get_dataset(config.dataset).train_count
            assert config.seed_size is not None  # filled in by RunConfig.with_defaults
            k = config.seed_size.resolve(n)
            budget = label_budget(run)
            if budget:
                k = min(k, budget)
            rng = np.random.default_rng([config.random_seed, 0])
            # Both seed sets start from a random subset the pool draws (ids only travel, not the pool).
            subset_seed = seed_set_seed(config.random_seed)
            chosen_ids: list[int] = []
            seed_scores: list[float] = []
            strategy = "random" if config.seed_strategy != "diverse" else ""
            if k > 0 and config.seed_strategy == "diverse":
                bound = diverse_seed_sample(k)
                sample = bound if n > bound else 0  # 0: the whole pool
                what = f"{sample} samples of the pool" if sample else "the pool"
                self.events.announce(run, message=f"embedding {what} with the pretrained encoder")
                scores = self.scorer.score_pool(
                    contract.SampleQuery(
                        config.dataset, run_id=run.id, include_all=True, subset=sample, subset_seed=subset_seed
                    ),
                    base_model=config.base_model or DEFAULT_BASE_MODEL,
                    embeddings=True,
                    probabilities=False,
                    progress=self._progress_cb(run, f"embedding {what}"),
                )
                selection = strategies.select_seed("diverse", k, embeddings=scores.embeddings, rng=rng)
                chosen_ids = scores.sample_ids[selection.indices].tolist()
                seed_scores = selection.scores.tolist()
            elif k > 0:
                pool = self.pool.list_samples(config.dataset, page_size=5000, subset=k, subset_seed=subset_seed)
                chosen_ids = [s.id for s in pool]
                seed_scores = [0.0] * len(chosen_ids)
            items = [
                contract.Acquisition(int(i), 0, strategy, float(s))
                for i, s in zip(chosen_ids, seed_scores, strict=True)
            ]
        # else: stored by a coordinator that predates RecordStep: keep them.
        count = len(items or existing)
        self.advance(
            worker,
            run,
            step="LABEL",
            round=0,
            acquisitions=items,
            acquisition_round=0,
            message=f"seed set of {count} samples chosen ({config.seed_strategy})",
        )

    def _label(self, worker: Worker, run: contract.Run) -> None:
        if run.config.is_asynchronous:
            self._label_asynchronously(worker, run)
            return
        pending = self.runs.list_acquisitions(run.id, run.round, pending_only=True)
        if pending and run.config.oracle == "human":
            with self.locks(run.id):
                worker.check_not_stopped()
                still = self.runs.list_acquisitions(run.id, run.round, pending_only=True)
                if still:
                    waiting = run
                    if run.state != "WAITING_FOR_LABELS":
                        waiting = self.runs.update_run(run.id, state="WAITING_FOR_LABELS")
                    # Marked finished under the lock, so a submission completing the batch starts a new worker.
                    worker.finished = True
            if still:
                self.events.announce(waiting, message=f"round {run.round}: waiting for {len(still)} human labels")
                raise Pause()
        elif pending:
            source = "seed" if run.round == 0 else "oracle"
            self.runs.reveal_labels(run.id, [a.sample_id for a in pending], source)
        self.advance(
            worker, run, step="TRAIN", message=lambda moved: f"round {run.round}: {moved.labelled_count} labels"
        )
        _waited_for_labels(run)

    def _label_asynchronously(self, worker: Worker, run: contract.Run) -> None:
        """An asynchronous run trains again once enough new labels came in (``queue.fine_tune_due``);
        until then it waits, and people label from its queue (``queue.QueueKeeper``) meanwhile."""
        with self.locks(run.id):
            worker.check_not_stopped()
            current = self.runs.get_run(run.id)
            pending = len(self.runs.list_acquisitions(run.id, pending_only=True))
            due = fine_tune_due(current, self.runs.list_rounds(run.id), pending)
            if not due:
                if current.state != "WAITING_FOR_LABELS":
                    current = self.runs.update_run(run.id, state="WAITING_FOR_LABELS")
                # Marked finished under the lock, so the label that makes it due starts a new worker.
                worker.finished = True
        if not due:
            needed = labels_due(current, self.runs.list_rounds(run.id)) - current.labelled_count
            self.events.announce(
                current, message=f"round {run.round}: the next fine-tune starts after {needed} more labels"
            )
            raise Pause()
        self.advance(
            worker,
            dataclasses.replace(run, state=current.state),
            step="TRAIN",
            message=lambda moved: f"round {run.round}: fine-tuning in the background on {moved.labelled_count} labels",
        )
        _waited_for_labels(current)

    def _train(self, worker: Worker, run: contract.Run) -> None:
        config = run.config
        rounds = {r.index: r for r in self.runs.list_rounds(run.id)}
        warm = rounds[run.round - 1].checkpoint_id if config.warm_start and run.round - 1 in rounds else ""
        info = rounds.get(run.round) or contract.Round(run.id, run.round, started_at=rfc3339(utcnow()))
        info = dataclasses.replace(info, labelled_count=run.labelled_count)
        self.events.announce(run, info, message=f"round {run.round}: training on {run.labelled_count} labels")
        job = None
        attempt = 0
        while worker.train_lost < MAX_TRAIN_ATTEMPTS:
            request = contract.TrainRequest(
                dataset=config.dataset,
                run_id=run.id,
                round=run.round,
                base_model=config.base_model,
                hyperparameters=config.hyperparameters,
                seed=config.random_seed,
                warm_start_checkpoint=warm,
                request_id=f"run-{run.id}-round-{run.round}-attempt-{attempt}",
            )
            job = self.trainer.start_training(request)
            # Ended before this worker watched it: an attempt of an earlier worker, INTERRUPTED (lost by
            # a trainer restart), CANCELLED (with this run, now resumed) or FAILED (the run failed and
            # was resumed). The next key trains afresh; only jobs this worker saw lost count, so a
            # resumed run gets its own MAX_TRAIN_ATTEMPTS.
            if job.state in ("INTERRUPTED", "CANCELLED", "FAILED"):
                log.info("event=train_job_ended run=%d round=%d job=%s attempt=%d", run.id, run.round, job.id, attempt)
                attempt += 1
                if attempt >= MAX_TRAIN_KEYS:
                    raise errors.FailedPrecondition(
                        f"round {run.round}: the trainer answered {attempt} training requests with ended jobs"
                    )
                worker.check_not_stopped()
                continue
            worker.job_id = job.id
            if info.train_job_id != job.id:
                info = dataclasses.replace(info, train_job_id=job.id)
                self.runs.put_round(info)
            try:
                job = self.trainer.wait_job(job.id, self._train_progress_cb(run, info), worker.stop.is_set)
            except errors.NotFound:
                job = None
            finally:
                worker.job_id = ""
            if job is not None and (job.state not in ("INTERRUPTED", "CANCELLED") or worker.stop.is_set()):
                break
            worker.train_lost += 1
            log.info("event=train_job_lost run=%d round=%d attempt=%d", run.id, run.round, attempt)
            attempt += 1
        worker.check_not_stopped()
        if job is None or job.state in ("INTERRUPTED", "CANCELLED", "QUEUED", "RUNNING"):
            # An outage for the worker: retried until --outage-seconds, with no further training.
            raise errors.Unavailable(f"training of round {run.round} was interrupted {MAX_TRAIN_ATTEMPTS} times")
        if job.state != "SUCCEEDED":
            raise errors.FailedPrecondition(
                f"training job {job.id} {job.state.lower()}: {job.error or 'no reason given'}"
            )
        worker.train_lost = 0  # the next round starts its own count
        started, finished = wire.parse_time(job.started_at), wire.parse_time(job.finished_at)
        seconds = (finished - started).total_seconds() if started and finished else 0.0
        info = dataclasses.replace(
            info,
            checkpoint_id=job.checkpoint_id,
            train_seconds=seconds,
            validation=job.validation,
            comparison=job.comparison,
        )
        self.advance(
            worker,
            run,
            step="EVALUATE",
            round_info=info,
            message=f"round {run.round}: trained checkpoint {job.checkpoint_id} in {seconds:.0f}s",
        )

    def _evaluate(self, worker: Worker, run: contract.Run) -> None:
        info = self._round(run)
        scores = self.scorer.score_pool(
            contract.SampleQuery(run.config.dataset, split="test", run_id=run.id, include_all=True),
            checkpoint=info.checkpoint_id,
            probabilities=False,
            progress=self._progress_cb(run, "scoring the test split"),
        )
        gold = scores.gold if scores.gold is not None else np.array([], dtype=object)  # [n]
        predicted = scores.predicted if scores.gold is not None else np.array([], dtype=object)  # [n]
        test = classification_metrics(gold, predicted)
        # The count its training started with (``_train``): an asynchronous run's labels go on
        # coming in while it trains.
        info = dataclasses.replace(info, test=test, labelled_count=info.labelled_count or run.labelled_count)
        text = f"round {run.round}: test accuracy {test.accuracy:.4f} macro-F1 {test.macro_f1:.4f} on {test.count}"
        reason = stop_reason(run, test, info.labelled_count if run.config.is_asynchronous else None)
        if reason:
            self._complete(worker, run, info, reason, f"{text}; stopping: {reason}")
        else:
            self.advance(worker, run, step="SCORE", round_info=info, message=text)

    def _score(self, worker: Worker, run: contract.Run) -> None:
        info = self._round(run)
        started = time.monotonic()
        scores = self._pool_scores(run, info)
        agreement = 0.0
        if run.round > 0 and scores.predictions is not None:
            previous = self.scores.previous_predictions(run)
            if previous is not None:
                agreement = scores.predictions.agreement(previous)
        info = dataclasses.replace(info, agreement=agreement, score_seconds=time.monotonic() - started)
        rule = run.config.stopping.stable_agreement
        if rule and run.round > 0 and agreement >= rule:
            reason = f"predictions stable: {agreement:.4f} of the pool unchanged (>= {rule:g})"
            self._complete(worker, run, info, reason, f"round {run.round}: stopping: {reason}")
            return
        self.advance(
            worker,
            run,
            step="SELECT",
            round_info=info,
            message=f"round {run.round}: {scores.scored} unlabelled samples scored, agreement {agreement:.4f}",
        )

    def _complete(self, worker: Worker, run: contract.Run, info: contract.Round, reason: str, message: str) -> None:
        """Finish the round and the run: COMPLETED at DONE, for ``reason``."""
        info = dataclasses.replace(info, finished_at=rfc3339(utcnow()))
        self.advance(worker, run, step="DONE", state="COMPLETED", stop_reason=reason, round_info=info, message=message)

    def _select(self, worker: Worker, run: contract.Run) -> None:
        config = run.config
        info = self._round(run)
        next_round = run.round + 1
        items: list[contract.Acquisition] = []
        # An asynchronous run's queue refills store acquisitions of the next round while it trains;
        # its selection tops the queue up from this round's checkpoint whatever is there.
        existing = [] if config.is_asynchronous else self.runs.list_acquisitions(run.id, next_round)
        if existing:
            count = len(existing)  # stored by a coordinator that predates RecordStep: never select again
        else:
            started = time.monotonic()
            scores = self._pool_scores(run, info)
            selection = self._selection(run, info, scores)
            items = [
                contract.Acquisition(int(i), next_round, config.strategy, float(s))
                for i, s in zip(selection.indices, selection.scores, strict=True)
            ]
            pending = self.runs.list_acquisitions(run.id, pending_only=True) if config.is_asynchronous else []
            # An asynchronous run whose people labelled the rest of the pool while this round trained
            # fine-tunes once more on them (its LABEL step finds that due at once) before it ends.
            untrained = config.is_asynchronous and self.runs.get_run(run.id).labelled_count > info.labelled_count
            if not items and not pending and not untrained:
                self._complete(worker, run, info, "every pool sample is labelled", "pool exhausted")
                return
            count = len(items)
            info = dataclasses.replace(info, score_seconds=info.score_seconds + time.monotonic() - started)
        info = dataclasses.replace(info, selected_count=count, finished_at=rfc3339(utcnow()))
        self.advance(
            worker,
            run,
            step="LABEL",
            round=next_round,
            round_info=info,
            acquisitions=items,
            acquisition_round=next_round,
            message=f"round {run.round}: selected {count} samples ({vocabulary.flag_name(config.strategy)})",
        )
        self.scores.forget(run.id, run.round - 1)

    # ------------------------------------------------------------------ helpers

    def _round(self, run: contract.Run) -> contract.Round:
        for info in self.runs.list_rounds(run.id):
            if info.index == run.round:
                return info
        raise errors.FailedPrecondition(
            f"run {run.id} is at {run.step} of round {run.round} but the round is not recorded"
        )

    def _selection_size(self, run: contract.Run) -> int:
        """How many samples the round selects: the batch size, within what is left of the label
        budget; an asynchronous run tops its queue up to ``queue_size`` texts instead."""
        assert run.config.batch_size is not None  # filled in by RunConfig.with_defaults
        budget = label_budget(run)
        if run.config.is_asynchronous:
            pending = len(self.runs.list_acquisitions(run.id, pending_only=True))
            k = run.config.queue_size - pending
            if budget:
                k = min(k, budget - run.labelled_count - pending)
            return max(0, k)
        k = run.config.batch_size.resolve(run.pool_size)
        if budget:
            k = min(k, budget - run.labelled_count)
        return k

    def _pool_scores(self, run: contract.Run, info: contract.Round) -> RoundScores:
        what = f"{run.config.candidates} candidates" if run.config.candidates else "the unlabelled pool"
        return self.scores.of_round(
            run,
            run.round,
            info.checkpoint_id,
            max(1, self._selection_size(run)),  # an asynchronous run with a full queue still scores for agreement
            self._progress_cb(run, f"round {run.round}: scoring {what}"),
        )

    def _selection(self, run: contract.Run, info: contract.Round, scores: RoundScores) -> strategies.Selection:
        """The next batch, out of the candidates the round kept (sample ids, best first)."""
        rng = np.random.default_rng([run.config.random_seed, run.round + 1])
        return self.select_from(run, scores, self._selection_size(run), rng, {"checkpoint": info.checkpoint_id})

    def select_from(
        self,
        run: contract.Run,
        scores: RoundScores,
        k: int,
        rng: np.random.Generator,
        model: Mapping[str, Any],
    ) -> strategies.Selection:
        """``k`` samples by the run's strategy out of the kept candidates ``scores`` (sample ids, best
        first); the diverse strategies embed the candidates with ``model`` (the scorer's options)."""
        config = run.config
        needs = strategies.NEEDS[config.strategy]
        if not needs.priority:  # random: the same draw as strategies.random_strategy over the candidates
            take = min(k, scores.candidates.size)
            chosen = rng.choice(scores.candidates.size, take, replace=False)
            return strategies.Selection(scores.candidates[chosen], np.zeros(take))
        if not needs.embeddings or scores.candidates.size <= k:
            return strategies.Selection(scores.candidates[:k], scores.scores[:k])
        # Embeddings of the kept candidates only (CANDIDATE_FACTOR * k of them), not of the pool.
        embedded = self.scorer.score_pool(
            contract.SampleQuery(
                config.dataset, run_id=run.id, include_all=True, sample_ids=tuple(scores.candidates.tolist())
            ),
            embeddings=True,
            probabilities=False,
            **model,
        )
        order = np.argsort(embedded.sample_ids)  # the rows in candidate order (the k-means draws depend on it)
        by_id = embedded.sample_ids[order]
        at = np.minimum(np.searchsorted(by_id, scores.candidates), max(by_id.size - 1, 0))
        if embedded.embeddings is None or by_id.size == 0 or not np.array_equal(by_id[at], scores.candidates):
            raise errors.FailedPrecondition(
                f"run {run.id} round {run.round}: the scorer did not embed every kept candidate "
                f"({embedded.sample_ids.size} of {scores.candidates.size}); were samples deleted?"
            )
        rows = embedded.embeddings[order[at]]  # [K, d]
        return strategies.cluster_candidates(scores.candidates, scores.scores, rows, k, rng=rng)

    def _progress_cb(self, run: contract.Run, what: str) -> Progress:
        """Announces texts done / total with the speed measured since the step started counting."""
        started = time.monotonic()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if total and (done >= total or now - last[0] > 1.0):
                last[0] = now
                measured = contract.StepProgress.measured("texts", done, total, now - started)
                self.events.announce(run, progress=measured, message=f"{what}: {measured.describe()}")

        return progress

    def _train_progress_cb(self, run: contract.Run, info: contract.Round) -> Callable[[domain.TrainProgress], None]:
        """Announces the trainer's steps done / planned, its measured samples per second and ETA."""
        started = time.monotonic()

        def progress(event: domain.TrainProgress) -> None:
            measured = contract.StepProgress(
                "steps",
                event.step,
                event.total_steps,
                per_second=event.step / (time.monotonic() - started) if event.step else 0.0,
                samples_per_second=event.samples_per_second,
                elapsed_seconds=time.monotonic() - started,
                eta_seconds=event.eta_seconds,
            )
            text = f"round {run.round}: training epoch {event.epoch}, {measured.describe()}"
            if event.message:
                text += f" ({event.message})"
            self.events.announce(run, info, progress=measured if event.total_steps else None, message=text)

        return progress
