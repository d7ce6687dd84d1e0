"""A BERT sequence classifier whose head reads the mean of the last layer's token vectors.

Self-contained on purpose (torch and transformers only, no lesslabels imports): ``save_pretrained``
copies this file into every checkpoint folder it writes, with an ``auto_map`` in ``config.json``,
so that the folder loads outside lesslabels with
``AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)`` or
``pipeline("text-classification", model=folder, trust_remote_code=True)``. Without
``trust_remote_code`` transformers refuses the folder (its ``model_type`` is not one it knows)
instead of silently reading the [CLS] position. lesslabels itself registers these classes with the
Auto classes (``lesslabels.modeling.pooling``) and never runs code from a model folder.

Sentence encoders such as all-MiniLM-L6-v2 were trained on exactly this pooling; BERT's own
classifier reads a pooler over the [CLS] position, which they never trained.
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "lesslabels-bert-mean"


class MeanPoolBertConfig(BertConfig):
    model_type = MODEL_TYPE


class MeanPoolBertForSequenceClassification(BertForSequenceClassification):
    """``BertForSequenceClassification`` with logits = classifier(dropout(masked mean of the last
    layer)). Same parameters (the pooler stays, unused), so a BERT base folder loads into it."""

    config_class = MeanPoolBertConfig

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_hidden_states=None,
        output_attentions=None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        outputs = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **kwargs,
        )
        hidden = outputs.last_hidden_state  # [n, t, h]
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], device=hidden.device)
        weights = attention_mask.unsqueeze(-1).to(torch.float32)  # [n, t, 1]
        pooled = (hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # [n, h]
        logits = self.classifier(self.dropout(pooled.to(hidden.dtype)))  # [n, c]
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
