"""The ``lesslabels`` command. Subcommands are imported lazily so ``lesslabels pool`` never loads torch."""
