"""Client channels between services: deadlines, retries on UNAVAILABLE for idempotent calls, auth."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lesslabels.common import errors, tracing
from lesslabels.common.config import ClientTLS

log = logging.getLogger(__name__)

#: Default deadline of one unary call between services, in seconds.
DEFAULT_TIMEOUT = 30.0

# Calls that may be retried on UNAVAILABLE: reads, and writes that are idempotent by design
# (upserts, or carrying an idempotency key). Anything else is never retried automatically.
# Unary calls only: with grpcio 1.85 a server-streaming call under a retryPolicy whose server is
# killed before its first response hangs past its deadline (tests/integration/test_server_crash.py).
# Callers of the streams (ListSamples, ExportLabels, WatchJob, ScorePool, WatchRun) retry themselves.
IDEMPOTENT_METHODS: dict[str, tuple[str, ...]] = {
    "lesslabels.v1.PoolService": ("GetDataset", "ListDatasets", "GetCounts", "GetLabelHistory", "SubmitLabels"),
    "lesslabels.v1.RunStore": (
        "GetRun",
        "ListRuns",
        "ListRounds",
        "ListAcquisitions",
        "RevealLabels",
        "PutRound",
    ),
    "lesslabels.v1.TrainerService": (
        "StartTraining",
        "GetJob",
        "ListJobs",
        "CancelJob",
        "ListCheckpoints",
        "GetCheckpoint",
    ),
    "lesslabels.v1.ScorerService": ("Score", "LoadCheckpoint", "ListLoaded", "UnloadCheckpoint"),
    "lesslabels.v1.CoordinatorService": (
        "StartRun",
        "GetRun",
        "ListRuns",
        "CancelRun",
        "ResumeRun",
        "GetPendingLabels",
        "SubmitRunLabels",
    ),
    "grpc.health.v1.Health": ("Check",),
}


def _service_config() -> str:
    names = [{"service": svc, "method": m} for svc, methods in IDEMPOTENT_METHODS.items() for m in methods]
    return json.dumps(
        {
            # A name that resolves to several addresses (a Kubernetes headless Service of scorer
            # replicas, dns:///scorer:50053) gets its calls spread over all of them; one address
            # behaves as with the default pick_first.
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": names,
                    "retryPolicy": {
                        "maxAttempts": 5,
                        "initialBackoff": "0.2s",
                        "maxBackoff": "5s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


class _BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the bearer token to insecure channels (call credentials need TLS)."""

    def __init__(self, token: str):
        self._pair = ("authorization", f"Bearer {token}")

    def _details(self, details):
        metadata = list(details.metadata or []) + [self._pair]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


class _Details(grpc.ClientCallDetails):
    def __init__(self, base, metadata):
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


def make_channel(
    address: str,
    *,
    token: str = "",
    max_message_bytes: int = 64 * 1024 * 1024,
    credentials: grpc.ChannelCredentials | None = None,
    tls: ClientTLS | None = None,
) -> grpc.Channel:
    """A channel to ``address`` with the retry policy and, if given, the bearer token.

    Insecure unless ``credentials`` (e.g. ``grpc.ssl_channel_credentials(...)``) or an enabled
    ``tls`` are given; over TLS the token travels as call credentials."""
    if credentials is None and tls is not None and tls.enabled:
        credentials = grpc.ssl_channel_credentials(**tls.sdk_options())
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _service_config()),
        ("grpc.keepalive_time_ms", 30_000),
        # Its own connections: grpc's process-wide subchannel pool would hand a new channel the
        # connection state of an older channel to the same address, so a server restarted on that
        # port (or a new one on a reused ephemeral port) was refused at once with the old
        # connection's "Connection refused" until its reconnect backoff ran out.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    # With tracing on (lesslabels.common.tracing), each call is a span whose context the server gets.
    interceptors: list = tracing.client_interceptors()
    if credentials is not None:
        if token:
            credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
        channel = grpc.secure_channel(address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
        if token:
            interceptors.append(_BearerInterceptor(token))
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel


def wait_until_serving(
    address: str | Sequence[str],
    *,
    service: str = "",
    timeout: float = 60.0,
    token: str = "",
    tls: ClientTLS | None = None,
) -> str:
    """Block until ``address`` answers health SERVING, or any one of several (replicas: the others
    may come later, or never); return the one that did. Raise Unavailable after ``timeout``.

    Services call this for their dependencies at start-up, so a service started before its
    dependency waits instead of crashing.
    """
    addresses = [address] if isinstance(address, str) else list(address)
    if not addresses:
        raise ValueError("wait_until_serving needs at least one address")
    deadline = time.monotonic() + timeout
    last = dict.fromkeys(addresses, "no answer")
    with contextlib.ExitStack() as channels:
        stubs = {
            a: health_pb2_grpc.HealthStub(channels.enter_context(make_channel(a, token=token, tls=tls)))
            for a in addresses
        }
        while True:
            for a, stub in stubs.items():
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return a
                    last[a] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                except grpc.RpcError as exc:
                    last[a] = f"{exc.code().name}: {exc.details()}"
            if time.monotonic() >= deadline:
                if len(addresses) == 1:
                    raise errors.Unavailable(f"{addresses[0]} not serving after {timeout:.0f}s ({last[addresses[0]]})")
                answers = "; ".join(f"{a}: {answer}" for a, answer in last.items())
                raise errors.Unavailable(f"none of {len(addresses)} replicas serving after {timeout:.0f}s ({answers})")
            log.info("event=waiting_for_dependency addresses=%s last=%r", ",".join(addresses), last)
            time.sleep(0.5)


def from_rpc_error(exc: grpc.RpcError, what: str = "") -> errors.LessLabelsError:
    """Map a downstream RpcError back to a domain error, so it propagates with its code."""
    code = exc.code()
    # Bounded: a wrapped error passed on again (the coordinator's) stays short enough to send.
    message = errors.bounded(f"{what}: {exc.details()}" if what else str(exc.details()))
    mapping = {
        grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
        grpc.StatusCode.NOT_FOUND: errors.NotFound,
        grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
        grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
        grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
        grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
        grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
        grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
        grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
        grpc.StatusCode.CANCELLED: errors.Cancelled,
    }
    return mapping.get(code, errors.LessLabelsError)(message)
