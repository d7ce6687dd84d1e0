"""Prometheus metrics: every metric the services export, and the HTTP endpoint that serves them.

One catalogue, so the names (``lesslabels_`` prefix, base units, ``_total`` counters) are read in
one place. Labels take only bounded values: gRPC method names the server registered, status codes,
step names, label sources. Never run ids, dataset names, model keys or texts.

The endpoint is off unless a server is given ``--metrics-port`` (``ServerSettings.metrics_port``);
the metrics are process-wide, so servers sharing a process (tests, ``lesslabels up`` in one
process) show the same numbers on each of their endpoints.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

#: Seconds: a millisecond health-style call to a minutes-long training or pool scoring stream.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

# -- every gRPC server (lesslabels.common.server.MetricsInterceptor) -----------------------------
GRPC_STARTED = Counter(
    "lesslabels_grpc_server_started_total",
    "RPCs the server started, by method",
    ["grpc_service", "grpc_method", "grpc_type"],
)
GRPC_HANDLED = Counter(
    "lesslabels_grpc_server_handled_total",
    "RPCs the server finished, by method and status code",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "lesslabels_grpc_server_handling_seconds",
    "Time from the start of an RPC to its status (a stream: to its last message)",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=_LATENCY_BUCKETS,
)
GRPC_IN_FLIGHT = Gauge(
    "lesslabels_grpc_server_in_flight",
    "RPCs being served now (response streams included: open streams)",
    ["grpc_service", "grpc_method", "grpc_type"],
)

# -- scorer (lesslabels.scorer.batching.DynamicBatcher) ------------------------------------------
SCORER_BATCH_SIZE = Histogram(
    "lesslabels_scorer_batch_size",
    "Texts in each batch the model ran",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
SCORER_TEXTS = Counter("lesslabels_scorer_texts_total", "Texts the model ran (every batch, failed ones too)")
SCORER_TOKENS = Counter(
    "lesslabels_scorer_tokens_total",
    "Tokens of the batches run: kind=real (the texts') and kind=padded (batch rows x longest row); "
    "1 - real/padded is the padding ratio",
    ["kind"],
)
SCORER_QUEUE_TEXTS = Gauge("lesslabels_scorer_queue_texts", "Texts waiting in the batchers' queues")
SCORER_QUEUE_WAIT = Histogram(
    "lesslabels_scorer_queue_wait_seconds",
    "Time a request waited in a batcher's queue before its batches ran",
    buckets=_LATENCY_BUCKETS,
)

# -- trainer (lesslabels.trainer.core.Trainer.run) -----------------------------------------------
TRAINER_TRAININGS = Counter("lesslabels_trainer_trainings_total", "Trainings that ran to a published checkpoint")
TRAINER_STEPS = Counter("lesslabels_trainer_steps_total", "Optimizer steps of the finished trainings")
TRAINER_SAMPLES = Counter("lesslabels_trainer_samples_total", "Training samples seen by the finished trainings")
TRAINER_SAMPLES_PER_SECOND = Gauge(
    "lesslabels_trainer_samples_per_second", "Training samples per second of the last finished training"
)
TRAINER_SECONDS = Histogram(
    "lesslabels_trainer_training_seconds",
    "Time of the training loop of each finished training",
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)

# -- coordinator (lesslabels.coordinator.steps.StepRunner) ---------------------------------------
COORDINATOR_STEP_SECONDS = Histogram(
    "lesslabels_coordinator_step_seconds",
    "Time of each run step the coordinator ran, by step (SEED, LABEL, TRAIN, EVALUATE, SCORE, SELECT) "
    "and outcome (ok, error)",
    ["step", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
COORDINATOR_ROUNDS = Counter(
    "lesslabels_coordinator_rounds_total", "Rounds the runs moved past (the round number of a run went up)"
)

# -- pool (lesslabels.pool.labels) ---------------------------------------------------------------
POOL_LABELS = Counter(
    "lesslabels_pool_labels_total",
    "Labels recorded, by source (seed, oracle, human, review); resubmitted unchanged labels are not counted",
    ["source"],
)


def start_http(port: int, host: str) -> WSGIServer:
    """Serve ``/metrics`` on ``host:port`` in a daemon thread; ``stop_http`` ends it. A port taken
    already raises RuntimeError naming the flag."""
    prometheus_client.disable_created_metrics()  # no ``_created`` series beside every counter
    try:
        server, _thread = prometheus_client.start_http_server(port, addr=host)
    except OSError as exc:
        raise RuntimeError(
            f"--metrics-port {port}: cannot serve metrics on {host}:{port} ({exc.strerror or exc})"
        ) from None
    return server


def stop_http(server: WSGIServer) -> None:
    server.shutdown()  # waits for the serving loop to end (it polls every 0.5 s)
    server.server_close()
