"""How a classifier turns an encoder's token vectors into the features its head reads.

``mean``  the mean of the last layer's token vectors (padding excluded), then dropout and the
          linear ``classifier``: ``meanpool_bert.MeanPoolBertForSequenceClassification``. Sentence
          encoders such as all-MiniLM-L6-v2 were trained with exactly this pooling; their [CLS]
          position was not. On CLINC150 dev with the encoder frozen, nearest class mean from 1,350
          labels reaches 87.9 % on mean-pooled features against 67.6 % on BERT's pooled [CLS]
          output (bench/README.md, "Pooling"). BERT-family base models only (``model_type``
          ``bert``); any other model keeps its own classifier.
``cls``   the model's own ``*ForSequenceClassification`` (for BERT: pooler over [CLS]).

The pooling is the checkpoint's model class, so the trainer, the scorer and anyone loading the
folder compute the same logits with a plain ``model(**batch).logits``. Checkpoints written before
pooling existed are plain ``BertForSequenceClassification`` folders: ``cls``.

torch and transformers are imported inside the functions (importing this module stays cheap).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any
from lesslabels.contract.vocabulary import POOLINGS

if TYPE_CHECKING:  # pragma: no cover
    import torch


@functools.cache
def register() -> None:
    """Make the Auto classes load mean-pooled checkpoints from our own code (never the folder's),
    and make ``save_pretrained`` copy that code into the folder with an ``auto_map``."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from lesslabels.modeling.meanpool_bert import MODEL_TYPE, MeanPoolBertConfig, MeanPoolBertForSequenceClassification

    AutoConfig.register(MODEL_TYPE, MeanPoolBertConfig, exist_ok=True)
    AutoModelForSequenceClassification.register(
        MeanPoolBertConfig, MeanPoolBertForSequenceClassification, exist_ok=True
    )
    MeanPoolBertConfig.register_for_auto_class()
    MeanPoolBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


def pooling_of(model: Any) -> str:
    """The pooling a loaded classifier computes with."""
    from lesslabels.modeling.meanpool_bert import MeanPoolBertForSequenceClassification

    return "mean" if isinstance(model, MeanPoolBertForSequenceClassification) else "cls"


def classifier_class(config: Any, pooling: str) -> Any:
    """The class a fresh classifier over a base model with ``config`` gets for ``pooling``, with the
    config to build it from: ``(None, config)`` means the model's own Auto class."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
    from lesslabels.modeling.meanpool_bert import MeanPoolBertConfig, MeanPoolBertForSequenceClassification

    if pooling == "mean" and getattr(config, "model_type", "") == "bert":
        register()
        fields = {k: v for k, v in config.to_dict().items() if k not in ("model_type", "architectures", "auto_map")}
        return MeanPoolBertForSequenceClassification, MeanPoolBertConfig(**fields)
    return None, config


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors that are not padding: ``[n, t, h]`` x ``[n, t]`` -> ``[n, h]``."""
    import torch

    weights = mask.unsqueeze(-1).to(torch.float32)  # [n, t, 1]
    summed = (hidden.float() * weights).sum(dim=1)  # [n, h]
    return summed / weights.sum(dim=1).clamp(min=1.0)
