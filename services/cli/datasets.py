"""``lesslabels datasets`` and ``lesslabels dataset show|delete|labels``: the pool's datasets."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from lesslabels.cli.common import ArgumentParser, CliError, add_client_flags, command, sdk_error_message, tls_of
from lesslabels.client import Counts, Dataset, LessLabelsError, PoolClient


@contextlib.contextmanager
def _pool(args: argparse.Namespace) -> Iterator[PoolClient]:
    """The SDK's pool client for the parsed flags; a failed call is one CliError line."""
    try:
        with PoolClient(args.pool_address, token=args.token, timeout=args.timeout, tls=tls_of(args)) as pool:
            yield pool
    except LessLabelsError as exc:
        raise CliError(sdk_error_message(exc, "pool", args.pool_address)) from None


@command
def datasets_main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="lesslabels datasets", description="List the pool's datasets.")
    add_client_flags(parser, "pool")
    args = parser.parse_args(argv)
    with _pool(args) as pool:
        datasets = pool.list_datasets()
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


def format_dataset(dataset: Dataset, counts: Counts) -> str:
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
        add_client_flags(p, "pool")
    args = parser.parse_args(argv)
    with _pool(args) as pool:
        if args.action == "show":
            print(format_dataset(pool.get_dataset(args.name), pool.get_counts(args.name)))
        elif args.action == "delete":
            if not args.yes:
                dataset = pool.get_dataset(args.name)
                total = dataset.train_count + dataset.test_count + dataset.dev_count
                raise CliError(
                    f"this deletes dataset {args.name!r} ({total} samples, {dataset.labelled_count} labelled) with "
                    f"its runs; run again with --yes to confirm",
                    exit_code=2,
                )
            removed = pool.delete_dataset(args.name)
            print(f"deleted dataset {args.name!r} ({removed} samples)")
        else:
            dataset = pool.set_dataset_labels(args.name, args.labels)
            print(f"dataset {dataset.name}: label set is now {', '.join(dataset.labels)}")
    return 0
