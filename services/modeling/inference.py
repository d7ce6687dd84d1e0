"""Inference on published checkpoints: loading, tokenisation with truncation flags, forward passes.

Knows nothing of gRPC or batching policy. The scorer's batcher calls :func:`forward` on batches it
has already grouped by length; everything here is plain torch + transformers.

A checkpoint folder (as published through ``lesslabels.common.checkpoints.CheckpointStore``) holds
``model.safetensors``, ``config.json`` and the tokenizer files; a base model folder (or HF name,
offline) holds an encoder without a classification head and is used for embeddings only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from lesslabels.contract.vocabulary import PRECISIONS
from lesslabels.modeling import pooling
from lesslabels.modeling.batching import Encoded, TokenIds, collate, encode, pin_memory_for, to_device
from lesslabels.modeling.models import cpu_has_native_bf16  # noqa: F401 - re-exported for callers
from lesslabels.modeling.pooling import mean_pool

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


def pick_device(preferred: str = "") -> torch.device:
    """``preferred`` ("cpu", "cuda", "cuda:1") when given, else CUDA when present, else CPU."""
    if preferred:
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain fp32.

    ``auto`` is bf16 on CUDA devices that support it (fp16 otherwise), bf16 on CPUs with native
    bf16 arithmetic (2.9x fp32 for MiniLM on a 2-core Zen 4, bench/README.md) and fp32 on other
    CPUs. The scorer pairs reduced precision with fp32 re-scoring of the uncertain rows
    (``lesslabels.scorer.model_cache.CacheConfig.refine_below``) so that the probabilities hold.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


@dataclasses.dataclass
class InferenceModel:
    """A loaded model ready for :func:`forward`. ``labels`` is empty for a base (embedding-only) model."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    max_length: int
    labels: list[str]
    dtype: torch.dtype | None = None
    source: str = ""
    # BERT classifiers: the last layer computed for the [CLS] position only (checked at load)
    cls_only: bool = False

    @property
    def is_classifier(self) -> bool:
        return bool(self.labels)

    @property
    def pad_token_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        return int(pad) if pad is not None else 0


def model_max_length(tokenizer, config) -> int:
    limits = [int(getattr(config, "max_position_embeddings", 0) or 0)]
    tok_max = int(getattr(tokenizer, "model_max_length", 0) or 0)
    if 0 < tok_max < 100_000:  # HF uses a huge sentinel when unknown
        limits.append(tok_max)
    limits = [x for x in limits if x > 0]
    return min(limits) if limits else 512


def load_classifier(
    folder: str | os.PathLike,
    *,
    labels: Sequence[str] = (),
    name: str = "",
    device: torch.device | None = None,
    max_length: int = 0,
    precision: str = "auto",
) -> InferenceModel:
    """Load a fine-tuned sequence classifier from a checkpoint folder.

    ``labels`` (from the manifest) win over the config's id2label; ``max_length`` 0 means the
    model's own limit. Raises ValueError when the head does not match the labels.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    pooling.register()  # mean-pooled checkpoints load from our code, never the folder's
    device = device or pick_device()
    folder = pathlib.Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    n_out = int(model.config.num_labels)
    if labels:
        labels = list(labels)
        if len(labels) != n_out:
            raise ValueError(f"{folder}: the manifest names {len(labels)} labels but the head has {n_out} outputs")
    else:
        id2label = getattr(model.config, "id2label", None) or {}
        labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(n_out)]
    limit = model_max_length(tokenizer, model.config)
    return _finish(
        model,
        tokenizer,
        name or folder.name,
        device,
        min(max_length, limit) if max_length else limit,
        labels,
        precision,
        str(folder),
    )


def load_encoder(
    name_or_path: str, *, device: torch.device | None = None, max_length: int = 0, precision: str = "auto"
) -> InferenceModel:
    """Load a base encoder (no classification head): embeddings only."""
    from transformers import AutoModel, AutoTokenizer

    device = device or pick_device()
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True, trust_remote_code=False)
    model = AutoModel.from_pretrained(name_or_path, local_files_only=True, trust_remote_code=False)
    limit = model_max_length(tokenizer, model.config)
    return _finish(
        model,
        tokenizer,
        name_or_path,
        device,
        min(max_length, limit) if max_length else limit,
        [],
        precision,
        name_or_path,
    )


def _finish(model, tokenizer, name, device, max_length, labels, precision, source) -> InferenceModel:
    model.eval()
    model.to(device)
    loaded = InferenceModel(
        name=name,
        model=model,
        tokenizer=tokenizer,
        device=device,
        max_length=int(max_length),
        labels=list(labels),
        dtype=autocast_dtype(precision, device),
        source=source,
    )
    loaded.cls_only = bool(labels) and _cls_only_matches(loaded)
    return loaded


# -- the last layer for [CLS] only ------------------------------------------------------------
# A BERT classifier reads only the [CLS] position of the last layer (pooler -> classifier), so
# that layer needs keys and values for every token but queries, attention output and feed-forward
# for one: about 1/7 of the whole forward pass on short texts. Used only where it reproduces the
# model's own forward (checked on a padded probe batch when the model is loaded).


def _is_plain_bert_classifier(model: torch.nn.Module) -> bool:
    from transformers import BertForSequenceClassification
    from transformers.models.bert.modeling_bert import BertLayer, BertSelfAttention

    if type(model) is not BertForSequenceClassification:  # not a subclass (mean pooling)
        return False
    config = model.config
    layers = model.bert.encoder.layer
    return (
        not config.is_decoder
        and not config.add_cross_attention
        and config.chunk_size_feed_forward == 0
        and getattr(config, "_attn_implementation", "") in ("sdpa", "eager")
        and len(layers) > 0
        and all(type(layer) is BertLayer and type(layer.attention.self) is BertSelfAttention for layer in layers)
    )


def cls_only_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Logits of a BertForSequenceClassification in eval mode, the last layer for [CLS] only."""
    # Any: the layers reached through nn.Module attributes type as Tensor | Module.
    from transformers.masking_utils import create_bidirectional_mask

    bert = model.bert
    hidden = bert.embeddings(input_ids=ids)  # [n, t, h]
    attention = create_bidirectional_mask(config=bert.config, inputs_embeds=hidden, attention_mask=mask)
    *early, last = bert.encoder.layer
    for layer in early:
        hidden = layer(hidden, attention)
    sa = last.attention.self
    n, t, _ = hidden.shape
    cls = hidden[:, :1]  # [n, 1, h]
    q = sa.query(cls).view(n, 1, sa.num_attention_heads, sa.attention_head_size).transpose(1, 2)  # [n, a, 1, d]
    k = sa.key(hidden).view(n, t, sa.num_attention_heads, sa.attention_head_size).transpose(1, 2)  # [n, a, t, d]
    v = sa.value(hidden).view(n, t, sa.num_attention_heads, sa.attention_head_size).transpose(1, 2)
    if attention is not None:
        attention = attention[:, :, :1, :]  # the [CLS] query's row: [n, 1, 1, t]
        if attention.dtype != torch.bool:
            attention = attention.to(q.dtype)  # an additive float mask (eager attention)
    context = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attention, scale=sa.scaling)
    context = context.transpose(1, 2).reshape(n, 1, sa.all_head_size)  # [n, 1, h]
    out = last.attention.output(context, cls)
    out = last.output(last.intermediate(out), out)  # [n, 1, h]
    pooled = bert.pooler(out) if bert.pooler is not None else out[:, 0]
    return model.classifier(model.dropout(pooled))  # [n, c]


def _cls_only_matches(loaded: InferenceModel) -> bool:
    """Whether :func:`cls_only_logits` gives the model's own logits (fp32, padded probe batch)."""
    try:
        if not _is_plain_bert_classifier(loaded.model):
            return False
        vocab = int(loaded.model.config.vocab_size)
        rows = [[min(101, vocab - 1)] + [(7 * i + 3 * j) % vocab for j in range(n)] for i, n in enumerate((9, 4, 1))]
        ids, mask = pad_batch(rows, loaded.pad_token_id)
        ids, mask = ids.to(loaded.device), mask.to(loaded.device)
        with torch.inference_mode():
            full = loaded.model(input_ids=ids, attention_mask=mask).logits.float()
            fast = cls_only_logits(loaded.model, ids, mask).float()
        ok = bool(torch.allclose(full, fast, atol=1e-4, rtol=1e-4))
    except Exception as exc:  # noqa: BLE001 - any mismatch in internals: use the plain forward
        log.info("event=cls_only_unavailable model=%s error=%r", loaded.name, exc)
        return False
    if not ok:
        log.warning("event=cls_only_mismatch model=%s: using the full forward", loaded.name)
    return ok


#: Token ids per text (int32 arrays, truncated, special tokens included) and which were truncated.
Tokenized = Encoded


class Tokenizing(Protocol):
    """What :func:`tokenize` reads of a loaded model (an ``InferenceModel`` or an ONNX one)."""

    tokenizer: Any
    max_length: int


def tokenize(model: Tokenizing, texts: Sequence[str]) -> Tokenized:
    """Tokenise without padding; a text longer than ``model.max_length`` tokens is cut and flagged
    (work and memory per text bounded by ``max_length``: :func:`lesslabels.modeling.batching.encode`)."""
    return encode(model.tokenizer, texts, model.max_length)


@dataclasses.dataclass
class ForwardOutput:
    """Per-row outputs of one forward pass, in the order of the rows given."""

    probabilities: np.ndarray | None  # [n, n_classes] float32, None for an encoder
    embeddings: np.ndarray | None  # [n, hidden] float32, when asked for


def pad_batch(rows: Sequence[TokenIds], pad_id: int, *, pin_memory: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack token id lists into one ``[n, longest]`` tensor and its attention mask (in pinned
    memory with ``pin_memory``: batches bound for CUDA)."""
    batch = collate(rows, pad_id, pin_memory=pin_memory)
    return batch["input_ids"], batch["attention_mask"]


def forward(
    model: InferenceModel, rows: Sequence[TokenIds], *, embeddings: bool = False, full_precision: bool = False
) -> ForwardOutput:
    """One forward pass over ``rows`` (token id lists), all stacked into one padded tensor.
    ``full_precision`` skips the model's autocast dtype (fp32). On CUDA the padded batch is built in
    pinned memory and copied without blocking (``batching.to_device``)."""
    if not rows:
        return ForwardOutput(
            np.zeros((0, len(model.labels)), np.float32) if model.is_classifier else None,
            np.zeros((0, 0), np.float32) if embeddings else None,
        )
    ids, mask = pad_batch(rows, model.pad_token_id, pin_memory=pin_memory_for(model.device))
    moved = to_device({"ids": ids, "mask": mask}, model.device)
    ids, mask = moved["ids"], moved["mask"]
    autocast = (
        torch.autocast(device_type=model.device.type, dtype=model.dtype)
        if model.dtype is not None and not full_precision
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        if model.is_classifier and model.cls_only and not embeddings:
            probs = torch.softmax(cls_only_logits(model.model, ids, mask).float(), dim=-1)  # [n, c]
            hidden = None
        elif model.is_classifier:
            out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=embeddings)
            probs = torch.softmax(out.logits.float(), dim=-1)  # [n, c]
            hidden = out.hidden_states[-1] if embeddings else None
        else:
            out = model.model(input_ids=ids, attention_mask=mask)
            probs = None
            hidden = out.last_hidden_state
        pooled = mean_pool(hidden, mask) if hidden is not None and embeddings else None
    return ForwardOutput(
        probs.cpu().numpy().astype(np.float32, copy=False) if probs is not None else None,
        pooled.cpu().numpy().astype(np.float32, copy=False) if pooled is not None else None,
    )
