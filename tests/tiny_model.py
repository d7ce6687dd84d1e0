"""Build a tiny, randomly initialised BERT for fast tests (the real MiniLM runs in slow tests)."""

from __future__ import annotations

import pathlib
from typing import Any


def save_tiny_bert(folder: pathlib.Path, *, seed: int = 0) -> pathlib.Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from lesslabels.modeling.models import default_model_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def publish_tiny_classifier(
    store, base_dir: pathlib.Path, *, run_id: int, labels, dataset: str = "toy", max_length: int = 16, seed: int = 0
) -> str:
    """Publish the tiny BERT with a random classification head as a checkpoint of ``run_id``, as
    the trainer would; returns its id."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    with torch.no_grad():  # a large random head, so different texts get visibly different rows
        model.classifier.weight.mul_(50.0)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "labels": list(labels),
        "base_model": str(base_dir),
        "hyperparameters": {"max_length": max_length},
        "dataset": dataset,
    }
    with store.publish(manifest) as folder:
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(base_dir).save_pretrained(folder)
    return manifest["id"]
