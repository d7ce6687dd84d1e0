"""A checkpoint's classifier as one ONNX graph, usable with onnxruntime + tokenizers alone.

The folder it writes::

    model.onnx       encoder + pooling + head in one graph; dynamic batch and sequence axes.
                     inputs  input_ids, attention_mask [, token_type_ids]  int64 [batch, sequence]
                     outputs probabilities  float32 [batch, labels]  softmax of the classifier's logits
                             embedding      float32 [batch, hidden]  mean of the last layer's token
                                            vectors, padding excluded (the scorer's embeddings)
    tokenizer.json   the checkpoint's tokenizer (Hugging Face ``tokenizers``), set to truncate at the
                     checkpoint's max_length and pad each batch to its longest text: ``encode_batch``
                     gives exactly the ids the scorer computes with
    labels.json      the label names, in the order of the probabilities' columns
    manifest.json    opset, source checkpoint, max_length, inputs and outputs, the check below

The graph is the model's own forward pass (whatever pooling its class computes), traced by torch's
TorchScript-based ONNX exporter (``dynamo=False``: it needs no onnxscript and handles BERT's masks).
Before the folder is written in full, the graph is run with onnxruntime on probe texts of several
lengths, tokenised by ``tokenizer.json``, and compared with the scorer's own fp32 forward pass on the
scorer's tokenisation: the ids must be equal, the probabilities within ``TOLERANCE``, the argmax the
same; otherwise FailedPrecondition and the caller publishes nothing.

Writes into a folder the caller owns (a staging folder it renames into place: ``lesslabels.modeling.portable``).
"""

from __future__ import annotations

import inspect
import json
import logging
import pathlib
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lesslabels.common import errors
from lesslabels.modeling import inference
from lesslabels.modeling.pooling import mean_pool, pooling_of

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

#: ONNX opset of the graph: LayerNormalization is one operator from 17 on (onnxruntime >= 1.11).
OPSET = 17
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
LABELS_FILE = "labels.json"
MANIFEST_FILE = "manifest.json"
OUTPUTS = ("probabilities", "embedding")
#: Largest difference in any probability between the graph and the torch model on the probe texts.
TOLERANCE = 1e-4
#: Texts the export is checked on: one token to past any max_length, alone and padded in a batch.
PROBE_TEXTS = (
    "show me flights from boston to denver",
    "",
    "what is the cheapest fare from dallas to san francisco on monday morning before noon, one way",
    "hi",
    "ground transportation in atlanta please " * 40,
    "Ünïcödé ☃ text, numbers 12345 and punctuation?!",
)


class _Graph(torch.nn.Module):
    """What the graph computes: the classifier's softmax and the mean-pooled last layer."""

    def __init__(self, model: torch.nn.Module, token_types: bool):
        super().__init__()
        self.model = model
        self.token_types = token_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {"token_type_ids": token_type_ids} if self.token_types else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **extra)
        probabilities = torch.softmax(out.logits.float(), dim=-1)  # [n, c]
        return probabilities, mean_pool(out.hidden_states[-1], attention_mask)  # [n, h]


def takes_token_types(model: torch.nn.Module) -> bool:
    """Whether the model's forward takes ``token_type_ids`` (BERT does, DistilBERT does not)."""
    return "token_type_ids" in inspect.signature(model.forward).parameters


def input_names(model: torch.nn.Module) -> list[str]:
    return ["input_ids", "attention_mask", *(["token_type_ids"] if takes_token_types(model) else [])]


def portable_tokenizer(loaded: inference.InferenceModel) -> Tokenizer:
    """The checkpoint's fast tokenizer, set to truncate at ``loaded.max_length`` (on the side the
    checkpoint's tokenizer truncates) and to pad a batch to its longest text with the pad token."""
    from tokenizers import Tokenizer

    backend = getattr(loaded.tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise errors.FailedPrecondition(
            f"checkpoint {loaded.name}: its tokenizer has no tokenizer.json (a 'fast' tokenizer), which the "
            "ONNX export needs"
        )
    tokenizer = Tokenizer.from_str(backend.to_str())
    side = getattr(loaded.tokenizer, "truncation_side", "right")
    tokenizer.enable_truncation(loaded.max_length, direction="left" if side == "left" else "right")
    pad_token = getattr(loaded.tokenizer, "pad_token", None) or "[PAD]"
    tokenizer.enable_padding(pad_id=loaded.pad_token_id, pad_token=str(pad_token))
    return tokenizer


def encode_inputs(tokenizer: Tokenizer, texts, names) -> dict[str, np.ndarray]:
    """The graph's inputs for ``texts``, as the README's example builds them."""
    encodings = tokenizer.encode_batch(list(texts))
    fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    return {name: np.array([getattr(e, fields[name]) for e in encodings], dtype=np.int64) for name in names}


def export_onnx(loaded: inference.InferenceModel, folder: pathlib.Path, about: dict[str, Any]) -> dict[str, Any]:
    """Write the graph, tokenizer, labels and manifest of ``loaded`` (an fp32 classifier on the CPU)
    into ``folder``; ``about`` (source checkpoint, run...) goes into the manifest. Returns the manifest."""
    if not loaded.is_classifier:
        raise errors.FailedPrecondition(f"model {loaded.name} has no classifier head to export")
    folder.mkdir(parents=True, exist_ok=True)
    model = loaded.model.eval()
    names = input_names(model)
    tokenizer = portable_tokenizer(loaded)
    example = encode_inputs(tokenizer, PROBE_TEXTS[:2], names)  # padded: the traced graph keeps the mask
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes.update({name: {0: "batch"} for name in OUTPUTS})
    with warnings.catch_warnings():  # the exporter's notes on tracing and on itself, none about this graph
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Graph(model, "token_type_ids" in names).eval(),
            tuple(torch.from_numpy(example[name]) for name in names),
            str(folder / MODEL_FILE),
            dynamo=False,
            opset_version=OPSET,
            input_names=names,
            output_names=list(OUTPUTS),
            dynamic_axes=axes,
        )
    tokenizer.save(str(folder / TOKENIZER_FILE))
    (folder / LABELS_FILE).write_text(json.dumps(list(loaded.labels), ensure_ascii=False, indent=1) + "\n", "utf-8")
    difference = check_against_torch(loaded, folder)
    manifest = {
        "format": "onnx",
        **about,
        "opset": OPSET,
        "max_length": loaded.max_length,
        "pooling": pooling_of(model),
        "inputs": names,
        "outputs": list(OUTPUTS),
        "labels": LABELS_FILE,
        "checked": {"texts": len(PROBE_TEXTS), "max_abs_difference": difference, "tolerance": TOLERANCE},
        "torch": torch.__version__,
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", "utf-8")
    log.info("event=onnx_exported model=%s opset=%d max_abs_difference=%.2g", loaded.name, OPSET, difference)
    return manifest


def open_session(folder: pathlib.Path) -> tuple[Any, Tokenizer]:
    """An onnxruntime session (CPU) on an exported folder's graph, and the folder's tokenizer."""
    import onnxruntime
    from tokenizers import Tokenizer

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # notes about initialisers are not the user's to act on
    session = onnxruntime.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
    return session, Tokenizer.from_file(str(folder / TOKENIZER_FILE))


def predict(session: Any, tokenizer: Tokenizer, texts) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [n, c], embeddings [n, h]) of ``texts`` with onnxruntime and tokenizers only."""
    feed = encode_inputs(tokenizer, texts, [i.name for i in session.get_inputs()])
    probabilities, embeddings = session.run(list(OUTPUTS), feed)
    return probabilities, embeddings


def check_against_torch(loaded: inference.InferenceModel, folder: pathlib.Path) -> float:
    """The largest probability difference between the exported graph (its own tokenizer) and the
    scorer's fp32 forward pass (the scorer's tokenisation) on ``PROBE_TEXTS``, one at a time and in
    one padded batch. FailedPrecondition when the ids, the argmax or the probabilities disagree."""
    session, tokenizer = open_session(folder)
    ours = inference.tokenize(loaded, PROBE_TEXTS).input_ids
    for text, expected, got in zip(PROBE_TEXTS, ours, tokenizer.encode_batch(list(PROBE_TEXTS)), strict=True):
        ids = [i for i, m in zip(got.ids, got.attention_mask, strict=True) if m]
        if ids != [int(i) for i in expected]:
            raise errors.FailedPrecondition(
                f"checkpoint {loaded.name}: tokenizer.json does not reproduce the scorer's tokens for "
                f"{errors.quote(text)}: {ids[:12]}... against {[int(i) for i in expected][:12]}..."
            )
    reference = inference.forward(loaded, ours, embeddings=True, full_precision=True)
    assert reference.probabilities is not None and reference.embeddings is not None
    worst = 0.0
    for rows in [slice(i, i + 1) for i in range(len(PROBE_TEXTS))] + [slice(None)]:
        probabilities, embeddings = predict(session, tokenizer, PROBE_TEXTS[rows])
        expected = reference.probabilities[rows]
        worst = max(worst, float(np.abs(probabilities - expected).max()))
        if worst > TOLERANCE or not np.array_equal(probabilities.argmax(1), expected.argmax(1)):
            raise errors.FailedPrecondition(
                f"checkpoint {loaded.name}: the ONNX graph's probabilities differ from the model's by "
                f"{worst:.3g} (more than {TOLERANCE}) or in their argmax; nothing was exported"
            )
        if not np.allclose(embeddings, reference.embeddings[rows], atol=1e-3, rtol=1e-3):
            raise errors.FailedPrecondition(f"checkpoint {loaded.name}: the ONNX graph's embeddings differ")
    return worst
