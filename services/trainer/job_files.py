"""One JSON file per training job: written atomically (write, fsync, rename) on every state change,
read back on start."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import uuid

from lesslabels.trainer.job_types import Job

log = logging.getLogger(__name__)


def path_of(jobs_dir: pathlib.Path, job_id: str) -> pathlib.Path:
    return jobs_dir / f"job-{job_id}.json"


def save(jobs_dir: pathlib.Path, job: Job) -> None:
    path = path_of(jobs_dir, job.id)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(job.to_dict(), f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_all(jobs_dir: pathlib.Path) -> list[Job]:
    """Every readable job file, in creation order; left-over temporary files are removed and
    unreadable files logged and skipped."""
    for tmp in jobs_dir.glob(".job-*.tmp"):
        tmp.unlink(missing_ok=True)
    loaded = []
    for path in jobs_dir.glob("job-*.json"):
        try:
            loaded.append(Job.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("event=job_file_unreadable path=%s error=%r", path, str(exc))
    return sorted(loaded, key=lambda j: (j.created_at, j.id))
