"""Run flags -> the SDK's RunConfig, with every value checked before anything is sent."""

from __future__ import annotations

import argparse
import math

from lesslabels.cli.common import CliError
from lesslabels.client import Amount, Hyperparameters, RunConfig, StoppingRule
from lesslabels.contract import vocabulary

# CLI spelling -> the SDK's name.
STRATEGIES = {vocabulary.flag_name(name): name for name in vocabulary.STRATEGIES}
SEED_STRATEGIES = {vocabulary.flag_name(name): name for name in vocabulary.SEED_STRATEGIES}
ORACLES = {vocabulary.flag_name(name): name for name in vocabulary.ORACLES}
CLASS_BALANCE = {vocabulary.flag_name(name): name for name in vocabulary.CLASS_BALANCES}
#: The flag that sets each checked field, to name it when ``RunConfig.validate`` refuses a value.
FLAGS = {
    "hyperparameters.max_epochs": "--epochs",
    "hyperparameters.batch_size": "--train-batch-size",
    "hyperparameters.max_length": "--max-length",
    "hyperparameters.patience": "--patience",
    "hyperparameters.max_steps": "--max-steps",
    "hyperparameters.min_steps": "--min-steps",
    "hyperparameters.num_threads": "--num-threads",
    "hyperparameters.learning_rate": "--learning-rate",
    "stopping.max_rounds": "--max-rounds",
    "stopping.target_accuracy": "--target-accuracy",
    "stopping.stable_agreement": "--stable-agreement",
    "candidates": "--candidates",
    "refill_every": "--refill-every",
    "annotator_seconds": "--annotator-seconds",
    "overlap": "--overlap",
    "random_seed": "--random-seed",
    "name": "--name",
    "base_model": "--base-model",
}
# Display names of run states and steps as the client SDK returns them (the coordinator's vocabulary).
STATE_NAMES = {name: name.lower().replace("_", " ") for name in vocabulary.RUN_STATES}
STEP_NAMES = {name: name.lower() for name in vocabulary.RUN_STEPS}
FINAL_STATES = frozenset(vocabulary.FINAL_RUN_STATES)
WAITING = "WAITING_FOR_LABELS"


def strategy_label(name: str) -> str:
    """The user-facing spelling of a strategy the SDK returns ("least_confidence" -> "least-confidence"),
    the vocabulary's, which the web app shows too."""
    return vocabulary.flag_name(name) if name else "?"


# Fine-tuning steps per round at least: with the trainer's plain epoch limit a 100-label round gets
# a few dozen steps and predicts the majority class (bench/README.md, headline section).
DEFAULT_MIN_STEPS = 250
#: The trainer's defaults, shown in the training flags' help.
TRAINING = Hyperparameters()
AMOUNT_HELP = "a count (100), a fraction of the pool in (0, 1] (0.05) or a percentage (5%)"
_AMOUNT_ARG_HELP = AMOUNT_HELP.replace("%", "%%")  # argparse expands % in help strings


def parse_amount(text: str, flag: str) -> Amount:
    """``"100"`` -> count 100; ``"0.05"`` or ``"5%"`` -> fraction 0.05. Anything else is a CliError."""
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1]) / 100.0
        elif raw.isdigit():
            count = int(raw)
            if count <= 0:
                raise CliError(f"{flag} {text}: must be positive ({AMOUNT_HELP})", exit_code=2)
            return Amount(count=count)
        else:
            value = float(raw)
    except ValueError:
        raise CliError(f"{flag} {text!r}: not a number ({AMOUNT_HELP})", exit_code=2) from None
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise CliError(f"{flag} {text}: a fraction must be in (0, 1] ({AMOUNT_HELP})", exit_code=2)
    return Amount(fraction=value)


def format_amount(amount: Amount | None) -> str:
    """A count or a percentage; "default" when unset (the coordinator's default applies)."""
    if amount is not None and amount.count:
        return str(amount.count)
    if amount is not None and amount.fraction:
        return f"{100 * amount.fraction:g}%"
    return "default"


#: The defaults of ``lesslabels run``: the configuration the benchmarks recommend (README "Results",
#: bench/README.md), and the original protocol of the papers it is compared with.
PROTOCOLS = {
    "recommended": {"strategy": "clustered-entropy", "seed_strategy": "diverse", "seed_size": "2%", "batch_size": "2%"},
    "original": {"strategy": "entropy", "seed_strategy": "random", "seed_size": "5%", "batch_size": "10%"},
}


def training_plan(config: RunConfig) -> str:
    """How long each round trains, as the trainer will plan it (trainer defaults in brackets)."""
    hp = config.hyperparameters
    parts = [f"training per round: {hp.max_epochs} epochs"]
    if hp.min_steps:
        parts.append(
            f", more when that is under {hp.min_steps} optimizer steps (small labelled sets); "
            "early stopping never ends it sooner"
        )
    else:
        parts.append(" (no --min-steps floor)")
    parts.append("; the trainer also trains at least 8 steps per class")
    if hp.max_steps:
        parts.append(f"; at most {hp.max_steps} steps")
    return "".join(parts)


def add_run_flags(
    parser: argparse.ArgumentParser, *, dataset_required: bool = True, defaults: dict | None = None
) -> None:
    """The flags that define a run. ``defaults`` overrides argparse defaults (the demo's small schedule)."""
    d = defaults or {}
    g = parser.add_argument_group("run")
    if dataset_required:
        g.add_argument("--dataset", required=True, help="dataset in the pool")
    g.add_argument("--name", default=d.get("name", ""), help="a name for the run")
    g.add_argument(
        "--base-model",
        default=d.get("base_model", ""),
        help="'default' or a model name or path inside the servers' model folders (--model-dir) "
        "[the bundled all-MiniLM-L6-v2]",
    )
    g.add_argument(
        "--protocol",
        choices=sorted(PROTOCOLS),
        default=d.get("protocol", "recommended"),
        help="defaults of the four flags below: 'recommended' (the benchmarked best: diverse 2%% seed, "
        "clustered-entropy, +2%% per round) or 'original' (random 5%% seed, entropy, +10%% per round) [%(default)s]",
    )
    g.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        default=d.get("strategy"),
        help="query strategy [the protocol's: clustered-entropy, or entropy]",
    )
    g.add_argument(
        "--seed-size", default=d.get("seed_size"), help=f"initial labelled set: {_AMOUNT_ARG_HELP} [2%%, or 5%%]"
    )
    g.add_argument(
        "--seed-strategy",
        choices=sorted(SEED_STRATEGIES),
        default=d.get("seed_strategy"),
        help="how the initial set is chosen [diverse, or random]",
    )
    g.add_argument(
        "--batch-size",
        default=d.get("batch_size"),
        help=f"samples labelled per round: {_AMOUNT_ARG_HELP} [2%%, or 10%%]",
    )
    g.add_argument(
        "--candidates",
        type=int,
        default=d.get("candidates", 0),
        metavar="N",
        help="unlabelled samples each round scores to select from: a fresh random subset of the unlabelled "
        "pool, drawn by the pool under the run's seed (0 = the whole unlabelled pool) [%(default)s]",
    )
    g.add_argument(
        "--label-budget", default=d.get("label_budget"), help=f"stop at this many labels: {_AMOUNT_ARG_HELP}"
    )
    # None = not given (no such rule); a value given must mean a rule: 0 is refused, not read as "off".
    g.add_argument("--max-rounds", type=int, default=d.get("max_rounds"), help="stop after this many rounds, 1 or more")
    g.add_argument(
        "--target-accuracy",
        type=float,
        default=d.get("target_accuracy"),
        help="stop once test accuracy reaches this, in (0, 1]",
    )
    g.add_argument(
        "--stable-agreement",
        type=float,
        default=d.get("stable_agreement"),
        help="stop once this fraction of pool predictions is unchanged between rounds, in (0, 1]",
    )
    g.add_argument(
        "--oracle",
        choices=sorted(ORACLES),
        default=d.get("oracle", "simulated"),
        help="where labels come from [%(default)s]",
    )
    g.add_argument(
        "--async",
        dest="asynchronous",
        action=argparse.BooleanOptionalAction,
        default=d.get("asynchronous"),
        help="rounds as model versions: people label from a queue refilled from the newest model while "
        "fine-tunes run in the background [on with --oracle human; --no-async for batch rounds]",
    )
    g.add_argument(
        "--refill-every",
        type=int,
        default=d.get("refill_every", 0),
        help="asynchronous runs: labels between refills of the queue [10]",
    )
    g.add_argument(
        "--annotator-seconds",
        type=float,
        default=d.get("annotator_seconds", 0.0),
        help="simulated asynchronous runs (--async with the simulated oracle): seconds per label",
    )
    g.add_argument(
        "--overlap",
        type=float,
        default=d.get("overlap", 0.0),
        metavar="FRACTION",
        help="asynchronous human runs: the share of queued texts two people label, in [0, 1]; a second "
        "person's label is kept beside the first and a disagreement is flagged for review on the web "
        "app's dataset page [%(default)s]",
    )
    g.add_argument("--random-seed", type=int, default=d.get("random_seed", 0), help="seed of every random choice")
    g.add_argument(
        "--warm-start",
        action="store_true",
        default=d.get("warm_start", False),
        help="train each round from the previous round's checkpoint",
    )
    h = parser.add_argument_group("training")
    h.add_argument(
        "--epochs",
        type=int,
        default=d.get("epochs", 0),
        help=f"epochs per round [{TRAINING.max_epochs}]; given alone it turns the --min-steps floor off",
    )
    h.add_argument(
        "--learning-rate",
        type=float,
        default=d.get("learning_rate", 0.0),
        help=f"peak learning rate [{TRAINING.learning_rate:g}]",
    )
    h.add_argument(
        "--train-batch-size",
        type=int,
        default=d.get("train_batch_size", 0),
        help=f"training batch size [{TRAINING.batch_size}]",
    )
    h.add_argument(
        "--max-length", type=int, default=d.get("max_length", 0), help=f"tokens per text [{TRAINING.max_length}]"
    )
    h.add_argument(
        "--patience",
        type=int,
        default=d.get("patience", 0),
        help=f"early-stopping patience in validations (one per epoch, at most 10 per training) [{TRAINING.patience}]",
    )
    h.add_argument("--max-steps", type=int, default=d.get("max_steps", 0), help="cap on optimizer steps (tests)")
    h.add_argument(
        "--min-steps",
        type=int,
        default=None,
        help=f"optimizer steps per round at least: small labelled sets get more epochs than --epochs "
        f"[{d.get('min_steps', DEFAULT_MIN_STEPS)}, or 0 when --epochs is given]",
    )
    # What run_config_from_args needs to tell a flag given from a default.
    parser.set_defaults(_default_epochs=d.get("epochs", 0), _default_min_steps=d.get("min_steps", DEFAULT_MIN_STEPS))
    h.add_argument("--num-threads", type=int, default=d.get("num_threads", 0), help="torch CPU threads [the free CPUs]")
    h.add_argument(
        "--class-balance",
        choices=sorted(CLASS_BALANCE),
        default=d.get("class_balance", "none"),
        help="class-imbalance handling [%(default)s]",
    )


def _stopping_flags(args: argparse.Namespace) -> tuple[int, float, float]:
    """--max-rounds, --target-accuracy, --stable-agreement (0 for a flag not given). A value given
    that stops nothing or cannot be reached (0 rounds, accuracy 0 or above 1) is refused here,
    before a run starts: the coordinator reads 0 as "no such rule" and would run without it."""
    max_rounds = getattr(args, "max_rounds", None)
    if max_rounds is not None and max_rounds < 1:
        raise CliError(
            f"--max-rounds {max_rounds}: must be 1 or more (leave the flag out for no round limit)", exit_code=2
        )
    unit = []
    for flag, value in (("--target-accuracy", args.target_accuracy), ("--stable-agreement", args.stable_agreement)):
        if value is not None and not 0 < value <= 1:
            raise CliError(f"{flag} {value:g}: must be in (0, 1] (leave the flag out for no such rule)", exit_code=2)
        unit.append(value or 0.0)
    return max_rounds or 0, unit[0], unit[1]


def run_config_from_args(args: argparse.Namespace, dataset: str | None = None) -> RunConfig:
    """Build the RunConfig the flags describe; unset values are left for the coordinator's defaults."""
    dataset = dataset if dataset is not None else args.dataset
    if not dataset:
        raise CliError("--dataset is required", exit_code=2)
    max_rounds, target_accuracy, stable_agreement = _stopping_flags(args)
    epochs_given = bool(args.epochs) and args.epochs != getattr(args, "_default_epochs", 0)
    min_steps = args.min_steps
    if min_steps is None:
        # --epochs alone means those epochs: the step floor would silently train for more.
        min_steps = 0 if epochs_given else getattr(args, "_default_min_steps", DEFAULT_MIN_STEPS)
        if args.max_steps > 0:
            min_steps = min(min_steps, args.max_steps)  # the default floor never exceeds a cap asked for
    protocol = PROTOCOLS[getattr(args, "protocol", None) or "recommended"]
    hp = {
        "max_epochs": args.epochs,
        "batch_size": args.train_batch_size,
        "max_length": args.max_length,
        "patience": args.patience,
        "max_steps": args.max_steps,
        "min_steps": min_steps,
        "num_threads": args.num_threads,
        "learning_rate": args.learning_rate,
        "class_balance": CLASS_BALANCE[args.class_balance],
    }
    config = RunConfig(
        dataset=dataset,
        name=args.name,
        base_model=args.base_model,
        strategy=STRATEGIES[args.strategy or protocol["strategy"]],
        seed_strategy=SEED_STRATEGIES[args.seed_strategy or protocol["seed_strategy"]],
        seed_size=parse_amount(args.seed_size or protocol["seed_size"], "--seed-size"),
        batch_size=parse_amount(args.batch_size or protocol["batch_size"], "--batch-size"),
        stopping=StoppingRule(
            label_budget=parse_amount(args.label_budget, "--label-budget") if args.label_budget is not None else None,
            max_rounds=max_rounds,
            target_accuracy=target_accuracy,
            stable_agreement=stable_agreement,
        ),
        oracle=ORACLES[args.oracle],
        random_seed=args.random_seed,
        # Zero values are left out: the trainer's defaults apply (as with an unset proto field).
        hyperparameters=Hyperparameters.from_mapping({k: v for k, v in hp.items() if v}),
        warm_start=args.warm_start,
        candidates=args.candidates,
        asynchronous=args.asynchronous,
        refill_every=args.refill_every,
        annotator_seconds=args.annotator_seconds,
        overlap=getattr(args, "overlap", 0.0),
    )
    problems = config.problems()
    if problems:
        field = problems[0].split(" ", 1)[0]
        flag = FLAGS.get(field)
        raise CliError(f"{flag}: {problems[0]}" if flag else f"run config: {problems[0]}", exit_code=2)
    return config
