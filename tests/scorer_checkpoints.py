"""A tiny published checkpoint for scorer tests (the scorer's and the Open Inference Protocol's)."""

from __future__ import annotations

from lesslabels.common.checkpoints import CheckpointStore

LABELS = ["a", "b", "c"]
RUN_ID = 7
TEXTS = [
    "show me flights from boston to denver",
    "what is the cheapest fare",
    "",
    "ground transportation in atlanta please",
    "which airlines fly to dallas on monday morning before noon",
    "abbreviation ap57",
    "hello",
]


def publish_tiny_checkpoint(
    store: CheckpointStore,
    tiny_bert_dir,
    *,
    run_id: int = RUN_ID,
    labels=LABELS,
    max_length: int = 16,
    seed: int = 0,
    manifest_extra: dict | None = None,
    pooling: str = "cls",
) -> str:
    """Publish the tiny BERT with a random classification head, as the trainer would: BERT's own
    classifier ([CLS] pooling), or with ``pooling="mean"`` the mean-pooled class the trainer uses by
    default (its folder carries that class's code, as the trainer's do)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from lesslabels.modeling import models
    from lesslabels.modeling.pooling import classifier_class, mean_pool

    torch.manual_seed(seed)
    head = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {x: i for i, x in enumerate(labels)},
    }
    model_class, config = classifier_class(AutoConfig.from_pretrained(tiny_bert_dir), pooling)
    if model_class is None:
        model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, **head)
    else:
        config.update(head)
        model = model_class.from_pretrained(tiny_bert_dir, config=config)
    # A random BERT maps every text to almost the same pooled vector; centre and scale the head on
    # a few texts so that different texts get visibly different probability rows.
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    with torch.no_grad():
        enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
        out = model.eval().bert(**enc)
        pooled = out.pooler_output if model_class is None else mean_pool(out.last_hidden_state, enc["attention_mask"])
        spread = (pooled - pooled.mean(0)).std()
        weight = torch.randn(len(labels), pooled.shape[1]) / (spread * pooled.shape[1] ** 0.5)
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(-weight @ pooled.mean(0))
    manifest = {
        "run_id": run_id,
        "labels": list(labels),
        "base_model": str(tiny_bert_dir),
        "hyperparameters": {"max_length": max_length},
        "dataset": "toy",
        **(manifest_extra or {}),
    }
    with store.publish(manifest) as folder:
        models.save_classifier(model, tokenizer, folder)
    return manifest["id"]
