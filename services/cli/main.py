"""Entry point of the ``lesslabels`` console script."""

from __future__ import annotations

import importlib
import sys

# command -> (module:function, one-line help). Each function takes argv (list[str]) and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "pool": ("services.pool.main:main", "run the pool service"),
    "trainer": ("services.trainer.main:main", "run the trainer service"),
    "scorer": ("services.scorer.main:main", "run the scorer service"),
    "coordinator": ("services.coordinator.main:main", "run the coordinator service"),
    "probe": ("services.common.probe:main", "exit 0 if HOST:PORT answers health SERVING"),
    "import": ("services.cli.data:import_main", "import a CSV/JSONL file into the pool"),
    "export": ("services.cli.data:export_main", "export a labelled set as CSV"),
}


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
    return int(func(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
