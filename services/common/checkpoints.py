"""The checkpoint store: a directory (a docker volume) of published checkpoints. No torch.

Layout::

    ROOT/
      ckpt-<id>/            one published checkpoint (complete, never modified)
        manifest.json       CheckpointManifest fields as JSON, written last
        model.safetensors   weights (sha256 recorded in the manifest)
        config.json, tokenizer files ...
      .staging/             temporary folders being written (ignored, cleaned on start)
      latest/run-<id>       text file holding the id of the run's latest checkpoint

A run's best checkpoint is not stored: ``best`` picks it from the manifests' validation metrics
(``lesslabels.common.best``, the rule rounds follow too).

Publishing writes into ``.staging``, fsyncs every file and the folder, then renames the folder
into place (atomic on one filesystem) and only then moves the run's "latest" pointer with the
same write-fsync-rename. A crash at any point leaves either no checkpoint or a complete one; a
folder without a valid manifest is never listed.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import threading
import uuid
from typing import Any
from collections.abc import Iterator

from lesslabels.common import errors
from lesslabels.common.best import Comparison, pick_kept
from lesslabels.common.timeutil import rfc3339, utcnow

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
#: The sample ids a checkpoint trained on (a JSON list), so that a later model of its run can be
#: compared with it on held-out texts neither trained on.
TRAINING_SAMPLES = "training_samples.json"
_PREFIX = "ckpt-"
#: Longest checkpoint id (the folder name, with its prefix, must stay under the 255 bytes file systems allow).
MAX_ID_LENGTH = 200


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def labelled_set_hash(pairs) -> str:
    """sha256 over sorted (sample id, label) pairs: identifies exactly what a model was trained on."""
    digest = hashlib.sha256()
    for sample_id, label in sorted(pairs):
        digest.update(f"{int(sample_id)}\t{label}\n".encode())
    return digest.hexdigest()


def fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: pathlib.Path) -> None:
    """Flush every file and folder under ``path`` to disk: before a rename publishes the folder."""
    for item in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if item.is_file():
            with open(item, "rb+") as f:
                os.fsync(f.fileno())
        else:
            fsync_dir(item)
    fsync_dir(path)


def _write_atomic(path: pathlib.Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _validation_and_count(checkpoint: Checkpoint, metric: str) -> tuple[float, int] | None:
    """(``metric``, texts it was measured on) from the checkpoint's validation metrics; the count
    is 0 when the manifest does not give it."""
    value = validation_metric(checkpoint, metric)
    if value is None:
        return None
    try:
        count = int((checkpoint.manifest.get("validation") or {}).get("count") or 0)
    except (TypeError, ValueError):
        count = 0
    return value, count


def validation_metric(checkpoint: Checkpoint, metric: str) -> float | None:
    """``metric`` from the checkpoint's validation metrics, or None when it has none."""
    value = (checkpoint.manifest.get("validation") or {}).get(metric)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


@dataclasses.dataclass
class Checkpoint:
    """A published checkpoint: its folder and manifest (a dict with CheckpointManifest's field names)."""

    id: str
    path: pathlib.Path
    manifest: dict[str, Any]

    @property
    def run_id(self) -> int:
        return int(self.manifest.get("run_id", 0))

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.get("labels", []))


class CheckpointStore:
    def __init__(self, root: str | os.PathLike):
        self.root = pathlib.Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "latest").mkdir(exist_ok=True)
        self._staging = self.root / ".staging"
        self._lock = threading.Lock()

    def clean_staging(self) -> int:
        """Remove leftovers of publications interrupted by a crash. Returns how many."""
        if not self._staging.exists():
            return 0
        leftovers = list(self._staging.iterdir())
        for item in leftovers:
            shutil.rmtree(item, ignore_errors=True)
        if leftovers:
            log.warning("event=staging_cleaned count=%d root=%s", len(leftovers), self.root)
        return len(leftovers)

    @contextlib.contextmanager
    def publish(self, manifest: dict[str, Any]) -> Iterator[pathlib.Path]:
        """Yield an empty staging folder; on clean exit, publish it with ``manifest``.

        The caller writes ``model.safetensors`` and tokenizer/config files into the folder.
        ``id``, ``created_at`` and ``weights_sha256`` are filled in here. On an exception the
        staging folder is removed and nothing is published. After the block,
        ``manifest["id"]`` holds the published id.
        """
        checkpoint_id = manifest.get("id") or f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self._staging.mkdir(exist_ok=True)
        staging = self._staging / checkpoint_id
        staging.mkdir()
        try:
            yield staging
            weights = staging / WEIGHTS
            if not weights.is_file():
                raise errors.FailedPrecondition(f"checkpoint {checkpoint_id}: no {WEIGHTS} was written")
            manifest.update(id=checkpoint_id, created_at=rfc3339(utcnow()), weights_sha256=sha256_file(weights))
            # The manifest is the last file: a folder without it is incomplete by definition.
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
            fsync_tree(staging)
            final = self.root / f"{_PREFIX}{checkpoint_id}"
            with self._lock:
                os.rename(staging, final)
                fsync_dir(self.root)
                run_id = int(manifest.get("run_id") or 0)
                if run_id:
                    _write_atomic(self.root / "latest" / f"run-{run_id}", checkpoint_id)
            log.info("event=checkpoint_published id=%s run=%s", checkpoint_id, run_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def get(self, checkpoint_id: str, *, verify: bool = False) -> Checkpoint:
        if (
            not checkpoint_id
            or len(checkpoint_id) > MAX_ID_LENGTH
            or "/" in checkpoint_id
            or "\\" in checkpoint_id
            or checkpoint_id.startswith(".")
            or not checkpoint_id.isprintable()
        ):
            raise errors.InvalidArgument(
                f"invalid checkpoint id {errors.quote(checkpoint_id)}: at most {MAX_ID_LENGTH} printable characters, "
                "no '/' and no leading '.'"
            )
        path = self.root / f"{_PREFIX}{checkpoint_id}"
        manifest_path = path / MANIFEST
        # The messages go to clients: they name the id, never the store's path.
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError):
            raise errors.NotFound(f"checkpoint {errors.quote(checkpoint_id)} not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise errors.FailedPrecondition(
                f"checkpoint {errors.quote(checkpoint_id)}: corrupt manifest ({exc})"
            ) from None
        except (OSError, ValueError) as exc:
            log.error("event=manifest_unreadable id=%r error=%r", checkpoint_id, exc)
            raise errors.NotFound(f"checkpoint {errors.quote(checkpoint_id)} not found") from None
        checkpoint = Checkpoint(id=checkpoint_id, path=path, manifest=manifest)
        if verify:
            self.verify(checkpoint)
        return checkpoint

    def verify(self, checkpoint: Checkpoint) -> None:
        """Raise FailedPrecondition unless the weights match the manifest's sha256."""
        try:
            actual = sha256_file(checkpoint.path / WEIGHTS)
        except OSError as exc:
            log.error("event=weights_unreadable id=%s error=%r", checkpoint.id, exc)
            raise errors.FailedPrecondition(f"checkpoint {checkpoint.id}: its weights cannot be read") from None
        if actual != checkpoint.manifest.get("weights_sha256"):
            raise errors.FailedPrecondition(
                f"checkpoint {checkpoint.id}: weights sha256 {actual[:12]}… does not match the manifest"
            )

    @staticmethod
    def write_training_samples(folder: pathlib.Path, sample_ids) -> None:
        """Record, in a checkpoint's staging folder, the sample ids it trained on."""
        (folder / TRAINING_SAMPLES).write_text(json.dumps(sorted(int(i) for i in sample_ids)), encoding="utf-8")

    @staticmethod
    def training_samples(checkpoint: Checkpoint) -> frozenset[int] | None:
        """The sample ids ``checkpoint`` trained on; None when it did not record them (published
        before they were recorded) or the record is unreadable."""
        try:
            ids = json.loads((checkpoint.path / TRAINING_SAMPLES).read_text(encoding="utf-8"))
            return frozenset(int(i) for i in ids)
        except (OSError, ValueError, TypeError) as exc:
            log.info("event=training_samples_unknown id=%s error=%r", checkpoint.id, exc)
            return None

    def latest(self, run_id: int) -> Checkpoint:
        pointer = self.root / "latest" / f"run-{int(run_id)}"
        try:
            checkpoint_id = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise errors.NotFound(f"run {run_id} has no published checkpoint") from None
        return self.get(checkpoint_id)

    def best(self, run_id: int, metric: str = "accuracy") -> Checkpoint:
        """The checkpoint the run keeps, by the one rule of ``lesslabels.common.best``: each
        checkpoint's paired comparison with the one kept before it (the manifest's ``comparison``),
        else ``metric`` on its validation data (the manifest's ``validation``). Test metrics are
        never consulted."""
        best = pick_kept(
            self.list(run_id),
            order=lambda c: (int(c.manifest.get("round") or 0), c.manifest.get("created_at", ""), c.id),
            comparison=lambda c: Comparison.from_dict(c.manifest.get("comparison")),
            validation=lambda c: _validation_and_count(c, metric),
        )
        if best is None:
            raise errors.NotFound(f"run {run_id} has no published checkpoint")
        return best

    def list(self, run_id: int = 0) -> list[Checkpoint]:
        """Published checkpoints (complete manifests only), newest first."""
        found = []
        for path in self.root.glob(f"{_PREFIX}*"):
            try:
                checkpoint = self.get(path.name[len(_PREFIX) :])
            except errors.LessLabelsError:
                continue
            if run_id and checkpoint.run_id != run_id:
                continue
            found.append(checkpoint)
        found.sort(key=lambda c: (c.manifest.get("created_at", ""), c.id), reverse=True)
        return found

    def apply_retention(
        self, run_id: int, keep_last: int, metric: str = "accuracy"
    ) -> builtins.list[str]:  # `list` here is the method above
        """Delete a run's checkpoints except the newest ``keep_last``, the best on validation
        ``metric`` and the one "latest" points to. Returns the deleted ids."""
        if keep_last <= 0:
            return []
        checkpoints = self.list(run_id)
        keep = {c.id for c in checkpoints[:keep_last]}
        # The checkpoints a model reference can name (best_of_run, latest_of_run) always stay.
        with contextlib.suppress(errors.NotFound):
            keep.add(self.best(run_id, metric).id)
        with contextlib.suppress(errors.NotFound):
            keep.add(self.latest(run_id).id)
        deleted = []
        for checkpoint in checkpoints:
            if checkpoint.id not in keep:
                # Remove the manifest first so a half-deleted folder is never listed.
                (checkpoint.path / MANIFEST).unlink(missing_ok=True)
                shutil.rmtree(checkpoint.path, ignore_errors=True)
                deleted.append(checkpoint.id)
        if deleted:
            log.info("event=retention run=%s deleted=%s", run_id, ",".join(deleted))
        return deleted
