"""The queue of an asynchronous run: what people label from, kept full from the newest model.

In an asynchronous run (``RunConfig.is_asynchronous``) a round is a model version, not a barrier.
People label from the run's queue, its pending acquisitions of any round, while the run's worker
fine-tunes in the background:

- every ``refill_every`` labels (and whenever fewer than ``refill_every`` texts are left, or someone
  asks for texts from an empty queue) the queue is topped up to ``RunConfig.queue_size`` texts per
  person holding texts (``target``), ranked by the run's strategy with the fast head
  (the scorer's logistic regression on the base encoder's cached embeddings, refit on every label
  at each call), or drawn at random while the labels hold fewer than two classes;
- after each fine-tune the SELECT step tops it up from that checkpoint's scores instead;
- the worker starts the next fine-tune once ``labels_due`` labels are in (``fine_tune_due``).

Nothing is asked twice: the pool stores each acquisition once per run, and a refill scores only
samples the run never acquired. Two people never get the same text: ``pending`` leases what it
hands out to the annotator who asked (a person who finds the queue held by others makes it grow), for ``LEASE_SECONDS`` or until they label it; a text leased to
someone else is not shown. Leases live in this process: after a coordinator restart everything
pending is free again (a text may then reach two people; the second person's label is recorded as
their own opinion beside the first, never lost and never replacing it). Acquisitions and labels are
in the pool, so a killed coordinator resumes the run from its recorded step and the next label
refills the queue.

On purpose, with ``RunConfig.overlap``: a text in the overlap share (``RunConfig.in_overlap``, a hash
of the seed and the sample id) that one named person labelled goes back into the queue of everyone
else, leased like any other, without the first label (a blind second opinion), until one other
person labelled it; it never goes to the same person twice. The pool records that label beside the
first and flags the text when they differ (``PoolService.ListLabelOpinions``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence

import numpy as np

from lesslabels import contract
from lesslabels.common import errors
from lesslabels.contract import FastHead, vocabulary
from lesslabels.coordinator.ports import RunStorePort
from lesslabels.coordinator.stopping import label_budget
from lesslabels.coordinator.worker import RunLocks

log = logging.getLogger(__name__)

#: How long a text handed to one annotator is kept from the others.
LEASE_SECONDS = 600.0
#: Someone who asked for texts this recently is labelling: the queue keeps ``queue_size`` texts for each.
ACTIVE_SECONDS = 120.0
#: The strategy name acquisitions of a refill by random draw record (fewer than two classes labelled).
RANDOM = "random"


def labels_due(run: contract.Run, rounds: Sequence[contract.Round]) -> int:
    """The labelled count at which the run's next fine-tune starts: the count the last fine-tune
    trained on, plus the seed size (round 0) or the batch size, within the label budget."""
    config = run.config
    assert config.seed_size is not None and config.batch_size is not None  # RunConfig.with_defaults
    trained = max((r.labelled_count for r in rounds if r.index < run.round and r.checkpoint_id), default=0)
    step = (config.seed_size if run.round == 0 else config.batch_size).resolve(run.pool_size)
    due = trained + max(1, step)
    budget = label_budget(run)
    return min(due, budget) if budget else due


def fine_tune_due(run: contract.Run, rounds: Sequence[contract.Round], pending: int) -> bool:
    """Whether an asynchronous run at LABEL goes on to TRAIN: enough new labels, or nothing left
    to label (the queue is empty and the pool has nothing more to give)."""
    return run.labelled_count >= labels_due(run, rounds) or (pending == 0 and run.labelled_count >= run.pool_size)


@dataclasses.dataclass
class _Lease:
    annotator: str
    until: float


class QueueKeeper:
    """Hands out an asynchronous run's queue with leases and keeps it full (module docstring)."""

    def __init__(self, runs: RunStorePort, steps, locks: RunLocks, *, clock=time.monotonic):
        self.runs = runs
        # The step runner: its scores cache and strategy selection (steps.StepRunner).
        self.steps = steps
        self.locks = locks
        self._clock = clock
        self._lock = threading.Lock()
        self._leases: dict[tuple[int, int], _Lease] = {}  # (run, sample) -> who holds it until when
        self._asked: dict[tuple[int, str], float] = {}  # (run, annotator) -> when they last asked for texts
        self._refilled_at: dict[int, int] = {}  # run -> labelled count at its last refill
        self._refilling: set[int] = set()
        self._again: set[int] = set()
        self._warmed: set[int] = set()

    # ------------------------------------------------------------------ who labels what

    def pending(self, run: contract.Run, annotator: str = "") -> list[contract.Acquisition]:
        """The run's texts waiting for a label, newest round first (the newest model's picks), at
        most ``queue_size``; those leased to another annotator left out. With ``annotator`` the
        texts returned are leased to them, and the texts of the overlap share that one other person
        labelled come first, their label left out (module docstring)."""
        waiting = self.runs.list_acquisitions(run.id, pending_only=True)
        if not waiting and run.state in vocabulary.ACTIVE_RUN_STATES and run.step not in ("SEED", "DONE"):
            # Labels ask for refills; with nothing to label none would come, after a refill that
            # failed (the scorer down) or died with a killed coordinator. Asking for texts does.
            self.request_refill(run.id)
        now = self._clock()
        ordered = self.second_opinions_due(run, annotator) + sorted(waiting, key=lambda a: -a.round)
        limit = run.config.queue_size
        with self._lock:
            if annotator:
                self._asked[(run.id, annotator)] = now
            free = [
                a
                for a in ordered
                if (lease := self._leases.get((run.id, a.sample_id))) is None
                or lease.until <= now
                or lease.annotator == annotator
            ][:limit]
            if annotator:
                for a in free:
                    self._leases[(run.id, a.sample_id)] = _Lease(annotator, now + LEASE_SECONDS)
        if annotator and len(free) < limit and waiting:
            # Others hold part of the queue: it grows by queue_size for each person labelling (target).
            self.request_refill(run.id)
        return free

    def target(self, run: contract.Run) -> int:
        """How many texts the queue keeps: ``queue_size`` for each person labelling now (who asked for
        texts in the last ``ACTIVE_SECONDS``; at least one)."""
        now = self._clock()
        with self._lock:
            people = [1 for (run_id, _), at in self._asked.items() if run_id == run.id and now - at < ACTIVE_SECONDS]
        return run.config.queue_size * max(1, len(people))

    def second_opinions_due(self, run: contract.Run, annotator: str) -> list[contract.Acquisition]:
        """The texts of the overlap share that exactly one other named person labelled, as ``annotator``
        would label them: without that label. None without an annotator or an overlap."""
        if not annotator or run.config.overlap <= 0:
            return []
        return [
            dataclasses.replace(a, label="", opinions={})
            for a in self.runs.list_acquisitions(run.id)
            if a.label and len(a.opinions) == 1 and annotator not in a.opinions and run.config.in_overlap(a.sample_id)
        ]

    def release(self, run_id: int, sample_ids: Sequence[int]) -> None:
        """Labelled texts go back to nobody."""
        with self._lock:
            for sample_id in sample_ids:
                self._leases.pop((run_id, int(sample_id)), None)

    def forget(self, run_id: int) -> None:
        with self._lock:
            for key in [k for k in self._leases if k[0] == run_id]:
                del self._leases[key]
            for asked in [k for k in self._asked if k[0] == run_id]:
                del self._asked[asked]
            self._refilled_at.pop(run_id, None)

    # ------------------------------------------------------------------ refills

    def warm(self, run: contract.Run) -> None:
        """Have the scorers embed the run's pool for the fast head now, in the background, once per
        run in this process: the seed set is drawn at random, so while people label it the first
        refill's embeddings get computed, and that refill then reads them instead of computing
        them while someone waits. Best effort: on failure it is logged and tried again when a
        worker next picks the run up; the first refill embeds what is missing."""
        if not run.config.is_asynchronous:
            return
        with self._lock:
            if run.id in self._warmed:
                return
            self._warmed.add(run.id)
        threading.Thread(target=self._warm, args=(run,), name=f"warm-{run.id}", daemon=True).start()

    def _warm(self, run: contract.Run) -> None:
        started = self._clock()
        try:
            done = self.steps.scorer.embed_pool(run.config.dataset, base_model=run.config.base_model)
        except Exception as exc:  # noqa: BLE001 - best effort: the first refill embeds what is missing
            log.warning("event=pool_embedding_failed run=%d error=%r", run.id, str(exc))
            with self._lock:
                self._warmed.discard(run.id)
            return
        log.info(
            "event=pool_embedded run=%d texts=%d computed=%d seconds=%.1f",
            run.id,
            done.done,
            done.computed,
            self._clock() - started,
        )

    def after_labels(self, run: contract.Run, pending: int) -> None:
        """Labels came in: refill in the background when ``refill_every`` of them came since the
        last refill, or fewer than ``refill_every`` texts are left."""
        refill_every = run.config.refill_every
        with self._lock:
            since = run.labelled_count - self._refilled_at.get(run.id, 0)
        if pending < refill_every or since >= refill_every:
            self.request_refill(run.id)

    def request_refill(self, run_id: int) -> None:
        """Refill the run's queue in a background thread: one at a time per run, and once more after
        it when asked again meanwhile."""
        with self._lock:
            if run_id in self._refilling:
                self._again.add(run_id)
                return
            self._refilling.add(run_id)
        threading.Thread(target=self._refill_loop, args=(run_id,), name=f"refill-{run_id}", daemon=True).start()

    def _refill_loop(self, run_id: int) -> None:
        try:
            while True:
                try:
                    self.refill(self.runs.get_run(run_id))
                except errors.LessLabelsError as exc:
                    log.warning("event=refill_failed run=%d error=%r", run_id, str(exc))
                except Exception:  # noqa: BLE001 - a refill is retried with the next labels
                    log.exception("event=refill_failed run=%d", run_id)
                with self._lock:
                    if run_id not in self._again:
                        self._refilling.discard(run_id)
                        return
                    self._again.discard(run_id)
        finally:
            with self._lock:
                self._refilling.discard(run_id)

    def refill(self, run: contract.Run) -> int:
        """Top the queue up to ``queue_size`` texts from the fast head (module docstring); returns how
        many were added. Nothing for a run that ended or is not asynchronous."""
        config = run.config
        if not config.is_asynchronous or run.state not in vocabulary.ACTIVE_RUN_STATES or run.step in ("SEED", "DONE"):
            return 0
        pending = self.runs.list_acquisitions(run.id, pending_only=True)
        k = self.target(run) - len(pending)
        budget = label_budget(run)
        if budget:
            k = min(k, budget - run.labelled_count - len(pending))
        with self._lock:
            self._refilled_at[run.id] = run.labelled_count
        if k <= 0:
            return 0
        rng = np.random.default_rng([config.random_seed, 5, run.labelled_count])
        head = {"fast_head": FastHead(run.id, base_model=config.base_model)}
        strategy = config.strategy
        try:
            scores = self.steps.scores.score(run, head, k, subset_seed=int(rng.integers(2**62)))
            chosen = self.steps.select_from(run, scores, k, rng, head)
            ids, values = chosen.indices, chosen.scores
        except errors.FailedPrecondition as exc:  # fewer than two classes labelled: no head yet
            log.info("event=refill_random run=%d reason=%r", run.id, str(exc))
            ids, strategy = self._random_unacquired(run, k, rng), RANDOM
            values = np.zeros(len(ids))
        return self._store(run, [(int(i), float(v)) for i, v in zip(ids, values, strict=True)], strategy)

    def _random_unacquired(self, run: contract.Run, k: int, rng: np.random.Generator) -> list[int]:
        """``k`` samples the run never acquired, drawn at random by the pool."""
        acquired = {a.sample_id for a in self.runs.list_acquisitions(run.id)}
        draw = min(run.pool_size, k + len(acquired)) if run.pool_size else k + len(acquired)
        listed = self.steps.pool.list_samples(
            run.config.dataset, page_size=5000, subset=draw, subset_seed=int(rng.integers(2**62))
        )
        return [s.id for s in listed if s.id not in acquired][:k]

    def _store(self, run: contract.Run, picks: list[tuple[int, float]], strategy: str) -> int:
        """Record the picks as acquisitions of the round that will first train on them, with the
        run where it is now (its step unchanged)."""
        if not picks:
            return 0
        with self.locks(run.id):
            current = self.runs.get_run(run.id)
            if current.state not in vocabulary.ACTIVE_RUN_STATES or current.step == "DONE":
                return 0
            # The round that first trains on them: the current one only while it is still labelling
            # and its fine-tune is not due (else it starts without them).
            labelling = current.step == "LABEL" and not fine_tune_due(
                current, self.runs.list_rounds(run.id), len(self.runs.list_acquisitions(run.id, pending_only=True))
            )
            round_index = current.round if labelling else current.round + 1
            self.runs.record_step(
                run.id,
                expected_step=current.step,
                expected_round=current.round,
                state=current.state,
                acquisitions=[contract.Acquisition(i, round_index, strategy, s) for i, s in picks],
                acquisition_round=round_index,
            )
        log.info("event=queue_refilled run=%d round=%d added=%d strategy=%s", run.id, round_index, len(picks), strategy)
        return len(picks)
