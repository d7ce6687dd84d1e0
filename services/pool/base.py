"""What the parts of the pool's core share: the sessions (provided by ``PoolStore`` in store.py) and
the two lookups every part needs, a dataset by name and a run by id, inside the caller's session."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from lesslabels.common import errors
from lesslabels.pool.tables import Dataset, Run

T = TypeVar("T")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class StorePart:
    """Base of the store's parts (datasets, samples, labels, runs): each reads in ``_reading()`` and
    writes in ``_writing(fn)``, which ``PoolStore`` implements once for all of them."""

    def _reading(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _writing(self, fn: Callable[[Session], T], *, attempts: int = 6) -> T:
        raise NotImplementedError


def find_dataset(session: Session, name: str) -> Dataset:
    """The dataset named ``name``; InvalidArgument without a name, NotFound when there is none."""
    if not name:
        raise errors.InvalidArgument("dataset name is required")
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        raise errors.NotFound(f"dataset {errors.quote(name)} not found")
    return dataset


def find_run(session: Session, run_id: int, *, dataset_id: int | None = None) -> Run:
    """Run ``run_id``; NotFound when there is none, InvalidArgument when it is not of ``dataset_id``."""
    run = session.get(Run, run_id) if run_id > 0 else None
    if run is None:
        raise errors.NotFound(f"run {run_id} not found")
    if dataset_id is not None and run.dataset_id != dataset_id:
        raise errors.InvalidArgument(f"run {run_id} belongs to another dataset")
    return run
