"""``lesslabels export-model CHECKPOINT_OR_RUN OUT_DIR``: a checkpoint as a portable model folder.

Reads the checkpoint store on this machine (``--checkpoint-dir``, the folder the trainer publishes
into) and needs the model extras (torch, transformers; onnxruntime for the ONNX format): the only
CLI command that does, so ``lesslabels.modeling`` is imported when it runs, never before.
"""

from __future__ import annotations

import pathlib

from lesslabels.cli.common import ArgumentParser, CliError, command
from lesslabels.cli.stack import DEFAULT_STATE_DIR
from lesslabels.common import errors
from lesslabels.common.checkpoints import CheckpointStore
from lesslabels.common.config import add_flag

FORMATS = ("onnx", "sentence-transformers")
CHOICES = (*FORMATS, "both")


@command
def export_model_main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="lesslabels export-model",
        description="Write a checkpoint as a model that runs without lesslabels: OUT_DIR/onnx (onnxruntime + "
        "tokenizers) and OUT_DIR/sentence-transformers (transformers or sentence-transformers, no remote code), "
        "each with the label names. See README.md, 'Using the model elsewhere'.",
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN", help="a checkpoint id, or a run: N or run-N")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write (absent or empty, unless --force)")
    parser.add_argument("--format", choices=CHOICES, default="both", help="what to write (default: both)")
    parser.add_argument("--latest", action="store_true", help="a run's newest checkpoint, not the one it keeps")
    parser.add_argument("--force", action="store_true", help="replace an earlier export in OUT_DIR")
    add_flag(
        parser,
        "--checkpoint-dir",
        default=str(pathlib.Path(DEFAULT_STATE_DIR) / "checkpoints"),
        help="the checkpoint store ('lesslabels up': STATE_DIR/checkpoints)",
    )
    args = parser.parse_args(argv)
    formats = FORMATS if args.format == "both" else (args.format,)
    store_dir = pathlib.Path(args.checkpoint_dir)
    if not store_dir.is_dir():
        raise CliError(f"no checkpoint store at {store_dir}: give --checkpoint-dir (env LESSLABELS_CHECKPOINT_DIR)")
    try:
        import torch  # noqa: F401 - the model extras, named when missing

        from lesslabels.modeling import portable

        _quiet_transformers()
    except ImportError as exc:
        raise CliError(
            f"export-model needs torch and transformers ({exc.name} is missing): pip install 'lesslabels[ml,onnx]'"
        ) from None
    try:
        store = CheckpointStore(store_dir)
        checkpoint = portable.resolve_checkpoint(store, args.checkpoint, latest=args.latest)
        exported = portable.export_model(checkpoint, args.out_dir, formats, force=args.force, store=store)
    except errors.LessLabelsError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # OUT_DIR's parent cannot be made or written
        raise CliError(f"cannot write {args.out_dir}: {exc.strerror or exc}; nothing was written") from None
    except ImportError as exc:
        raise CliError(f"the {args.format} format needs {exc.name}: pip install 'lesslabels[onnx]'") from None
    print(f"exported checkpoint {exported.checkpoint_id} ({len(exported.labels)} labels) to {exported.path}:")
    for fmt, folder in exported.folders.items():
        print(f"  {fmt:<22} {folder}")
    return 0


def _quiet_transformers() -> None:
    """No progress bars or load reports from transformers on the user's terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
