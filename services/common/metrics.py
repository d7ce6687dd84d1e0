"""Prometheus metrics: every metric the services export, and the HTTP endpoint that serves them.

One catalogue, so the names (``lesslabels_`` prefix, base units, ``_total`` counters) are read in
one place. Labels take only bounded values: gRPC method names the server registered, status codes,
step names, label sources. Never run ids, dataset names, model keys or texts.

The endpoint is off unless a server is given ``--metrics-port`` (``ServerSettings.metrics_port``);
the metrics are process-wide, so servers sharing a process (tests, ``lesslabels up`` in one
process) show the same numbers on each of their endpoints.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class StateGauge(Collector):
    """A gauge of things by state, counted when Prometheus scrapes: each registered source (a
    bound method, held weakly, so a stopped service's source goes away with it) returns counts by
    state; the gauge sums them, every state of ``states`` present (0 when none), others ignored."""

    def __init__(self, name: str, documentation: str, states: Iterable[str]):
        self.name, self.documentation, self.states = name, documentation, tuple(states)
        self._sources: list[weakref.WeakMethod] = []
        self._lock = threading.Lock()
        prometheus_client.REGISTRY.register(self)

    def add_source(self, source: Callable[[], Mapping[str, int]]) -> None:
        with self._lock:
            self._sources = [s for s in self._sources if s() is not None]
            self._sources.append(weakref.WeakMethod(source))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=["state"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        totals = dict.fromkeys(self.states, 0)
        with self._lock:
            sources = [s() for s in self._sources]
        for source in sources:
            if source is not None:
                for state, count in source().items():
                    if state in totals:
                        totals[state] += count
        family = GaugeMetricFamily(self.name, self.documentation, labels=["state"])
        for state, count in totals.items():
            family.add_metric([state], count)
        yield family


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

SCORER_CACHE_LOOKUPS = Counter(
    "lesslabels_scorer_model_cache_lookups_total",
    "Models asked of the scorer's model cache, by result: hit (loaded already) or miss (loaded now)",
    ["result"],
)
SCORER_CACHE_EVICTIONS = Counter(
    "lesslabels_scorer_model_cache_evictions_total",
    "Models the cache unloaded to make room for another (--cache-size); UnloadCheckpoint not counted",
)
SCORER_INFLIGHT_BYTES = Gauge(
    "lesslabels_scorer_inflight_bytes", "Bytes of the requests being scored now (--max-inflight-mb bounds them)"
)
SCORER_INFLIGHT_REFUSED = Counter(
    "lesslabels_scorer_inflight_refused_total",
    "Requests refused (RESOURCE_EXHAUSTED) because they would pass the in-flight budget",
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

TRAINER_THREADS = Gauge(
    "lesslabels_trainer_threads", "CPU threads the running training uses (chosen per job, re-read while it runs)"
)
#: Jobs the trainer keeps (lesslabels.trainer.jobs.JobManager), by state, when scraped.
TRAINER_JOBS = StateGauge(
    "lesslabels_trainer_jobs",
    "Training jobs the trainer keeps, by state (QUEUED, RUNNING, and the final ones since its job files began)",
    ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED"),
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

COORDINATOR_RUNS = Gauge(
    "lesslabels_coordinator_runs",
    "Active runs by state (PENDING, RUNNING, WAITING_FOR_LABELS), as the coordinator last listed them "
    "(at start and every few seconds)",
    ["state"],
)
COORDINATOR_RUNS_ENDED = Counter(
    "lesslabels_coordinator_runs_ended_total",
    "Runs this coordinator moved to a final state, by state (COMPLETED, FAILED, CANCELLED)",
    ["state"],
)
COORDINATOR_ACQUIRED = Counter(
    "lesslabels_coordinator_labels_acquired_total",
    "Samples the runs acquired for labelling (seed sets and selected batches, as recorded)",
)
COORDINATOR_LABEL_WAIT = Histogram(
    "lesslabels_coordinator_label_wait_seconds",
    "Time a run with the human oracle waited for labels: from WAITING_FOR_LABELS until its labels let it go on",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 259200),
)

# -- pool (lesslabels.pool.labels) ---------------------------------------------------------------
POOL_LABELS = Counter(
    "lesslabels_pool_labels_total",
    "Labels recorded, by source (seed, oracle, human, review); resubmitted unchanged labels are not counted",
    ["source"],
)

POOL_IMPORTED_ROWS = Counter(
    "lesslabels_pool_imported_rows_total", "Rows stored by imports (checks, repeated requests and failures store none)"
)
POOL_IMPORTED_BYTES = Counter("lesslabels_pool_imported_bytes_total", "Bytes of the files whose rows were stored")
POOL_DB_SECONDS = Histogram(
    "lesslabels_pool_db_transaction_seconds",
    "Time of each database transaction of the pool, by kind (read, write; a retried write counts once, all tries)",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)

# -- web (lesslabels.web.activity) ---------------------------------------------------------------
#: Distinct annotator names the web app counts on their own (the first ones it sees); later names
#: are counted as OTHER_ANNOTATORS, so a name typed anew per label cannot grow the series.
MAX_ANNOTATOR_SERIES = 32
OTHER_ANNOTATORS = "_other"
WEB_LABELS = Counter(
    "lesslabels_web_labels_total",
    f"Labels people recorded through the web app, by annotator (the first {MAX_ANNOTATOR_SERIES} names this "
    f"process saw; later ones as {OTHER_ANNOTATORS})",
    ["annotator"],
)
WEB_LABEL_SECONDS = Histogram(
    "lesslabels_web_label_seconds",
    "Time per label: between one person's consecutive labels in a run (a gap over 5 minutes is a pause, not counted)",
    buckets=(0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180, 300),
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
