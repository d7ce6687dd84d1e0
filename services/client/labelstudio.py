"""Label Studio interchange: a pending batch as Label Studio tasks, a Label Studio JSON export as labels.

Pure format conversion (no I/O, no torch), shared by ``lesslabels labelstudio`` and tests.

- :func:`labelling_config`: the labelling config XML for a label set (one ``Text`` named
  ``text``, one single-choice ``Choices`` named ``label``).
- :func:`tasks_from_batch`: one task per pending text, ``data.text`` and ``data.sample_id``, with the
  model's suggestion as a prediction (pre-annotation) carrying the checkpoint as ``model_version``
  and its probability as ``score``.
- :func:`labels_from_export`: a Label Studio JSON export (the list of tasks that its "JSON" export
  and ``GET /api/projects/{id}/export?exportType=JSON`` return) read back: each task's latest
  annotation that was not cancelled (skipped) gives the label and, from ``completed_by`` (a user id,
  or an object with ``email``/``id``), the annotator.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from lesslabels.client.errors import InvalidArgument
from lesslabels.client.suggestions import Suggestion
from lesslabels.client.types import PendingLabels, Sample

#: Names of the config's control (``from_name``) and object (``to_name``) tags.
FROM_NAME = "label"
TO_NAME = "text"


def labelling_config(labels: Sequence[str]) -> str:
    """The labelling config XML for ``labels``: label names are escaped by ElementTree."""
    if not labels:
        raise InvalidArgument("the run has no label set yet: declare one with 'lesslabels dataset labels'")
    view = ET.Element("View")
    ET.SubElement(view, "Text", name=TO_NAME, value=f"${TO_NAME}")
    choices = ET.SubElement(view, "Choices", name=FROM_NAME, toName=TO_NAME, choice="single", showInLine="true")
    for label in labels:
        ET.SubElement(choices, "Choice", value=label)
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def choice_result(label: str) -> dict[str, Any]:
    """One ``choices`` region as Label Studio stores it in a prediction's or annotation's ``result``."""
    return {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}


def tasks_from_batch(
    pending: PendingLabels,
    suggestions: Mapping[int, Suggestion],
    model: str,
    provenance: Mapping[int, Sample] | None = None,
) -> list[dict[str, Any]]:
    """Label Studio tasks for the pending batch; texts already labelled carry that label as a prediction
    too only when the model suggested it (Label Studio has no "given label" field for an import). A
    text already labelled carries, in its ``data``, the label given, who gave it, when and how
    (``label``, ``annotator``, ``labelled_at``, ``label_source``: from ``provenance``, the pool's
    samples by id)."""
    tasks = []
    for sample in pending.samples:
        task: dict[str, Any] = {"id": sample.sample_id, "data": {TO_NAME: sample.text, "sample_id": sample.sample_id}}
        given = (provenance or {}).get(sample.sample_id) if sample.label else None
        if sample.label:
            task["data"]["label"] = sample.label
        if given is not None:
            task["data"].update(
                annotator=given.annotator, labelled_at=given.labelled_at, label_source=given.label_source
            )
        suggestion = suggestions.get(sample.sample_id)
        if suggestion is not None and model:
            task["predictions"] = [
                {
                    "model_version": model,
                    "score": round(suggestion.probability, 6),
                    "result": [choice_result(suggestion.predicted)],
                }
            ]
        tasks.append(task)
    return tasks


@dataclasses.dataclass(frozen=True)
class ImportedLabel:
    sample_id: int
    label: str
    annotator: str  # "" when the export names nobody
    task_id: Any = None


@dataclasses.dataclass(frozen=True)
class ExportReading:
    """What a Label Studio export holds: one label per annotated task, and what was left out."""

    labels: tuple[ImportedLabel, ...]
    cancelled: int  # annotations marked was_cancelled (skipped), ignored
    unannotated: int  # tasks with no annotation that was not cancelled, ignored
    tasks: int


def _where(index: int, task: Mapping[str, Any]) -> str:
    return f"task {task.get('id', '?')} (item {index + 1})"


def _annotator(completed_by: Any) -> str:
    # The JSON export writes the user's id; older exports and the API's annotation views write an
    # object with id and email: the email names a person better than an id.
    if isinstance(completed_by, Mapping):
        return str(completed_by.get("email") or completed_by.get("id") or "")
    if completed_by is None or isinstance(completed_by, bool):
        return ""
    return str(completed_by)


def _choice(annotation: Mapping[str, Any], where: str) -> str | None:
    """The annotation's one choice; None when its result holds no choice (an empty submission)."""
    result = annotation.get("result") or []
    if not isinstance(result, list):
        raise InvalidArgument(f"{where}: an annotation's 'result' must be a list")
    regions = [r for r in result if isinstance(r, Mapping) and r.get("type") == "choices"]
    ours = [r for r in regions if r.get("from_name") == FROM_NAME] or regions
    chosen: list[str] = []
    for region in ours:
        value = region.get("value")
        choices = value.get("choices") if isinstance(value, Mapping) else None
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise InvalidArgument(f"{where}: a 'choices' result must have value.choices, a list of label names")
        chosen += choices
    chosen = list(dict.fromkeys(c.strip() for c in chosen if c.strip()))
    if len(chosen) > 1:
        raise InvalidArgument(
            f"{where}: the annotation chooses {len(chosen)} labels ({', '.join(map(repr, chosen))}); "
            'one per text is expected (the config\'s Choices are choice="single")'
        )
    return chosen[0] if chosen else None


def _sample_id(task: Mapping[str, Any], where: str) -> int:
    data = task.get("data")
    if not isinstance(data, Mapping) or "sample_id" not in data:
        raise InvalidArgument(
            f"{where}: no data.sample_id; import only tasks that 'lesslabels labelstudio export' wrote"
        )
    raw = data["sample_id"]
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise InvalidArgument(f"{where}: data.sample_id {raw!r} is not a number")
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"{where}: data.sample_id {raw!r} is not a number") from None


def _recency(position: int, annotation: Mapping[str, Any]) -> tuple[str, int]:
    # ISO 8601 UTC timestamps as Label Studio writes them sort as text; the list order breaks ties.
    return (str(annotation.get("updated_at") or annotation.get("created_at") or ""), position)


def labels_from_export(export: Any) -> ExportReading:
    """Read a Label Studio JSON export (a list of tasks); raises InvalidArgument naming the bad task."""
    if not isinstance(export, list):
        raise InvalidArgument(
            "a Label Studio JSON export is a list of tasks; this is a "
            f"{type(export).__name__} (export the project as 'JSON', not 'JSON-MIN' or CSV)"
        )
    labels: list[ImportedLabel] = []
    by_sample: dict[int, ImportedLabel] = {}
    cancelled = unannotated = 0
    for index, task in enumerate(export):
        if not isinstance(task, Mapping):
            raise InvalidArgument(f"item {index + 1}: a task must be a JSON object")
        where = _where(index, task)
        sample_id = _sample_id(task, where)
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list) or not all(isinstance(a, Mapping) for a in annotations):
            raise InvalidArgument(f"{where}: 'annotations' must be a list of objects")
        cancelled += sum(1 for a in annotations if a.get("was_cancelled"))
        kept = [(i, a) for i, a in enumerate(annotations) if not a.get("was_cancelled")]
        choice = None
        latest: Mapping[str, Any] = {}
        for _position, annotation in sorted(kept, key=lambda pa: _recency(*pa), reverse=True):
            choice = _choice(annotation, where)
            if choice is not None:
                latest = annotation
                break
        if choice is None:
            unannotated += 1
            continue
        item = ImportedLabel(sample_id, choice, _annotator(latest.get("completed_by")), task.get("id"))
        previous = by_sample.get(sample_id)
        if previous is not None and previous.label != item.label:
            raise InvalidArgument(
                f"{where}: sample {sample_id} appears in two tasks with different labels "
                f"({previous.label!r} and {item.label!r})"
            )
        if previous is None:
            by_sample[sample_id] = item
            labels.append(item)
    return ExportReading(tuple(labels), cancelled, unannotated, len(export))
