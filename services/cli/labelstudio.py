"""``lesslabels labelstudio export | import`` and ``lesslabels export-hf``: data to and from other tools."""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections import defaultdict

from lesslabels.cli.client import Client
from lesslabels.cli.common import ArgumentParser, CliError, add_client_flags, command
from lesslabels.cli.runs import RELABEL_HELP, batch_suggestions, check_labels, label_provenance, parse_run_id
from lesslabels.client import LessLabelsError, PoolClient, hfexport
from lesslabels.client.labelstudio import labelling_config, labels_from_export, tasks_from_batch


def default_config_path(tasks: pathlib.Path) -> pathlib.Path:
    return tasks.with_name(tasks.stem + ".config.xml")


def _write(path: pathlib.Path, body: str | bytes) -> None:
    try:
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{path}: cannot write it ({exc})") from None


def read_export(path: pathlib.Path):
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); export the project as 'JSON'") from None
    try:
        return labels_from_export(data)
    except LessLabelsError as exc:
        raise CliError(f"{path}: {exc}") from None


def import_key(run_id: int, annotator: str, pairs: list[tuple[int, str]]) -> str:
    """The same labels by the same annotator for the same run give the same key: a repeat records nothing."""
    digest = hashlib.sha256(f"run={run_id}\nannotator={annotator}\n".encode())
    for sid, label in pairs:
        digest.update(f"{sid}\t{label}\n".encode())
    return f"labelstudio-import-{digest.hexdigest()[:32]}"


def _export(client: Client, args, run_id: int) -> int:
    path = pathlib.Path(args.file)
    config_path = pathlib.Path(args.config) if args.config else default_config_path(path)
    pending = client.pending_labels(run_id)
    try:
        config = labelling_config(pending.labels)
    except LessLabelsError as exc:
        raise CliError(str(exc)) from None
    suggestions, model = batch_suggestions(client, args, pending)
    tasks = tasks_from_batch(pending, suggestions, model, label_provenance(client, pending))
    _write(path, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
    _write(config_path, config)
    print(f"wrote {len(tasks)} Label Studio tasks of run {run_id}, round {pending.round}, to {path}")
    print(f"wrote the labelling config ({len(pending.labels)} labels) to {config_path}")
    print(f"pre-annotations from model {model}" if suggestions else "no pre-annotations (no model yet)")
    return 0


def _import(client: Client, args, run_id: int) -> int:
    path = pathlib.Path(args.file)
    reading = read_export(path)
    ignored = f"{reading.cancelled} cancelled/skipped annotations and {reading.unannotated} unannotated tasks ignored"
    if not reading.labels:
        raise CliError(f"{path}: no task of the {reading.tasks} has an annotation with a label ({ignored})")
    pending = client.pending_labels(run_id)
    check_labels([(item.sample_id, item.label) for item in reading.labels], pending, path, relabel=args.relabel)
    by_annotator: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for item in reading.labels:
        by_annotator[item.annotator or args.annotator].append((item.sample_id, item.label))
    recorded = unchanged = changed = 0
    remaining = pending.remaining
    for annotator, pairs in sorted(by_annotator.items()):
        pairs.sort()
        reply = client.submit_labels(
            run_id, pairs, idempotency_key=import_key(run_id, annotator, pairs), annotator=annotator
        )
        recorded += reply.result.recorded
        unchanged += reply.result.unchanged
        changed += reply.result.changed
        remaining = reply.remaining
    print(
        f"run {run_id}: {recorded} labels recorded, {unchanged} unchanged, {changed} changed "
        f"from {len(by_annotator)} annotator(s); {ignored}; {remaining} of the batch still unlabelled"
    )
    return 0


@command
def labelstudio_main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="lesslabels labelstudio",
        description="Label a run's pending batch in Label Studio: export tasks, import labels.",
    )
    sub = parser.add_subparsers(dest="action", required=True, parser_class=ArgumentParser)
    export = sub.add_parser("export", help="the pending batch as Label Studio tasks (JSON) and its labelling config")
    export.add_argument("run", help="run id")
    export.add_argument("file", help="tasks JSON to write")
    export.add_argument("--config", default="", help="labelling config XML to write [FILE's stem + .config.xml]")
    add_client_flags(export, "coordinator", "scorer", "pool")
    imp = sub.add_parser("import", help="labels from a Label Studio JSON export")
    imp.add_argument("run", help="run id")
    imp.add_argument("file", help="the project's JSON export")
    imp.add_argument("--annotator", default="", help="annotator for annotations whose completed_by is empty")
    imp.add_argument("--relabel", action="store_true", help=RELABEL_HELP)
    add_client_flags(imp, "coordinator")
    args = parser.parse_args(argv)
    run_id = parse_run_id(args.run)
    with Client.from_args(args) as client:
        return _export(client, args, run_id) if args.action == "export" else _import(client, args, run_id)


@command
def export_hf_main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="lesslabels export-hf",
        description="Export a dataset's labelled set for Hugging Face datasets: text and label (an index "
        "into the label names, written beside FILE as FILE's stem + .labels.json).",
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--run", type=int, default=0, help="labels acquired by this run [the dataset's own labels]")
    parser.add_argument("--output", "-o", required=True, help="file to write (.jsonl, .csv or .parquet)")
    parser.add_argument("--format", choices=["auto", *hfexport.FORMATS], default="auto", help="[from the suffix]")
    add_client_flags(parser, "pool")
    args = parser.parse_args(argv)
    path = pathlib.Path(args.output)
    by_suffix = {".csv": "csv", ".parquet": "parquet"}
    fmt = args.format if args.format != "auto" else by_suffix.get(path.suffix.lower(), "jsonl")
    with PoolClient(args.pool_address, token=args.token, timeout=args.timeout) as pool:
        try:
            dataset = pool.get_dataset(args.dataset)
            samples = pool.list_samples(args.dataset, state="labelled", run_id=args.run)
            names = hfexport.label_names(dataset.labels, samples)
            rows = hfexport.hf_rows(samples, names)
        except LessLabelsError as exc:
            raise CliError(f"dataset {args.dataset!r}: {getattr(exc, 'details', None) or exc}") from None
    names_path = path.with_name(path.stem + ".labels.json")
    try:
        body = hfexport.encode(rows, fmt, names)
    except ImportError as exc:
        raise CliError(str(exc)) from None
    _write(path, body)
    _write(names_path, hfexport.names_document(names))
    print(f"wrote {len(rows)} labelled texts to {path} and the {len(names)} label names to {names_path}")
    return 0
