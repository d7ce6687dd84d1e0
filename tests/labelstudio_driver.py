"""Drives a real Label Studio server through its SDK (``label-studio-sdk``), as a person labelling there
would. Run by the side environment's Python (``LESSLABELS_LABELSTUDIO_PYTHON``), never imported by tests:

    python labelstudio_driver.py URL TOKEN project CONFIG.xml TASKS.json   -> prints the project id
    python labelstudio_driver.py URL TOKEN annotate PROJECT ANSWERS.json   (sample_id -> label, null = skip)
    python labelstudio_driver.py URL TOKEN export PROJECT OUT.json         (the project's JSON export)
    python labelstudio_driver.py URL TOKEN predictions PROJECT             -> prints each task's predictions
"""

from __future__ import annotations

import json
import pathlib
import sys

from label_studio_sdk.client import LabelStudio


def main(url: str, token: str, action: str, *args: str) -> None:
    ls = LabelStudio(base_url=url, api_key=token, timeout=60)
    if action == "project":
        config, tasks = pathlib.Path(args[0]).read_text(), json.loads(pathlib.Path(args[1]).read_text())
        project = ls.projects.create(title="lesslabels batch", label_config=config)
        ls.projects.import_tasks(id=project.id, request=tasks)
        print(project.id)
    elif action == "annotate":
        project, answers = int(args[0]), json.loads(pathlib.Path(args[1]).read_text())
        for task in ls.tasks.list(project=project):
            sample = str(task.data["sample_id"])
            if sample not in answers:
                continue
            label = answers[sample]
            result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
            ls.annotations.create(id=task.id, result=[] if label is None else result, was_cancelled=label is None)
    elif action == "export":
        data = b"".join(ls.projects.exports.download_sync(int(args[0]), export_type="JSON", download_all_tasks=True))
        pathlib.Path(args[1]).write_bytes(data)
    elif action == "predictions":
        found = {}
        for task in ls.tasks.list(project=int(args[0]), fields="all"):
            found[task.data["sample_id"]] = [
                {"model_version": p.model_version, "score": p.score, "result": p.result}
                for p in ls.predictions.list(task=task.id)
            ]
        print(json.dumps(found))
    else:
        raise SystemExit(f"unknown action {action!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
