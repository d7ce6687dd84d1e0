"""Entry point of the ``lesslabels`` console script."""

from __future__ import annotations

import importlib
import sys

from lesslabels.cli.terminal import visible_output

# command -> (module:function, one-line help). Each function takes argv (list[str]) and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "pool": ("lesslabels.pool.main:main", "run the pool service"),
    "trainer": ("lesslabels.trainer.main:main", "run the trainer service"),
    "scorer": ("lesslabels.scorer.main:main", "run the scorer service"),
    "coordinator": ("lesslabels.coordinator.main:main", "run the coordinator service"),
    "web": ("lesslabels.web.main:main", "run the web labelling app"),
    "probe": ("lesslabels.common.probe:main", "exit 0 if HOST:PORT answers health SERVING"),
    "import": ("lesslabels.cli.data:import_main", "import a CSV/JSONL file into the pool"),
    "export": ("lesslabels.cli.data:export_main", "export a labelled set as CSV"),
    "datasets": ("lesslabels.cli.datasets:datasets_main", "list datasets"),
    "dataset": ("lesslabels.cli.datasets:dataset_main", "show a dataset, change its label set, or delete it"),
    "up": ("lesslabels.cli.stack:up_main", "start the four services locally until Ctrl-C"),
    "demo": ("lesslabels.cli.demo:demo_main", "start the services, run active learning on demo data, plot it"),
    "run": ("lesslabels.cli.runs:run_main", "start an active-learning run"),
    "status": ("lesslabels.cli.runs:status_main", "show a run and its rounds (live while it runs)"),
    "runs": ("lesslabels.cli.runs:runs_main", "list runs"),
    "cancel": ("lesslabels.cli.runs:cancel_main", "cancel a run"),
    "resume": ("lesslabels.cli.runs:resume_main", "resume a failed or interrupted run"),
    "label": ("lesslabels.cli.runs:label_main", "export a run's pending batch / import its labels"),
    "labelstudio": (
        "lesslabels.cli.labelstudio:labelstudio_main",
        "a run's pending batch to Label Studio and its labels back",
    ),
    "export-hf": (
        "lesslabels.cli.labelstudio:export_hf_main",
        "export a labelled set for Hugging Face datasets (JSONL/CSV)",
    ),
    "export-model": (
        "lesslabels.cli.export_model:export_model_main",
        "write a checkpoint as ONNX and sentence-transformers folders that run without lesslabels",
    ),
    "report": ("lesslabels.cli.results:report_main", "a run's learning curve: table, CSV/JSON, PNG"),
    "compare": ("lesslabels.cli.results:compare_main", "strategies x seeds: mean curves, area under them, one plot"),
}

#: The commands that run a service: their output is their own log lines (uvicorn's may be coloured).
SERVERS = frozenset({"pool", "trainer", "scorer", "coordinator", "web"})


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: lesslabels COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "'lesslabels COMMAND --help' describes each command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"lesslabels: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[command][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    if command in SERVERS:
        return int(func(rest) or 0)
    with visible_output():  # stored names and texts never reach the terminal with a raw ESC or BEL
        return int(func(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
