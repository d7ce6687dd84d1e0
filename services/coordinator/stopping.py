"""When a run stops: the label budget and the stopping rules, as pure functions of the run."""

from __future__ import annotations

from lesslabels import contract


def label_budget(run: contract.Run) -> int:
    """The run's label budget in samples (0 = none)."""
    budget = run.config.stopping.label_budget
    return budget.resolve(run.pool_size) if budget is not None else 0


def stop_reason(run: contract.Run, test: contract.Metrics) -> str:
    """Why the run stops after evaluating its round on ``test``, or "" to go on."""
    stop = run.config.stopping
    budget = label_budget(run)
    if budget and run.labelled_count >= budget:
        return f"label budget {budget} reached ({run.labelled_count} labelled)"
    if stop.max_rounds and run.round + 1 >= stop.max_rounds:
        return f"round limit {stop.max_rounds} reached"
    if stop.target_accuracy and test.count and test.accuracy >= stop.target_accuracy:
        return f"target accuracy {stop.target_accuracy:g} reached ({test.accuracy:.4f})"
    if run.labelled_count >= run.pool_size:
        return "every pool sample is labelled"
    return ""
