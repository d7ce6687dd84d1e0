"""A checkpoint's classifier as a sentence-transformers folder: loads without remote code.

A lesslabels checkpoint of a mean-pooled BERT loads in transformers only with
``trust_remote_code=True`` (its model class travels as code, ``meanpool_bert.py``). This folder holds
the same computation in pieces that standard libraries know, in sentence-transformers' own layout
(the one all-MiniLM-L6-v2 ships in, read by sentence-transformers 2 to 6)::

    modules.json                       0 Transformer (this folder), 1 Pooling, 2 Dense [, 3 Dense]
    config.json, model.safetensors     the encoder as a plain ``BertModel`` (model_type "bert"):
                                       ``transformers.AutoModel.from_pretrained(folder)``
    tokenizer.json, tokenizer_config.json ...
                                       the checkpoint's tokenizer; model_max_length = its max_length
    sentence_bert_config.json          max_seq_length = the checkpoint's max_length
    config_sentence_transformers.json
    1_Pooling/config.json              mean of the token vectors, padding excluded (a [CLS]-pooled
                                       checkpoint: the [CLS] vector)
    2_Dense/config.json, model.safetensors
                                       the classifier: logits = pooled @ linear.weight.T + linear.bias
                                       (a [CLS]-pooled checkpoint: 2_Dense is BERT's pooler, Tanh, and
                                       3_Dense the classifier)
    labels.json                        the label names, in the order of the logits
    manifest.json                      source checkpoint, max_length, pooling, the check below

``SentenceTransformer(folder).encode(texts)`` gives the classifier's logits; their softmax is the
scorer's probabilities. Written by hand (a few JSON files and safetensors), so that exporting needs
no sentence-transformers; the tests load the folder with sentence-transformers itself. Before the
folder is complete it is read back with plain transformers + torch (:func:`predict`) and compared
with the scorer's fp32 forward pass on probe texts; a difference is FailedPrecondition.
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any

import numpy as np
import torch

from lesslabels.common import errors
from lesslabels.modeling import inference
from lesslabels.modeling.onnx_export import LABELS_FILE, MANIFEST_FILE, PROBE_TEXTS, TOLERANCE

log = logging.getLogger(__name__)

MODULES_FILE = "modules.json"
IDENTITY = "torch.nn.modules.linear.Identity"
TANH = "torch.nn.modules.activation.Tanh"
_ACTIVATIONS = {IDENTITY: torch.nn.Identity, TANH: torch.nn.Tanh}
#: Config keys of a classifier that a plain encoder's config does not keep.
_CLASSIFIER_KEYS = ("model_type", "architectures", "auto_map", "id2label", "label2id", "num_labels", "problem_type")


def layout_of(model: torch.nn.Module) -> tuple[str, list[tuple[torch.nn.Linear, str]]]:
    """(pooling mode, [(linear layer, activation)]) that reproduce ``model``'s logits after its
    encoder; FailedPrecondition for classifiers this layout cannot express."""
    from transformers import BertForSequenceClassification

    from lesslabels.modeling.meanpool_bert import MeanPoolBertForSequenceClassification

    if isinstance(model, MeanPoolBertForSequenceClassification):
        return "mean", [(model.classifier, IDENTITY)]
    if type(model) is BertForSequenceClassification and model.bert.pooler is not None:
        return "cls", [(model.bert.pooler.dense, TANH), (model.classifier, IDENTITY)]
    raise errors.FailedPrecondition(
        f"the sentence-transformers format covers BERT classifiers (mean or [CLS] pooling), not "
        f"{type(model).__name__} (model_type {getattr(model.config, 'model_type', '?')!r}): use --format onnx"
    )


def _write_json(path: pathlib.Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _save_encoder(model: Any, labels: list[str], folder: pathlib.Path) -> None:
    """The classifier's encoder as a plain ``BertModel`` folder (config.json, model.safetensors)."""
    from transformers import BertConfig, BertModel

    bert = model.bert  # a BertModel (layout_of checked the class)
    fields = {k: v for k, v in model.config.to_dict().items() if k not in _CLASSIFIER_KEYS}
    config = BertConfig(**fields, id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)})
    config.architectures = ["BertModel"]
    encoder = BertModel(config, add_pooling_layer=bert.pooler is not None)
    encoder.load_state_dict(bert.state_dict())
    encoder.save_pretrained(folder, safe_serialization=True)


def _save_tokenizer(loaded: inference.InferenceModel, folder: pathlib.Path) -> None:
    loaded.tokenizer.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["model_max_length"] = loaded.max_length  # truncation=True cuts where the scorer does
    _write_json(config_path, config)


def _save_dense(linear: torch.nn.Linear, activation: str, folder: pathlib.Path) -> None:
    from safetensors.torch import save_file

    _write_json(
        folder / "config.json",
        {
            "in_features": linear.in_features,
            "out_features": linear.out_features,
            "bias": linear.bias is not None,
            "activation_function": activation,
        },
    )
    weights = {"linear.weight": linear.weight.detach().float().contiguous()}
    if linear.bias is not None:
        weights["linear.bias"] = linear.bias.detach().float().contiguous()
    save_file(weights, str(folder / "model.safetensors"))


def export_sentence_transformers(
    loaded: inference.InferenceModel, folder: pathlib.Path, about: dict[str, Any]
) -> dict[str, Any]:
    """Write ``loaded`` (an fp32 classifier on the CPU) as a sentence-transformers folder into
    ``folder``; ``about`` goes into the manifest. Returns the manifest."""
    import transformers

    if not loaded.is_classifier:
        raise errors.FailedPrecondition(f"model {loaded.name} has no classifier head to export")
    model = loaded.model.eval()
    mode, denses = layout_of(model)
    folder.mkdir(parents=True, exist_ok=True)
    _save_encoder(model, loaded.labels, folder)
    _save_tokenizer(loaded, folder)
    hidden = int(model.config.hidden_size)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    modules.append({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"})
    _write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": mode == "cls",
            "pooling_mode_mean_tokens": mode == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    for idx, (linear, activation) in enumerate(denses, start=2):
        path = f"{idx}_Dense"
        _save_dense(linear, activation, folder / path)
        modules.append({"idx": idx, "name": str(idx), "path": path, "type": "sentence_transformers.models.Dense"})
    _write_json(folder / MODULES_FILE, modules)
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": loaded.max_length, "do_lower_case": False})
    _write_json(
        folder / "config_sentence_transformers.json",
        {"__version__": {"transformers": transformers.__version__, "pytorch": torch.__version__}, "prompts": {}},
    )
    _write_json(folder / LABELS_FILE, list(loaded.labels))
    difference = check_against_torch(loaded, folder)
    manifest = {
        "format": "sentence-transformers",
        **about,
        "max_length": loaded.max_length,
        "pooling": mode,
        "output": "logits (softmax gives the probabilities)",
        "labels": LABELS_FILE,
        "checked": {"texts": len(PROBE_TEXTS), "max_abs_difference": difference, "tolerance": TOLERANCE},
    }
    _write_json(folder / MANIFEST_FILE, manifest)
    log.info("event=sentence_transformers_exported model=%s pooling=%s", loaded.name, mode)
    return manifest


def predict(folder: pathlib.Path, texts) -> np.ndarray:
    """Probabilities ``[n, c]`` of ``texts`` from a folder this module wrote, read with plain
    transformers + torch (no sentence-transformers, no code from the folder)."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    encoder = AutoModel.from_pretrained(folder, local_files_only=True, trust_remote_code=False).eval()
    modules = json.loads((folder / MODULES_FILE).read_text(encoding="utf-8"))
    batch = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = encoder(**batch).last_hidden_state  # [n, t, h]
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
        if pooling["pooling_mode_cls_token"]:
            features = hidden[:, 0]  # [n, h]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).float()  # [n, t, 1]
            features = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # [n, h]
        for module in modules[2:]:
            config = json.loads((folder / module["path"] / "config.json").read_text(encoding="utf-8"))
            weights = load_file(str(folder / module["path"] / "model.safetensors"))
            features = features @ weights["linear.weight"].T + weights.get("linear.bias", 0.0)
            features = _ACTIVATIONS[config["activation_function"]]()(features)
        return torch.softmax(features, dim=-1).numpy()  # [n, c]


def check_against_torch(loaded: inference.InferenceModel, folder: pathlib.Path) -> float:
    """The largest probability difference between the folder read back with plain transformers
    (:func:`predict`) and the scorer's fp32 forward pass on ``PROBE_TEXTS``; FailedPrecondition when
    it passes ``TOLERANCE`` or an argmax differs."""
    reference = inference.forward(loaded, inference.tokenize(loaded, PROBE_TEXTS).input_ids, full_precision=True)
    assert reference.probabilities is not None
    got = predict(folder, PROBE_TEXTS)
    worst = float(np.abs(got - reference.probabilities).max())
    if worst > TOLERANCE or not np.array_equal(got.argmax(1), reference.probabilities.argmax(1)):
        raise errors.FailedPrecondition(
            f"checkpoint {loaded.name}: the sentence-transformers folder's probabilities differ from the "
            f"model's by {worst:.3g} (more than {TOLERANCE}) or in their argmax; nothing was exported"
        )
    return worst
