"""``lesslabels report RUN`` and ``lesslabels compare``: tables, CSV/JSON and learning-curve plots."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import uuid

from lesslabels.cli import comparison, curves, plots, report
from lesslabels.cli.client import Client
from lesslabels.cli.common import ArgumentParser, CliError, add_client_flags, command
from lesslabels.cli.live import describe_run, progress_enabled
from lesslabels.cli.runconfig import (
    FINAL_STATES,
    STATE_NAMES,
    STRATEGIES,
    WAITING,
    add_run_flags,
    run_config_from_args,
    strategy_label,
)
from lesslabels.cli.runs import parse_run_id
from lesslabels.client import RunDetail


def _write(path: str, text: str) -> None:
    try:
        pathlib.Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{path}: cannot write it ({exc})") from None


def _unit(value: float | None, flag: str) -> float | None:
    if value is not None and not 0.0 < value <= 1.0:
        raise CliError(f"{flag} {value}: must be in (0, 1] (an accuracy, e.g. 0.95)", exit_code=2)
    return value


def report_rows(detail) -> list[report.RoundRow]:
    return report.rows_from_rounds(detail.rounds, detail.run.pool_size)


@command
def report_main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="lesslabels report",
        description="A run's rounds: labels used, %% of pool, accuracy, macro-F1; CSV, JSON, PNG.",
    )
    parser.add_argument("run", help="run id")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table", help="what to print")
    parser.add_argument("--csv", metavar="FILE", help="also write the rows as CSV")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        nargs="?",
        const="",
        default=None,
        help="also write the learning curve as a PNG [FILE: lesslabels-run-RUN.png]; none without --plot",
    )
    parser.add_argument("--no-plot", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    parser.add_argument("--reference", type=float, default=None, help="draw this accuracy (e.g. full data) as a line")
    add_client_flags(parser, "coordinator")
    args = parser.parse_args(argv)
    run_id = parse_run_id(args.run)
    reference = _unit(args.reference, "--reference")
    with Client.from_args(args) as client:
        detail = client.get_run(run_id)
    rows = report_rows(detail)
    extra = {
        "run_id": run_id,
        "dataset": detail.run.config.dataset,
        "strategy": strategy_label(detail.run.config.strategy),
        "state": STATE_NAMES.get(detail.run.state, "?"),
        "pool_size": detail.run.pool_size,
    }
    if args.csv:
        _write(args.csv, report.rows_to_csv(rows))
    if args.json:
        _write(args.json, report.rows_to_json(rows, **extra))
    if args.format == "csv":
        sys.stdout.write(report.rows_to_csv(rows))
    elif args.format == "json":
        print(report.rows_to_json(rows, **extra))
    else:
        print(describe_run(detail.run))
        print(report.rounds_table(rows) if rows else "(no evaluated rounds yet)")
        print(report.kept_model_line(detail.rounds))
    if args.plot is not None and not args.no_plot and rows:
        target = args.plot or f"lesslabels-run-{run_id}.png"
        title = f"run {run_id}: {extra['dataset']}, {extra['strategy']}"
        path = plots.plot_learning_curve(rows, target, title=title, reference=reference)
        print(f"learning curve: {path.resolve()}", file=sys.stderr if args.format != "table" else sys.stdout)
    return 0


def _csv_list(text: str, flag: str, cast=str) -> list:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise CliError(f"{flag} {text!r}: expected a comma-separated list", exit_code=2) from None


def wait_for_runs(client: Client, run_ids: list[int], *, progress: bool, poll: float = 2.0) -> dict[int, RunDetail]:
    """Poll until every run is final or waits for labels; one bar counting finished runs."""
    bar = None
    if progress:
        from tqdm import tqdm

        # No ETA: runs go side by side and finish in bursts, so the rate of finished runs predicts nothing.
        bar = tqdm(
            total=len(run_ids),
            desc="runs finished",
            file=sys.stderr,
            bar_format="{desc}: {n}/{total} |{bar}| {elapsed} {postfix}",
        )
    details: dict[int, RunDetail] = {}
    try:
        while True:
            details = {rid: client.get_run(rid) for rid in run_ids}
            done = sum(d.run.state in FINAL_STATES or d.run.state == WAITING for d in details.values())
            if bar is not None:
                bar.update(done - bar.n)
                active = [f"{rid}:r{d.run.round}" for rid, d in details.items() if d.run.state not in FINAL_STATES]
                bar.set_postfix_str(" ".join(active[:6]))
            if done == len(run_ids):
                return details
            time.sleep(poll)
    finally:
        if bar is not None:
            bar.close()


def group_curves(details: dict[int, RunDetail], group_by: str) -> tuple[dict, list[str]]:
    """{group: {run_id: (labels, accuracies)}} from completed runs; notes on the runs left out."""
    groups: dict[str, dict[int, tuple[list[float], list[float]]]] = {}
    notes = []
    for rid, detail in sorted(details.items()):
        rows = report_rows(detail)
        if detail.run.state == "FAILED":
            notes.append(f"run {rid} failed ({detail.run.error}); left out")
            continue
        if not rows:
            notes.append(f"run {rid} has no evaluated round; left out")
            continue
        key = (
            (detail.run.config.name or f"run {rid}")
            if group_by == "name"
            else strategy_label(detail.run.config.strategy)
        )
        groups.setdefault(key, {})[rid] = ([r.labels for r in rows], [r.accuracy for r in rows])
    return groups, notes


def _check_shared_label_range(groups: dict[str, dict[int, tuple[list[float], list[float]]]]) -> None:
    """Curves are compared over the label counts every run reached; refuse, saying which runs
    cover which counts, when there are none."""
    spans = {rid: (min(xs), max(xs)) for runs in groups.values() for rid, (xs, _) in runs.items()}
    lo, hi = max(start for start, _ in spans.values()), min(end for _, end in spans.values())
    if hi >= lo:
        return
    late = max(spans, key=lambda rid: spans[rid][0])
    early = min(spans, key=lambda rid: spans[rid][1])
    raise CliError(
        f"these runs cannot be compared: their learning curves share no label range (run {early} was evaluated "
        f"at {spans[early][0]:.0f}..{spans[early][1]:.0f} labels, run {late} at "
        f"{spans[late][0]:.0f}..{spans[late][1]:.0f}); compare runs on the same dataset with the same seed and "
        "batch sizes, or let it finish the shorter runs first. Each run's curve: "
        + ", ".join(f"run {rid} {a:.0f}..{b:.0f}" for rid, (a, b) in sorted(spans.items()))
    )


@command
def compare_main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="lesslabels compare",
        description="Strategies x seeds on the same data: mean and spread of the learning curves, area under each, "
        "one plot. Either give finished runs (--runs) or let it start them (--dataset, --strategies, "
        "--seeds and the run flags).",
    )
    parser.add_argument("--runs", default="", help="comma-separated ids of existing runs to compare")
    parser.add_argument("--dataset", default="", help="dataset to start new runs on")
    parser.add_argument("--strategies", default="entropy,random", help="comma-separated strategies [%(default)s]")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated random seeds [%(default)s]")
    parser.add_argument("--group-by", choices=["strategy", "name"], default="strategy", help="what makes a curve")
    parser.add_argument(
        "--reference",
        type=float,
        default=None,
        help="reference accuracy (e.g. full data): plotted, and labels needed to reach "
        "reference minus --tolerance are reported",
    )
    parser.add_argument("--tolerance", type=float, default=0.005, help="[0.005 = 0.5 points]")
    parser.add_argument("--plot", metavar="FILE", default="lesslabels-compare.png", help="PNG [%(default)s]")
    parser.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    add_run_flags(parser, dataset_required=False)
    add_client_flags(parser, "coordinator")
    args = parser.parse_args(argv)
    reference = _unit(args.reference, "--reference")
    target = None if reference is None else reference - args.tolerance
    with Client.from_args(args) as client:
        if args.runs:
            if args.dataset:
                raise CliError("give either --runs or --dataset, not both", exit_code=2)
            run_ids = [parse_run_id(t) for t in _csv_list(args.runs, "--runs")]
        else:
            if not args.dataset:
                raise CliError("give --runs (existing runs) or --dataset (start new ones)", exit_code=2)
            strategies = _csv_list(args.strategies, "--strategies")
            unknown = [s for s in strategies if s not in STRATEGIES]
            if unknown or not strategies:
                raise CliError(
                    f"--strategies: unknown {', '.join(unknown) or '(none given)'}; "
                    f"choose from {', '.join(sorted(STRATEGIES))}",
                    exit_code=2,
                )
            seeds = _csv_list(args.seeds, "--seeds", int)
            if not seeds:
                raise CliError("--seeds: give at least one seed", exit_code=2)
            run_ids = []
            batch = uuid.uuid4().hex[:8]
            for strategy in strategies:
                for seed in seeds:
                    args.strategy, args.random_seed = strategy, seed
                    config = run_config_from_args(args, dataset=args.dataset)
                    run = client.start_run(config, request_id=f"compare-{batch}-{strategy}-{seed}")
                    print(f"started run {run.id}: {strategy}, seed {seed}", flush=True)
                    run_ids.append(run.id)
        details = wait_for_runs(client, run_ids, progress=progress_enabled(args.progress))
    groups, notes = group_curves(details, args.group_by)
    for note in notes:
        print(note, file=sys.stderr)
    if not groups:
        raise CliError("no run has an evaluated round to compare")
    _check_shared_label_range(groups)
    summaries = comparison.summarise_groups(groups, target=target)
    print(comparison.curves_table(summaries))
    print()
    print(comparison.summary_table(summaries, target=target))
    lo, hi = curves.common_range([c for runs in groups.values() for c in runs.values()])
    print(f"AUC: mean test accuracy over labels {lo:.0f}..{hi:.0f} (area divided by the label range)")
    if args.json:
        _write(
            args.json, comparison.summaries_to_json(summaries, auc_range=[lo, hi], reference=reference, target=target)
        )
    path = plots.plot_comparison(summaries, args.plot, reference=reference)
    print(f"plot: {path.resolve()}")
    return 0
