"""One trace per round step across the real in-process services (tiny BERT): the coordinator's SCORE
step, the scorer's ScorePool it calls and the pool's ListSamples the scorer reads pages with share a
trace id, each span the child of the one that called it, and the scorer's log line carries it; the
TRAIN step's trace goes on into the trainer's job and its reads from the pool."""

from __future__ import annotations

import io
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lesslabels.client import Amount, CoordinatorClient, RunConfig, StoppingRule
from lesslabels.common import tracing
from lesslabels.common.logs import log_handler
from tests.stack import load_toy_dataset, start_real_stack, wait_for

SCORE_POOL = "/lesslabels.v1.ScorerService/ScorePool"
LIST_SAMPLES = "/lesslabels.v1.PoolService/ListSamples"
START_TRAINING = "/lesslabels.v1.TrainerService/StartTraining"


@pytest.fixture
def traced_stack(tmp_path, tiny_bert_dir):
    """The real stack built with tracing on (spans in memory), and the log lines of its services."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    logs = io.StringIO()
    handler = log_handler("stack", logs)
    scorer_log = logging.getLogger("lesslabels.scorer.pool_scoring")
    scorer_log.addHandler(handler)
    level, scorer_log.level = scorer_log.level, logging.INFO
    stack, stop = start_real_stack(tmp_path, model_dirs=(str(tiny_bert_dir),))
    try:
        load_toy_dataset(stack.pool_address)
        yield stack, exporter, logs
    finally:
        stop()
        scorer_log.removeHandler(handler)
        scorer_log.setLevel(level)
        tracing.install(None)
        provider.shutdown()


def test_a_score_step_is_one_trace_across_coordinator_scorer_and_pool(traced_stack, tiny_bert_dir):
    stack, exporter, logs = traced_stack
    config = RunConfig(
        dataset="toy",
        base_model=str(tiny_bert_dir),
        strategy="entropy",
        random_seed=3,
        seed_size=Amount(count=12),
        batch_size=Amount(count=8),
        stopping=StoppingRule(max_rounds=2),
        hyperparameters={"max_epochs": 1, "batch_size": 8, "max_length": 16, "num_threads": 1},
    )
    with CoordinatorClient(stack.coordinator_address, timeout=30) as coordinator:
        run = coordinator.start_run(config)

        def score_step():
            return [s for s in exporter.get_finished_spans() if s.name == "step SCORE"]

        step = wait_for(score_step, 120, 0.1, "the SCORE step's span")[0]
        coordinator.cancel(run.id)  # round 1 is not needed

    assert step.kind == SpanKind.INTERNAL and step.status.is_ok
    assert dict(step.attributes) == {
        "lesslabels.run_id": run.id,
        "lesslabels.round": 0,
        "lesslabels.step": "SCORE",
        "lesslabels.strategy": "entropy",
        "lesslabels.dataset": "toy",
    }
    trace_id = step.context.trace_id
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in spans}

    def chain(span) -> list[tuple[str, SpanKind]]:
        """From ``span`` up to the trace's root: each span's name and kind, each parent in the trace."""
        links = [(span.name, span.kind)]
        while span.parent is not None:
            span = by_id[span.parent.span_id]
            links.append((span.name, span.kind))
        return links

    client, server = SpanKind.CLIENT, SpanKind.SERVER
    pool_reads = [s for s in spans if s.name == LIST_SAMPLES and s.kind == server]
    assert pool_reads, f"no pool read in the SCORE trace: {sorted(s.name for s in spans)}"
    for read in pool_reads:  # coordinator -> scorer -> pool: the client and the server span of each call
        assert chain(read) == [
            (LIST_SAMPLES, server),
            (LIST_SAMPLES, client),
            (SCORE_POOL, server),
            (SCORE_POOL, client),
            ("step SCORE", SpanKind.INTERNAL),
        ]
    # Every span of the trace descends from the step, its run-store write (RecordStep) too.
    assert all(chain(s)[-1][0] == "step SCORE" for s in spans)
    assert "/lesslabels.v1.RunStore/RecordStep" in {s.name for s in spans}
    # The TRAIN step's trace goes on into the trainer's job, which reads the labels from the pool.
    train = next(s for s in exporter.get_finished_spans() if s.name == "step TRAIN")
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == train.context.trace_id]
    by_id = {s.context.span_id: s for s in spans}
    job = next(s for s in spans if s.name == "training job")
    assert job.attributes["lesslabels.run_id"] == run.id and job.attributes["lesslabels.job_state"] == "SUCCEEDED"
    assert chain(job) == [
        ("training job", SpanKind.INTERNAL),
        (START_TRAINING, server),
        (START_TRAINING, client),
        ("step TRAIN", SpanKind.INTERNAL),
    ]
    assert [s for s in spans if s.name == LIST_SAMPLES and s.kind == server and chain(s)[2][0] == "training job"]
    # The scorer's log line about this scoring carries the trace id.
    done = [line for line in logs.getvalue().splitlines() if "event=score_pool_done" in line]
    assert any(f"trace_id={trace_id:032x}" in line for line in done), logs.getvalue()
