"""How a classifier turns an encoder's token vectors into the features its head reads.

Two poolings, named in the checkpoint's ``config.json`` (``lesslabels_pooling``) so that the
trainer and the scorer compute the same logits from the same folder:

``mean``  the mean of the last layer's token vectors (padding excluded), then the model's own
          dropout and linear ``classifier``. Sentence encoders such as all-MiniLM-L6-v2 were
          trained with exactly this pooling; their [CLS] position was not. On CLINC150 dev with
          the encoder frozen, nearest class mean from 1,350 labels reaches 87.9 % on mean-pooled
          features against 67.6 % on BERT's pooled [CLS] output (bench/README.md, "Pooling").
``cls``   the model's own forward (for BERT: pooler over [CLS], dropout, classifier). A folder
          without the attribute is ``cls``: every checkpoint written before pooling existed.

Mean pooling needs a model whose head is one linear layer fed by a pooled vector (BERT-family
``*ForSequenceClassification``: ``.classifier`` a ``Linear``, ``.dropout``); any other model
keeps its own forward (``set_pooling`` answers ``cls``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

POOLINGS = ("mean", "cls")
CONFIG_ATTRIBUTE = "lesslabels_pooling"


def pooling_of(model: Any) -> str:
    """The pooling a loaded classifier computes with (``cls`` when its config names none)."""
    value = getattr(model.config, CONFIG_ATTRIBUTE, None)
    return value if value in POOLINGS else "cls"


def supports_mean(model: Any) -> bool:
    import torch

    return isinstance(getattr(model, "classifier", None), torch.nn.Linear) and hasattr(model, "dropout")


def set_pooling(model: Any, pooling: str) -> str:
    """Make ``model`` compute with ``pooling`` (recorded in its config, so saved with it); returns
    the pooling it got: ``cls`` when ``mean`` is asked of a model that cannot take it."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
    chosen = pooling if pooling == "cls" or supports_mean(model) else "cls"
    setattr(model.config, CONFIG_ATTRIBUTE, chosen)
    return chosen


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors that are not padding: ``[n, t, h]`` x ``[n, t]`` -> ``[n, h]``."""
    import torch

    weights = mask.unsqueeze(-1).to(torch.float32)  # [n, t, 1]
    summed = (hidden.float() * weights).sum(dim=1)  # [n, h]
    return summed / weights.sum(dim=1).clamp(min=1.0)


def classify(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, hidden: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits [n, c], the last layer's token vectors [n, t, h] when ``hidden``, else None)."""
    if pooling_of(model) == "mean":
        states = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        features = mean_pool(states, attention_mask).to(states.dtype)
        return model.classifier(model.dropout(features)), (states if hidden else None)
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=hidden)
    return out.logits, (out.hidden_states[-1] if hidden else None)


def logits(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return classify(model, input_ids, attention_mask)[0]
