"""A published checkpoint as a portable model folder (``lesslabels export-model``)::

    OUT_DIR/
      onnx/                   onnxruntime + tokenizers (lesslabels.modeling.onnx_export)
      sentence-transformers/  transformers or sentence-transformers, no remote code
                              (lesslabels.modeling.st_export)

The checkpoint is loaded as the scorer loads it (fp32, CPU, the max_length it was trained with) and
its weights are checked against its manifest first. Everything is written into a staging folder
beside OUT_DIR, checked, flushed to disk and then renamed into place: OUT_DIR is either untouched or
a complete export. An OUT_DIR that exists is replaced only when it is empty, or with ``force`` when it
holds nothing but an earlier export's folders; never when it holds or lies inside the checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import shutil
import uuid
from collections.abc import Sequence

from lesslabels.common import errors
from lesslabels.common.checkpoints import Checkpoint, CheckpointStore, fsync_dir, fsync_tree

log = logging.getLogger(__name__)

ONNX = "onnx"
SENTENCE_TRANSFORMERS = "sentence-transformers"
#: The formats, each written into the folder of its name inside OUT_DIR.
FORMATS = (ONNX, SENTENCE_TRANSFORMERS)


@dataclasses.dataclass(frozen=True)
class Exported:
    """What was written: OUT_DIR and the folder of each format in it."""

    path: pathlib.Path
    folders: dict[str, pathlib.Path]
    checkpoint_id: str
    labels: list[str]


def resolve_checkpoint(store: CheckpointStore, ref: str, *, latest: bool = False) -> Checkpoint:
    """A checkpoint by id (``ID`` or its folder name ``ckpt-ID``), or a run's by number (``N`` or
    ``run-N``): the model the run keeps, or with ``latest`` its newest. NotFound / InvalidArgument
    naming ``ref`` otherwise."""
    ref = ref.strip()
    run = ref.removeprefix("run-")
    if run.isdigit() and run.isascii():
        run_id = int(run)
        if run_id <= 0:
            raise errors.InvalidArgument(f"run {errors.quote(ref)}: a run number is 1 or more")
        return store.latest(run_id) if latest else store.best(run_id)
    if latest:
        raise errors.InvalidArgument(f"--latest takes a run (N or run-N), not the checkpoint {errors.quote(ref)}")
    return store.get(ref.removeprefix("ckpt-"))


def _check_destination(out_dir: pathlib.Path, checkpoint: Checkpoint, force: bool) -> None:
    out, source = out_dir.resolve(), checkpoint.path.resolve()
    if out == source or out.is_relative_to(source) or source.is_relative_to(out):
        raise errors.InvalidArgument(
            f"{out_dir} holds or lies inside checkpoint {checkpoint.id}'s folder: give an output folder elsewhere"
        )
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise errors.InvalidArgument(f"{out_dir} exists and is not a folder: nothing was written")
    if not out_dir.exists():
        return
    entries = sorted(p.name for p in out_dir.iterdir())
    if not entries:
        return
    if not force:
        raise errors.AlreadyExists(f"{out_dir} is not empty: give --force to replace an earlier export there")
    foreign = [name for name in entries if name not in FORMATS or not (out_dir / name).is_dir()]
    if foreign:
        raise errors.FailedPrecondition(
            f"{out_dir} holds more than an earlier export ({', '.join(map(errors.quote, foreign[:5]))}): "
            "--force replaces only a folder 'lesslabels export-model' wrote; nothing was changed"
        )


def _place(staging: pathlib.Path, out_dir: pathlib.Path) -> None:
    """Rename the complete ``staging`` folder to ``out_dir`` (empty or an earlier export)."""
    old = None
    if out_dir.exists():
        if any(out_dir.iterdir()):
            old = out_dir.with_name(f".{out_dir.name}.{uuid.uuid4().hex[:8]}.old")
            os.rename(out_dir, old)
        else:
            out_dir.rmdir()
    os.rename(staging, out_dir)
    fsync_dir(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_model(
    checkpoint: Checkpoint,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = FORMATS,
    *,
    force: bool = False,
    store: CheckpointStore | None = None,
) -> Exported:
    """Export ``checkpoint`` into ``out_dir`` in ``formats`` (see the module's docstring)."""
    import torch

    from lesslabels.modeling import inference, onnx_export, st_export

    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise errors.InvalidArgument(f"format {errors.quote(', '.join(unknown))}: expected {', '.join(FORMATS)}")
    if ONNX in formats:
        import onnxruntime  # noqa: F401 - ImportError naming it before anything is loaded or written
    out_dir = pathlib.Path(out_dir)
    _check_destination(out_dir, checkpoint, force)
    if store is not None:
        store.verify(checkpoint)
    max_length = int((checkpoint.manifest.get("hyperparameters") or {}).get("max_length") or 0)
    try:
        loaded = inference.load_classifier(
            checkpoint.path,
            labels=checkpoint.labels,
            name=checkpoint.id,
            device=torch.device("cpu"),
            max_length=max_length,
            precision="fp32",
        )
    except (OSError, ValueError) as exc:
        raise errors.FailedPrecondition(f"checkpoint {checkpoint.id} cannot be loaded: {exc}") from None
    if SENTENCE_TRANSFORMERS in formats:
        st_export.layout_of(loaded.model)  # refuse before anything is written
    about = {"checkpoint_id": checkpoint.id, "run_id": checkpoint.run_id}
    if checkpoint.manifest.get("round") is not None:
        about["round"] = checkpoint.manifest["round"]
    writers = {ONNX: onnx_export.export_onnx, SENTENCE_TRANSFORMERS: st_export.export_sentence_transformers}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.{uuid.uuid4().hex[:8]}.partial")
    staging.mkdir()
    try:
        for fmt in FORMATS:
            if fmt in formats:
                writers[fmt](loaded, staging / fmt, about)
        fsync_tree(staging)
        _place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("event=model_exported checkpoint=%s formats=%s out=%s", checkpoint.id, ",".join(formats), out_dir)
    return Exported(
        path=out_dir,
        folders={fmt: out_dir / fmt for fmt in FORMATS if fmt in formats},
        checkpoint_id=checkpoint.id,
        labels=list(loaded.labels),
    )
