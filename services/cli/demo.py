"""``lesslabels demo``: start the stack, run active learning on the demo data, print and plot the result."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shutil
import tempfile
import time
import uuid

from lesslabels.cli import plots, report
from lesslabels.cli.client import Client
from lesslabels.cli.common import ArgumentParser, CliError, command, sdk_error_message
from lesslabels.cli.data import format_summary
from lesslabels.cli.live import describe_run, follow_run, progress_enabled
from lesslabels.cli.runconfig import add_run_flags, format_amount, run_config_from_args, strategy_label
from lesslabels.cli.stack import LocalStack, sigterm_as_interrupt
from lesslabels.client import LessLabelsError, NotFound, PoolClient
from lesslabels.common.config import add_flag
from lesslabels.demo.data import ATIS_MIRROR, DataError, DemoData, resolve_demo_data

# The headline benchmark's best configuration (bench/README.md): a diverse seed set, small
# clustered-entropy batches, up to 10 epochs / 600 steps per round at lr 1e-4, batch 16. On ATIS
# it comes within 0.5 points of the full-data accuracy with 8-10 % of the labels, in a few minutes
# on 2 CPU cores.
DEMO_DEFAULTS = {
    "max_rounds": 5,
    "epochs": 10,
    "max_steps": 600,
    "patience": 2,
    "strategy": "clustered-entropy",
    "seed_strategy": "diverse",
    "learning_rate": 1e-4,
    "train_batch_size": 16,
}
# Seed and batch sizes per dataset: 2% of ATIS is ~97 texts; the synthetic pool is ~10x smaller.
SIZES = {"atis": ("2%", "2%"), "synthetic": ("5%", "5%")}


def import_demo_data(pool_address: str, token: str, dataset: str, data: DemoData) -> list[str]:
    """Import train and test files unless the dataset is already there; returns lines for the user."""
    with PoolClient(pool_address, token=token, timeout=30) as pool:
        try:
            existing = pool.get_dataset(dataset)
            return [
                f"dataset {dataset!r} already in the pool ({existing.train_count} train, "
                f"{existing.test_count} test); not imported again"
            ]
        except NotFound:
            pass
        except LessLabelsError as exc:
            raise CliError(sdk_error_message(exc, "pool", pool_address)) from None
        lines = []
        for path, split in ((data.train, "train"), (data.test, "test")):
            try:
                summary = pool.import_file(path, dataset, split=split, format="csv", create=True)
            except LessLabelsError as exc:
                raise CliError(f"importing {path}: {sdk_error_message(exc, 'pool', pool_address)}") from None
            lines.append(format_summary(summary, path).splitlines()[0])
        return lines


@command
def demo_main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="lesslabels demo",
        description="Start the four services, run active learning on ATIS (or the built-in synthetic "
        "flight intents), and print and plot the learning curve.",
    )
    d = parser.add_argument_group("demo")
    add_flag(d, "--data", default="", help="folder holding atis_intents_train.csv and atis_intents_test.csv")
    d.add_argument("--synthetic", action="store_true", help="use the built-in synthetic set even if ATIS is found")
    d.add_argument("--no-download", action="store_true", help="do not try to download ATIS")
    add_flag(d, "--atis-mirror", default=ATIS_MIRROR, help="base URL the ATIS files are downloaded from")
    add_flag(d, "--state-dir", default="", help="keep the database and checkpoints here [a temporary folder]")
    d.add_argument("--plot", default="lesslabels-demo.png", help="learning-curve PNG [%(default)s]")
    d.add_argument("--json", metavar="FILE", help="also write the rounds as JSON")
    d.add_argument("--startup-timeout", type=float, default=180.0, help="seconds to wait for the services")
    d.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    d.add_argument("--web-port", type=int, default=0, help="port of the web app (0 = any free port) [%(default)s]")
    d.add_argument("--no-web", action="store_true", help="do not start the web app")
    add_run_flags(parser, dataset_required=False, defaults=DEMO_DEFAULTS)
    args = parser.parse_args(argv)
    started = time.monotonic()

    state_dir = (
        pathlib.Path(args.state_dir) if args.state_dir else pathlib.Path(tempfile.mkdtemp(prefix="lesslabels-demo-"))
    )
    try:
        try:
            data, notes = resolve_demo_data(
                args.data or None,
                state_dir / "data",
                download=not args.no_download,
                mirror=args.atis_mirror,
                synthetic_only=args.synthetic,
            )
        except DataError as exc:
            raise CliError(str(exc)) from None
        if data.name == "atis":
            print(f"demo data: ATIS intents ({data.source})")
        else:
            why = "; ".join(notes) if notes else "--synthetic"
            print(f"demo data: the built-in synthetic flight-intent set ({why})")
        seed_size, batch_size = SIZES[data.name]
        args.seed_size = args.seed_size or seed_size
        args.batch_size = args.batch_size or batch_size
        dataset = f"demo-{data.name}"
        config = run_config_from_args(args, dataset=dataset)
        # A model folder given on this machine becomes a model folder of the local trainer and scorer
        # (they accept base models only from their model folders, the bundled model and checkpoints).
        model_dirs: tuple[str, ...] = ()
        if config.base_model and os.path.isdir(config.base_model):
            folder = str(pathlib.Path(config.base_model).resolve())
            config, model_dirs = dataclasses.replace(config, base_model=folder), (folder,)
        progress = progress_enabled(args.progress)

        # A token in the environment is one the children will demand too: use it for our calls.
        token = os.environ.get("LESSLABELS_TOKEN", "")
        with (
            sigterm_as_interrupt(),
            LocalStack(
                state_dir,
                token=token,
                startup_timeout=args.startup_timeout,
                web_port=None if args.no_web else args.web_port,
                model_dirs=model_dirs,
            ) as stack,
        ):
            print(
                f"services up in {time.monotonic() - started:.0f}s: "
                + ", ".join(f"{n} {a}" for n, a in stack.addresses.items() if n != "web"),
                flush=True,
            )
            if "web" in stack.ports:
                print(f"web app: {stack.web_url} (runs, learning curves, datasets)", flush=True)
            for line in import_demo_data(stack.address("pool"), token, dataset, data):
                print(line, flush=True)
            print(
                f"active learning: strategy {strategy_label(config.strategy)}, seed {format_amount(config.seed_size)}"
                f", batch {format_amount(config.batch_size)} per round, up to {config.stopping.max_rounds} rounds, "
                f"{config.hyperparameters.max_epochs} epochs, base model "
                f"{config.base_model or 'all-MiniLM-L6-v2'}",
                flush=True,
            )
            with Client(stack.address("coordinator"), token=token, timeout=60.0) as client:
                run = client.start_run(config, request_id=uuid.uuid4().hex)
                run = follow_run(client, run.id, progress=progress)
                detail = client.get_run(run.id)
        print()
        print(describe_run(detail.run))
        rows = report.rows_from_rounds(detail.rounds, detail.run.pool_size)
        if not rows:
            raise CliError("the run ended without an evaluated round")
        print(report.rounds_table(rows))
        print(report.kept_model_line(detail.rounds))
        path = plots.plot_learning_curve(
            rows, args.plot, title=f"lesslabels demo on {data.name} ({strategy_label(config.strategy)})"
        )
        print(f"learning curve: {path.resolve()}")
        if args.json:
            pathlib.Path(args.json).write_text(report.rows_to_json(rows, data=data.name, run_id=detail.run.id))
        print(f"done in {time.monotonic() - started:.0f}s")
        return 1 if detail.run.state == "FAILED" else 0
    finally:
        if not args.state_dir:
            with contextlib.suppress(OSError):
                shutil.rmtree(state_dir)
