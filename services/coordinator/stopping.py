"""When a run stops: the label budget and the stopping rules, as pure functions of the run."""

from __future__ import annotations

from lesslabels import contract


def label_budget(run: contract.Run) -> int:
    """The run's label budget in samples (0 = none)."""
    budget = run.config.stopping.label_budget
    return budget.resolve(run.pool_size) if budget is not None else 0


def stop_reason(run: contract.Run, test: contract.Metrics, trained: int | None = None) -> str:
    """Why the run stops after evaluating its round on ``test``, or "" to go on. ``trained``: the
    labels the round trained on, when labels may have come in since (an asynchronous run's people
    label while it fine-tunes): the budget and the pool count as spent only once a model has
    trained on them, so a run whose people labelled the rest of the pool meanwhile trains again."""
    stop = run.config.stopping
    budget = label_budget(run)
    labelled = run.labelled_count if trained is None else trained
    if budget and labelled >= budget:
        return f"label budget {budget} reached ({labelled} labelled)"
    if stop.max_rounds and run.round + 1 >= stop.max_rounds:
        return f"round limit {stop.max_rounds} reached"
    if stop.target_accuracy and test.count and test.accuracy >= stop.target_accuracy:
        return f"target accuracy {stop.target_accuracy:g} reached ({test.accuracy:.4f})"
    if labelled >= run.pool_size:
        return "every pool sample is labelled"
    return ""
