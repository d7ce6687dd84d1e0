"""Training jobs: a FIFO queue in front of one device, persisted as one JSON file per job
(``job_files``; the job types are in ``job_types``).

One job runs at a time; the others wait in order and know their queue position. Every job's
events are kept in memory so a late watcher gets all of them, then the live ones. A job file is
rewritten (write, fsync, rename) on every state change; on start, jobs found RUNNING were cut
short by a stop or crash and become INTERRUPTED (their checkpoint was never published: the
store only publishes complete folders), and jobs found QUEUED are queued again in their order.
No gRPC here.
"""

from __future__ import annotations

import collections
import logging
import os
import pathlib
import threading
import uuid
from collections.abc import Callable, Iterator

from opentelemetry.context import Context

from lesslabels.common import errors, metrics, tracing
from lesslabels.common.timeutil import rfc3339, utcnow
from lesslabels.trainer import job_files
from lesslabels.trainer.loop import Progress
from lesslabels.trainer.job_types import Job, JobEvent, JobState, Runner, TrainRequest

log = logging.getLogger(__name__)


class JobManager:
    def __init__(self, jobs_dir: str | os.PathLike, runner: Runner, *, device: str = "cpu"):
        self._dir = pathlib.Path(jobs_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._runner = runner
        self._device = device
        self._jobs: dict[str, Job] = {}
        self._by_request: dict[str, str] = {}
        self._queue: collections.deque[str] = collections.deque()
        self._running: str | None = None
        self._changed = threading.Condition()
        self._stopping = False
        self._worker: threading.Thread | None = None
        # Where each queued job was asked for (tracing on): its training is a span of that trace.
        self._callers: dict[str, Context] = {}
        with self._changed:
            self._load()
        metrics.TRAINER_JOBS.add_source(self.count_by_state)

    def _save(self, job: Job) -> None:
        job_files.save(self._dir, job)

    def _load(self) -> None:
        for job in job_files.load_all(self._dir):
            self._jobs[job.id] = job
            if job.request.request_id:
                self._by_request[job.request.request_id] = job.id
            if job.state == JobState.RUNNING:
                job.state = JobState.INTERRUPTED
                job.finished_at = rfc3339(utcnow())
                job.error = "the trainer stopped while this job was running; no checkpoint was published"
                self._save(job)
                log.warning("event=job_interrupted job=%s", job.id)
            elif job.state == JobState.QUEUED:
                self._queue.append(job.id)
            if job.state.done:
                job.events.append(self._final_event(job))
        self._update_positions()

    # -- public API -------------------------------------------------------------------------

    def start(self) -> None:
        self._worker = threading.Thread(target=self._work, name="trainer-jobs", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; the running one is cancelled and recorded INTERRUPTED. Queued jobs
        stay QUEUED on disk and run after the next start."""
        with self._changed:
            self._stopping = True
            if self._running:
                self._jobs[self._running].cancel.set()
            self._changed.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)

    def submit(self, request: TrainRequest) -> Job:
        """Queue a job. A request_id seen before returns that job instead."""
        with self._changed:
            if self._stopping:
                raise errors.Unavailable("the trainer is shutting down")
            if request.request_id and request.request_id in self._by_request:
                return self._jobs[self._by_request[request.request_id]].snapshot()
            job = Job(
                id=f"job-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
                request=request,
                created_at=rfc3339(utcnow()),
                device=self._device,
            )
            self._jobs[job.id] = job
            caller = tracing.current()
            if caller is not None:
                self._callers[job.id] = caller
            if request.request_id:
                self._by_request[request.request_id] = job.id
            self._queue.append(job.id)
            self._update_positions()
            self._save(job)
            self._changed.notify_all()
            log.info(
                "event=job_queued job=%s dataset=%s run=%s position=%d",
                job.id,
                request.dataset,
                request.run_id,
                job.queue_position,
            )
            return job.snapshot()

    def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state (``metrics.TRAINER_JOBS`` reads it when scraped)."""
        with self._changed:
            return dict(collections.Counter(job.state.value for job in self._jobs.values()))

    def find_request(self, request_id: str) -> Job | None:
        with self._changed:
            job_id = self._by_request.get(request_id) if request_id else None
            return self._jobs[job_id].snapshot() if job_id else None

    def get(self, job_id: str) -> Job:
        with self._changed:
            return self._get(job_id).snapshot()

    def list(self, run_id: int = 0) -> list[Job]:
        """Jobs in creation order, optionally only those of one run."""
        with self._changed:
            jobs = sorted(self._jobs.values(), key=lambda j: (j.created_at, j.id))
            return [j.snapshot() for j in jobs if not run_id or j.request.run_id == run_id]

    def cancel(self, job_id: str, wait: float = 10.0) -> Job:
        """Cancel a queued job at once, or a running one at its next step (waits up to ``wait``
        seconds for it to stop). A finished job is returned unchanged."""
        with self._changed:
            job = self._get(job_id)
            if job.state == JobState.QUEUED:
                self._queue.remove(job.id)
                self._callers.pop(job.id, None)
                self._finish(job, JobState.CANCELLED, message="cancelled while queued")
                self._update_positions()
            elif job.state == JobState.RUNNING:
                job.cancel.set()
                log.info("event=job_cancel_requested job=%s", job.id)
                self._changed.wait_for(lambda: job.state.done, timeout=wait)
            return job.snapshot()

    def watch(self, job_id: str, is_active: Callable[[], bool] = lambda: True, poll: float = 0.5) -> Iterator[JobEvent]:
        """Every event of the job so far, then live ones until it ends (or ``is_active`` turns false)."""
        index = 0
        while True:
            with self._changed:
                job = self._get(job_id)
                self._changed.wait_for(lambda: len(job.events) > index or self._stopping, timeout=poll)  # noqa: B023 - used at once
                new = job.events[index:]
                index += len(new)
                done = job.state.done and index >= len(job.events)
            yield from new
            if done or not is_active() or (self._stopping and not new):
                return

    # -- worker -----------------------------------------------------------------------------

    def _get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise errors.NotFound(f"training job {errors.quote(job_id)} not found")
        return job

    def _update_positions(self) -> None:
        """Queue positions count the running job: a job behind it and one queued job is at 2."""
        ahead = 1 if self._running else 0
        for position, job_id in enumerate(self._queue, start=ahead):
            job = self._jobs[job_id]
            if job.queue_position != position or not job.events:
                job.queue_position = position
                job.events.append(
                    JobEvent(
                        job.id, JobState.QUEUED, queue_position=position, message=f"queued behind {position} job(s)"
                    )
                )
        self._changed.notify_all()

    def _finish(self, job: Job, state: JobState, *, message: str = "", error: str = "") -> None:
        job.state = state
        job.error = error
        job.queue_position = 0
        job.finished_at = rfc3339(utcnow())
        self._save(job)
        job.events.append(self._final_event(job, message))
        self._changed.notify_all()

    @staticmethod
    def _final_event(job: Job, message: str = "") -> JobEvent:
        last = next((e for e in reversed(job.events) if e.state == JobState.RUNNING), None)
        return JobEvent(
            job.id,
            job.state,
            epoch=last.epoch if last else 0,
            step=last.step if last else 0,
            total_steps=last.total_steps if last else 0,
            validation=job.validation,
            samples_per_second=last.samples_per_second if last else 0.0,
            message=message or job.error or job.state.value.lower(),
            checkpoint_id=job.checkpoint_id,
        )

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    return
                job = self._jobs[self._queue.popleft()]
                caller = self._callers.pop(job.id, None)
                self._running = job.id
                job.state = JobState.RUNNING
                job.queue_position = 0
                job.started_at = rfc3339(utcnow())
                self._save(job)
                job.events.append(JobEvent(job.id, JobState.RUNNING, message=f"started on {self._device}"))
                self._update_positions()
            attributes = {
                "lesslabels.job_id": job.id,
                "lesslabels.run_id": job.request.run_id,
                "lesslabels.round": job.request.round,
                "lesslabels.dataset": job.request.dataset,
            }
            with tracing.span("training job", attributes, parent=caller) as span:
                log.info("event=job_started job=%s", job.id)
                self._run(job)
                if span is not None:
                    span.set_attribute("lesslabels.job_state", job.state.value)
            with self._changed:
                self._running = None
                self._update_positions()

    def _run(self, job: Job) -> None:
        def report(item: Progress | str) -> None:
            if isinstance(item, str):
                event = JobEvent(job.id, JobState.RUNNING, message=item)
            else:
                event = JobEvent(
                    job.id,
                    JobState.RUNNING,
                    epoch=item.epoch,
                    step=item.step,
                    total_steps=item.total_steps,
                    loss=item.loss,
                    validation=item.validation,
                    samples_per_second=item.samples_per_second,
                    eta_seconds=item.eta_seconds,
                    message=item.message,
                )
            with self._changed:
                job.events.append(event)
                self._changed.notify_all()

        try:
            result = self._runner(job, report)
        except errors.Cancelled as exc:
            with self._changed:
                if self._stopping:
                    self._finish(
                        job,
                        JobState.INTERRUPTED,
                        error="the trainer stopped while this job was running; no checkpoint was published",
                    )
                else:
                    self._finish(job, JobState.CANCELLED, message=str(exc))
            log.info("event=job_cancelled job=%s stopping=%s", job.id, self._stopping)
        except errors.LessLabelsError as exc:
            with self._changed:
                self._finish(job, JobState.FAILED, error=str(exc))
            log.warning("event=job_failed job=%s error=%r", job.id, str(exc))
        except Exception as exc:  # noqa: BLE001 - a failed job must not kill the worker
            log.exception("event=job_failed job=%s unexpected error", job.id)
            with self._changed:
                self._finish(job, JobState.FAILED, error=f"{type(exc).__name__}: {exc}")
        else:
            with self._changed:
                job.checkpoint_id = result.checkpoint_id
                job.validation = result.validation
                job.comparison = result.comparison
                self._finish(job, JobState.SUCCEEDED, message=result.message or f"published {result.checkpoint_id}")
            log.info("event=job_succeeded job=%s checkpoint=%s", job.id, result.checkpoint_id)
