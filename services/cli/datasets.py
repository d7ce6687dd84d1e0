"""``lesslabels datasets`` and ``lesslabels dataset show|delete|labels``: the pool's datasets."""

from __future__ import annotations

from lesslabels.cli.common import ArgumentParser, CliError, command, sdk_error_message, tls_of
from lesslabels.client import LessLabelsError, PoolClient
from lesslabels.common.config import add_client_tls_flags, add_flag
from lesslabels.v1 import pool_pb2


def _flags(parser: ArgumentParser) -> None:
    add_flag(parser, "--pool-address", default="127.0.0.1:50051", help="pool service HOST:PORT")
    add_flag(parser, "--token", default="", help="bearer token of the services")
    add_flag(parser, "--timeout", default=30.0, type=float, help="deadline of each call, in seconds")
    add_client_tls_flags(parser)


def _call(args, method: str, request):
    """One pool RPC through the SDK's client (these dataset RPCs have no typed SDK method yet)."""
    try:
        with PoolClient(args.pool_address, token=args.token, timeout=args.timeout, tls=tls_of(args)) as pool:
            return pool.call(method, request)
    except LessLabelsError as exc:
        raise CliError(sdk_error_message(exc, "pool", args.pool_address)) from None


@command
def datasets_main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="lesslabels datasets", description="List the pool's datasets.")
    _flags(parser)
    args = parser.parse_args(argv)
    datasets = _call(args, "ListDatasets", pool_pb2.ListDatasetsRequest()).datasets
    if not datasets:
        print("no datasets (lesslabels import FILE --dataset NAME creates one)")
        return 0
    width = max(7, *(len(d.name) for d in datasets))
    print(f"{'dataset':<{width}}  {'train':>7}  {'test':>6}  {'dev':>6}  {'labelled':>8}  labels")
    for d in datasets:
        print(
            f"{d.name:<{width}}  {d.train_count:>7}  {d.test_count:>6}  {d.dev_count:>6}  {d.labelled_count:>8}  "
            f"{len(d.labels)}"
        )
    return 0


def format_dataset(dataset: pool_pb2.Dataset, counts: pool_pb2.Counts) -> str:
    lines = [f"dataset {dataset.name}" + (f": {dataset.description}" if dataset.description else "")]
    lines.append(f"label set: {', '.join(dataset.labels) or '(none yet)'}")
    splits = [("train", counts.train), ("test", counts.test), ("dev", counts.dev)]
    lines.append("split   samples  labelled  unlabelled")
    for name, c in splits:
        lines.append(f"{name:<6} {c.total:>8}  {c.labelled:>8}  {c.total - c.labelled:>10}")
    names = list(dataset.labels) + sorted(
        {k for _, c in splits for k in (*c.labelled_by_label, *c.gold_by_label)} - set(dataset.labels)
    )
    width = max([5, *(len(n or "(none)") for n in names)])
    lines.append("")
    lines.append(f"{'label':<{width}}  " + "  ".join(f"{s + ' given':>11}  {s + ' gold':>10}" for s, _ in splits))
    for label in names:
        cells = "  ".join(
            f"{c.labelled_by_label.get(label, 0):>11}  {c.gold_by_label.get(label, 0):>10}" for _, c in splits
        )
        lines.append(f"{label or '(none)':<{width}}  {cells}")
    return "\n".join(lines)


@command
def dataset_main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="lesslabels dataset", description="Show, relabel the label set of, or delete a dataset."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="counts per label and split, labelled and unlabelled")
    show.add_argument("name")
    delete = sub.add_parser("delete", help="delete a dataset with its samples, labels and runs")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion (required)")
    labels = sub.add_parser("labels", help="declare the dataset's label set (replaces it)")
    labels.add_argument("name")
    labels.add_argument("labels", nargs="+", help="the labels, in order")
    for p in (show, delete, labels):
        _flags(p)
    args = parser.parse_args(argv)
    if args.action == "show":
        dataset = _call(args, "GetDataset", pool_pb2.GetDatasetRequest(name=args.name))
        counts = _call(args, "GetCounts", pool_pb2.GetCountsRequest(dataset=args.name))
        print(format_dataset(dataset, counts))
    elif args.action == "delete":
        if not args.yes:
            dataset = _call(args, "GetDataset", pool_pb2.GetDatasetRequest(name=args.name))
            total = dataset.train_count + dataset.test_count + dataset.dev_count
            raise CliError(
                f"this deletes dataset {args.name!r} ({total} samples, {dataset.labelled_count} labelled) with "
                f"its runs; run again with --yes to confirm",
                exit_code=2,
            )
        reply = _call(args, "DeleteDataset", pool_pb2.DeleteDatasetRequest(dataset=args.name))
        print(f"deleted dataset {reply.dataset!r} ({reply.samples} samples)")
    else:
        dataset = _call(
            args, "SetDatasetLabels", pool_pb2.SetDatasetLabelsRequest(dataset=args.name, labels=args.labels)
        )
        print(f"dataset {dataset.name}: label set is now {', '.join(dataset.labels)}")
    return 0
