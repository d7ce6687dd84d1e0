"""OIP model names and versions -> the scorer's ModelSpec and the published checkpoint.

A name is a checkpoint id, or ``run-<id>`` for a run. A checkpoint's only version is its id; a
run's versions are ``latest``, ``best`` and the ids of its checkpoints ("" = ``latest``).
"""

from __future__ import annotations

import re

from lesslabels.common import errors
from lesslabels.common.checkpoints import Checkpoint
from lesslabels.scorer.model_cache import ModelCache, ModelSpec

_RUN_NAME = re.compile(r"^run-(\d+)$")
LATEST, BEST = "latest", "best"
NAME_REQUIRED = "model name is required (a checkpoint id, or run-<id> for a run)"


def spec_from_model_name(name: str) -> ModelSpec:
    """The model an OIP model name names at its default version (``run-<id>``: the latest)."""
    if not name:
        raise errors.InvalidArgument(NAME_REQUIRED)
    match = _RUN_NAME.match(name)
    if match:
        run_id = int(match.group(1))
        if run_id <= 0:
            raise errors.InvalidArgument(f"model {errors.quote(name)}: run ids are positive")
        return ModelSpec(latest_of_run=run_id)
    return ModelSpec(checkpoint_id=name)


def spec_from_model_version(name: str, version: str) -> ModelSpec:
    """The model ``name`` at ``version``: for a checkpoint id, "" or the id itself; for
    ``run-<id>``, "" or "latest", "best" (by validation metrics), or one of the run's checkpoint
    ids (checked against its manifest by ``resolve_checkpoint``)."""
    spec = spec_from_model_name(name)
    if spec.checkpoint_id:
        if version not in ("", spec.checkpoint_id):
            raise errors.NotFound(
                f"model {errors.quote(name)} has no version {errors.quote(version)} (a checkpoint's only version is its id)"
            )
        return spec
    if version in ("", LATEST):
        return spec
    if version == BEST:
        return ModelSpec(best_of_run=spec.latest_of_run)
    return ModelSpec(checkpoint_id=version)


def resolve_checkpoint(cache: ModelCache, name: str, version: str) -> Checkpoint:
    """The published checkpoint ``name``/``version`` selects, from the manifests (nothing is loaded)."""
    spec = spec_from_model_version(name, version)
    run = _RUN_NAME.match(name)
    if not run or version in ("", LATEST, BEST):
        return cache.checkpoint(spec)  # its NotFound says what is missing (a run's checkpoint, metrics)
    expected = f"versions are {errors.quote(LATEST)}, {errors.quote(BEST)} or the id of one of run {run.group(1)}'s checkpoints"
    try:
        checkpoint = cache.checkpoint(spec)
    except (errors.NotFound, errors.InvalidArgument):
        raise errors.NotFound(
            f"model {errors.quote(name)} has no version {errors.quote(version)}: {expected}"
        ) from None
    if checkpoint.run_id != int(run.group(1)):
        raise errors.NotFound(
            f"model {errors.quote(name)} has no version {errors.quote(version)}: that checkpoint is not one of run {run.group(1)} ({expected})"
        )
    return checkpoint


def model_versions(cache: ModelCache, name: str, checkpoint: Checkpoint) -> list[str]:
    """The versions ModelMetadata lists for ``name``: a run's checkpoints, newest first; a
    checkpoint's own id."""
    if _RUN_NAME.match(name):
        return [c.id for c in cache.store.list(checkpoint.run_id)]
    return [checkpoint.id]
