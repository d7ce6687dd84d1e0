"""``lesslabels run | status | runs | cancel | resume | label``: runs from the command line."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import pathlib
import sys
import uuid
from collections.abc import Mapping

from lesslabels.common import spreadsheet
from lesslabels.cli.client import Client
from lesslabels.cli.common import ArgumentParser, CliError, add_client_flags, command, tls_of
from lesslabels.cli.live import describe_run, follow_run, progress_enabled, waiting_hint
from lesslabels.cli.report import COLUMNS, format_table, row_cells, rows_from_rounds
from lesslabels.cli.runconfig import (
    FINAL_STATES,
    STATE_NAMES,
    STEP_NAMES,
    WAITING,
    add_run_flags,
    run_config_from_args,
    training_plan,
    strategy_label,
)
from lesslabels.client import FastHead, LessLabelsError, Run, ScorerClient, batch_model, suggest


def parse_run_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CliError(f"run id {text!r} is not a number", exit_code=2) from None
    if value <= 0:
        raise CliError(f"run id {text}: must be positive", exit_code=2)
    return value


def _progress_flag(parser) -> None:
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=None,
        help="no progress bars (they are off anyway when stderr is not a terminal)",
    )


def _finish(run: Run) -> int:
    print(describe_run(run))
    if run.state == WAITING:
        print(waiting_hint(run))
    return 1 if run.state == "FAILED" else 0


@command
def run_main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="lesslabels run", description="Start an active-learning run.")
    add_run_flags(parser)
    parser.add_argument("--watch", action="store_true", help="follow the run live until it ends")
    parser.add_argument(
        "--request-id",
        default="",
        help="idempotency key (at most 128 characters): repeating it returns the same run, "
        "also after a coordinator restart",
    )
    _progress_flag(parser)
    add_client_flags(parser, "coordinator")
    args = parser.parse_args(argv)
    config = run_config_from_args(args)
    with Client.from_args(args) as client:
        run = client.start_run(config, request_id=args.request_id or uuid.uuid4().hex)
        print(f"started run {run.id}")
        print(training_plan(config))
        if not args.watch:
            print(describe_run(run))
            print(f"follow it with 'lesslabels status {run.id} --watch'")
            return 0
        run = follow_run(client, run.id, progress=progress_enabled(args.progress))
    return _finish(run)


def rounds_text(detail) -> str:
    rows = rows_from_rounds(detail.rounds, detail.run.pool_size)
    return format_table(COLUMNS, [row_cells(r) for r in rows]) if rows else "(no evaluated rounds yet)"


@command
def status_main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="lesslabels status", description="Show a run and its rounds, live if it is active.")
    parser.add_argument("run", help="run id")
    parser.add_argument(
        "--watch",
        action="store_true",
        default=None,
        help="follow until the run ends [when the run is active and stdout is a terminal]",
    )
    parser.add_argument("--no-watch", dest="watch", action="store_false", help="print once")
    _progress_flag(parser)
    add_client_flags(parser, "coordinator")
    args = parser.parse_args(argv)
    run_id = parse_run_id(args.run)
    with Client.from_args(args) as client:
        detail = client.get_run(run_id)
        active = detail.run.state not in FINAL_STATES and detail.run.state != WAITING
        watch = args.watch if args.watch is not None else (active and sys.stdout.isatty())
        if not (watch and active):
            print(describe_run(detail.run))
            if active and detail.message:
                print(f"  now: {detail.message}")
            print(rounds_text(detail))
            if detail.run.state == WAITING:
                print(waiting_hint(detail.run))
            return 0
        print(describe_run(detail.run))
        run = follow_run(client, run_id, progress=progress_enabled(args.progress))
    return _finish(run)


@command
def runs_main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="lesslabels runs", description="List runs.")
    parser.add_argument("--dataset", default="", help="only runs on this dataset")
    parser.add_argument(
        "--state",
        action="append",
        default=[],
        choices=sorted(n.replace(" ", "-") for n in STATE_NAMES.values()),
        help="only runs in this state (repeat)",
    )
    add_client_flags(parser, "coordinator")
    args = parser.parse_args(argv)
    by_name = {name.replace(" ", "-"): state for state, name in STATE_NAMES.items()}
    with Client.from_args(args) as client:
        runs = client.list_runs(args.dataset, [by_name[s] for s in args.state])
    if not runs:
        print("no runs")
        return 0
    rows = [
        [
            str(r.id),
            r.config.name or "-",
            r.config.dataset,
            strategy_label(r.config.strategy),
            STATE_NAMES.get(r.state, "?"),
            STEP_NAMES.get(r.step, "?"),
            str(r.round),
            f"{r.labelled_count}" + (f"/{r.pool_size}" if r.pool_size else ""),
            r.updated_at or "-",
        ]
        for r in sorted(runs, key=lambda r: r.id)
    ]
    print(format_table(["id", "name", "dataset", "strategy", "state", "step", "round", "labels", "updated"], rows))
    return 0


@command
def cancel_main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="lesslabels cancel", description="Cancel a run.")
    parser.add_argument("run", help="run id")
    add_client_flags(parser, "coordinator")
    args = parser.parse_args(argv)
    run_id = parse_run_id(args.run)
    with Client.from_args(args) as client:
        before = client.get_run(run_id).run
        run = client.cancel_run(run_id)
    if run.state == "COMPLETED":
        # Nothing was cancelled: a script must not read this as a cancelled run (exit 1, as for a refusal).
        reason = f" ({run.stop_reason})" if run.stop_reason else ""
        raise CliError(f"run {run_id} already completed{reason}: nothing to cancel")
    if before.state == "CANCELLED":
        print(f"run {run_id} was already cancelled; nothing changed")
    print(describe_run(run))
    return 0


@command
def resume_main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="lesslabels resume", description="Resume a failed or interrupted run.")
    parser.add_argument("run", help="run id")
    parser.add_argument("--watch", action="store_true", help="follow the run live until it ends")
    _progress_flag(parser)
    add_client_flags(parser, "coordinator")
    args = parser.parse_args(argv)
    with Client.from_args(args) as client:
        run = client.resume_run(parse_run_id(args.run))
        print(f"resumed run {run.id}")
        if not args.watch:
            print(describe_run(run))
            return 0
        run = follow_run(client, run.id, progress=progress_enabled(args.progress))
    return _finish(run)


# --------------------------------------------------------------------------- labels


def _format_for(path: pathlib.Path, given: str) -> str:
    if given != "auto":
        return given
    return "jsonl" if path.suffix.lower() in {".jsonl", ".json", ".ndjson"} else "csv"


#: Columns of `lesslabels label export` (CSV header; the keys of each JSONL object).
EXPORT_COLUMNS = (
    "sample_id",
    "label",
    "text",
    "predicted_label",
    "probability",
    "uncertainty",
    "model",
    "annotator",
    "labelled_at",
    "label_source",
)


def export_records(pending, suggestions, model: str, provenance: Mapping | None = None) -> list[dict]:
    """One record per pending text: ``label`` to fill in (or as already given), the model's
    suggestion and its probability ("" before the run has a model), ``uncertainty``, the
    acquisition score that selected the text (higher = more uncertain under the run's strategy),
    and for a text already labelled who gave the label, when and how (``label_provenance``)."""
    records = []
    for s in pending.samples:
        suggestion = suggestions.get(s.sample_id)
        given = (provenance or {}).get(s.sample_id) if s.label else None
        records.append(
            {
                "sample_id": s.sample_id,
                "label": s.label,
                "text": s.text,
                "predicted_label": suggestion.predicted if suggestion else "",
                "probability": round(suggestion.probability, 6) if suggestion else None,
                "uncertainty": round(s.score, 6),
                "model": model if suggestion else "",
                "annotator": given.annotator if given else "",
                "labelled_at": given.labelled_at if given else "",
                "label_source": given.label_source if given else "",
            }
        )
    return records


def label_provenance(client: Client, pending) -> dict:
    """The pool's record of each label already given in the batch (sample id -> ``Sample`` with its
    annotator, time and source, in the run's scope); ``{}`` with a warning on stderr when the pool
    cannot say (the export goes on without them)."""
    labelled = [s.sample_id for s in pending.samples if s.label]
    if not labelled:
        return {}
    try:
        dataset = client.get_run(pending.run_id).run.config.dataset
        found = client.labelled_samples(dataset, pending.run_id, labelled)
    except CliError as exc:
        print(f"warning: no annotator, time or source for the labelled texts in the export ({exc})", file=sys.stderr)
        return {}
    return {s.id: s for s in found}


def pending_to_csv(records: list[dict]) -> str:
    out = io.StringIO()
    writer = spreadsheet.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in records)
    return out.getvalue()


def pending_to_jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def batch_suggestions(client: Client, args, pending) -> tuple[dict, str]:
    """The model's suggestions for the batch, from the scorer; ``({}, "")`` with a warning on
    stderr when there is no model yet or the scorer cannot be reached (the export goes on)."""
    try:
        detail = client.get_run(pending.run_id)
        config, head = detail.run.config, None
        if config.is_asynchronous:  # the newest model: the fast head, refit on every label so far
            model = f"fast head at {detail.run.labelled_count} labels" if detail.run.labelled_count else ""
            head = FastHead(pending.run_id, dataset=config.dataset, base_model=config.base_model)
        else:
            model = batch_model(detail.rounds, pending.round)
        if not model:
            return {}, ""
        with ScorerClient(
            args.scorer_address, token=args.token, timeout=max(args.timeout, 120.0), tls=tls_of(args)
        ) as scorer:
            return suggest(scorer, pending, model, fast_head=head), model
    except (LessLabelsError, CliError) as exc:
        print(f"warning: no model suggestions in the export ({exc})", file=sys.stderr)
        return {}, ""


def read_label_file(path: pathlib.Path, fmt: str) -> list[tuple[int, str]]:
    """(sample id, label) pairs of the rows that carry a label; rows with an empty label are skipped."""
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: cannot read it ({exc})") from None
    records: list[tuple[int, dict]] = []
    if fmt == "jsonl":
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CliError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise CliError(f"{path}:{lineno}: expected a JSON object with sample_id and label")
            records.append((lineno, obj))
    else:
        reader = csv.DictReader(io.StringIO(text))
        fields = set(reader.fieldnames or [])
        if not {"sample_id", "label"} <= fields:
            raise CliError(
                f"{path}: the CSV header must name 'sample_id' and 'label' columns "
                f"(found {sorted(fields) or 'no header'}); 'lesslabels label export' writes one"
            )
        records = [(lineno, row) for lineno, row in enumerate(reader, start=2)]
    pairs: dict[int, str] = {}
    for lineno, rec in records:
        label = str(rec.get("label") or "").strip()
        if fmt != "jsonl":
            label = spreadsheet.from_cell(label)
        if not label:
            continue
        try:
            sample_id = int(str(rec.get("sample_id", "")).strip())
        except ValueError:
            raise CliError(f"{path}:{lineno}: sample_id {rec.get('sample_id')!r} is not a number") from None
        if pairs.get(sample_id, label) != label:
            raise CliError(
                f"{path}:{lineno}: sample {sample_id} has two different labels ({pairs[sample_id]!r} and {label!r})"
            )
        pairs[sample_id] = label
    return sorted(pairs.items())


def check_labels(pairs: list[tuple[int, str]], pending, path: pathlib.Path, *, relabel: bool = False) -> None:
    """Every label must be in the run's label set, and must not contradict a label already given
    to a text of the batch unless ``relabel``: a file is often an older copy, or one of two people's,
    and silently replacing a label someone gave is how two annotators overwrite each other. Samples
    outside the pending batch go to the coordinator, which takes them as repeats of labels already
    recorded (a repeated or late import) and refuses anything else. Refused: the whole file."""
    given = {s.sample_id: s.label for s in pending.samples if s.label}
    contradicting = [(sid, given[sid], label) for sid, label in pairs if given.get(sid, label) != label]
    if contradicting and not relabel:
        shown = "; ".join(f"sample {sid}: {old!r} given, {new!r} in the file" for sid, old, new in contradicting[:5])
        more = f" (and {len(contradicting) - 5} more)" if len(contradicting) > 5 else ""
        raise CliError(
            f"{path}: {len(contradicting)} label(s) contradict labels already given ({shown}{more}); "
            "nothing was recorded. Correct the file, or pass --relabel to replace those labels"
        )
    allowed = set(pending.labels)
    if allowed:
        unknown_labels = sorted({label for _, label in pairs if label not in allowed})
        if unknown_labels:
            raise CliError(
                f"{path}: unknown label(s) {', '.join(map(repr, unknown_labels))}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )


RELABEL_HELP = (
    "replace labels already given to texts of the batch (each replacement is kept as a new label event; "
    "the latest is in force) [refuse the file]"
)


def import_key(run_id: int, pairs: list[tuple[int, str]]) -> str:
    """The same labels for the same run give the same key, so a repeated import changes nothing."""
    digest = hashlib.sha256(f"run={run_id}\n".encode())
    for sid, label in pairs:
        digest.update(f"{sid}\t{label}\n".encode())
    return f"label-import-{digest.hexdigest()[:32]}"


@command
def label_main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="lesslabels label", description="Export a run's pending batch, import its labels.")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=ArgumentParser)
    for action, helptext in (
        ("export", "write the pending batch to FILE (CSV or JSONL)"),
        ("import", "read labels from FILE (columns sample_id and label)"),
    ):
        p = sub.add_parser(action, help=helptext)
        p.add_argument("run", help="run id")
        p.add_argument("file", help="path; .jsonl means JSON lines, anything else CSV")
        p.add_argument("--format", choices=["auto", "csv", "jsonl"], default="auto")
        if action == "import":
            p.add_argument("--annotator", default="", help="who labelled")
            p.add_argument("--relabel", action="store_true", help=RELABEL_HELP)
            add_client_flags(p, "coordinator")
        else:
            p.add_argument(
                "--annotator",
                default="",
                help="who will label the file: an asynchronous run leases the texts written to them (10 minutes), "
                "so nobody else gets them",
            )
            add_client_flags(p, "coordinator", "scorer", "pool")
    args = parser.parse_args(argv)
    run_id = parse_run_id(args.run)
    path = pathlib.Path(args.file)
    fmt = _format_for(path, args.format)
    with Client.from_args(args) as client:
        if args.action == "export":
            pending = client.pending_labels(run_id, args.annotator)
            suggestions, model = batch_suggestions(client, args, pending)
            records = export_records(pending, suggestions, model, label_provenance(client, pending))
            body = pending_to_jsonl(records) if fmt == "jsonl" else pending_to_csv(records)
            try:
                path.write_text(body, encoding="utf-8")
            except OSError as exc:
                raise CliError(f"{path}: cannot write it ({exc})") from None
            print(
                f"wrote {len(pending.samples)} samples of round {pending.round} to {path} "
                f"({pending.remaining} still unlabelled)"
            )
            print(f"labels: {', '.join(pending.labels)}")
            print(f"suggestions from model {model}" if suggestions else "no model suggestions (no model yet)")
            return 0
        pairs = read_label_file(path, fmt)
        if not pairs:
            raise CliError(f"{path}: no row has a label")
        pending = client.pending_labels(run_id, args.annotator)
        check_labels(pairs, pending, path, relabel=args.relabel)
        reply = client.submit_labels(run_id, pairs, idempotency_key=import_key(run_id, pairs), annotator=args.annotator)
    r = reply.result
    print(
        f"run {run_id}: {r.recorded} labels recorded, {r.unchanged} unchanged (already labelled), "
        f"{r.changed} changed; {reply.remaining} of the batch still unlabelled"
    )
    return 0
