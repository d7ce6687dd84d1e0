"""Build a tiny, randomly initialised BERT for fast tests (the real MiniLM runs in slow tests)."""

from __future__ import annotations

import pathlib


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
