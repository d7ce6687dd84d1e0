"""One bootstrap for every server: health, reflection, error mapping, auth, graceful stop."""

from __future__ import annotations

import dataclasses
import hmac
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lesslabels.common import errors, metrics, tracing
from lesslabels.common.config import ServerSettings
from lesslabels.common.thread_pool import ElasticThreadPool

log = logging.getLogger(__name__)

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
_HEALTH_PREFIX = f"/{HEALTH_SERVICE}/"


def status_code(exc: errors.LessLabelsError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, exc.code, grpc.StatusCode.INTERNAL)


def public_message(exc: BaseException) -> str:
    """The error's text as a caller may see it: without the internal addresses of the services it
    came through (an SDK error names ``pool at 10.0.0.7:50051``; the log keeps them)."""
    message = str(exc)
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        address = getattr(link, "address", "")
        if address:
            message = message.replace(f" at {address}", "")
        link = link.__cause__ or link.__context__
    return message


def _abort_for(exc: BaseException, context: grpc.ServicerContext, method: str) -> None:
    """Turn an exception raised by a handler into the call's status. Always raises."""
    if isinstance(exc, errors.LessLabelsError):
        log.info("rpc=%s status=%s error=%r", method, exc.code, str(exc))
        context.abort(status_code(exc), errors.bounded(public_message(exc)))
    if isinstance(exc, grpc.RpcError) and not context.is_active():
        # The request stream of a call its client cancelled (or the server stopped) raises this: not a fault.
        log.info("rpc=%s status=CANCELLED the call ended while its request stream was read", method)
        context.abort(grpc.StatusCode.CANCELLED, "the call ended before its requests were read")
    log.error("rpc=%s status=INTERNAL unexpected error", method, exc_info=exc)
    # Only the type goes to the caller: an unexpected error's text can name server files.
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method} ({type(exc).__name__}); see the server's log")


class ErrorInterceptor(grpc.ServerInterceptor):
    """Maps domain errors to status codes, in one place, for unary and streaming handlers.

    Response streams also take a slot of ``streams`` (a semaphore) for their whole life, and are
    refused with RESOURCE_EXHAUSTED when none is free, so streams cannot take the threads that
    unary calls need. The health service is passed through untouched: re-wrapping its handler
    would lose grpc's non-blocking Watch, and every idle Watch would then hold a thread.
    """

    def __init__(self, streams: threading.Semaphore | None = None, stream_limit: int = 0):
        self._streams = streams
        self._stream_limit = stream_limit

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(_HEALTH_PREFIX):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        streams, limit = self._streams, self._stream_limit

        def wrap_unary(fn):
            def call(request, context):
                try:
                    return fn(request, context)
                except Exception as exc:  # noqa: BLE001 - mapped, not swallowed
                    if _is_abort(exc):
                        raise
                    _abort_for(exc, context, method)

            return call

        def wrap_stream(fn):
            def call(request, context):
                if streams is not None and not streams.acquire(blocking=False):
                    log.warning("rpc=%s status=RESOURCE_EXHAUSTED streams=%d", method, limit)
                    context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"this server already serves {limit} streams (--max-streams); try again later",
                    )
                try:
                    yield from fn(request, context)
                except Exception as exc:  # noqa: BLE001
                    if _is_abort(exc):
                        raise
                    _abort_for(exc, context, method)
                finally:
                    if streams is not None:
                        streams.release()

            return call

        return _rewrap(handler, wrap_unary, wrap_stream)


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises a bare Exception subclass carrying the status already set.
    return type(exc) is Exception and not exc.args


def _rewrap(handler: grpc.RpcMethodHandler, wrap_unary, wrap_stream) -> grpc.RpcMethodHandler:
    kw = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap_unary(handler.unary_unary), **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap_stream(handler.unary_stream), **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap_unary(handler.stream_unary), **kw)
    return grpc.stream_stream_rpc_method_handler(wrap_stream(handler.stream_stream), **kw)


def _rpc_type(handler: grpc.RpcMethodHandler) -> str:
    if handler.unary_unary:
        return "unary"
    if handler.unary_stream:
        return "server_stream"
    if handler.stream_unary:
        return "client_stream"
    return "bidi_stream"


def _code(context: grpc.ServicerContext, default: str) -> str:
    """The status the handler set (``abort``, ``set_code``), else ``default``."""
    code = context.code()  # type: ignore[attr-defined]  # grpc has it; its stubs do not
    return code.name if isinstance(code, grpc.StatusCode) else default


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts every call of a registered method (``lesslabels.common.metrics``): started, finished
    by status code, latency, in flight. Registered first, so calls the token check refuses count
    too. Unknown methods (grpc answers UNIMPLEMENTED) are not counted: a method label only takes
    the names the server registered. The health service is passed through, as ErrorInterceptor
    does, for the same reason."""

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(_HEALTH_PREFIX):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service, _, name = handler_call_details.method.lstrip("/").rpartition("/")
        labels = (service, name, _rpc_type(handler))
        started = metrics.GRPC_STARTED.labels(*labels)
        seconds = metrics.GRPC_SECONDS.labels(*labels)
        in_flight = metrics.GRPC_IN_FLIGHT.labels(*labels)

        def begin() -> float:
            started.inc()
            in_flight.inc()
            return time.perf_counter()

        def finish(begun: float, code: str) -> None:
            seconds.observe(time.perf_counter() - begun)
            in_flight.dec()
            metrics.GRPC_HANDLED.labels(*labels, code).inc()

        def wrap_unary(fn):
            def call(request, context):
                begun, code = begin(), "UNKNOWN"  # an exception grpc turns into UNKNOWN
                try:
                    response = fn(request, context)
                    code = "OK"
                    return response
                finally:
                    finish(begun, _code(context, code))

            return call

        def wrap_stream(fn):
            def call(request, context):
                begun, code = begin(), "UNKNOWN"
                try:
                    yield from fn(request, context)
                    code = "OK"
                except GeneratorExit:  # the caller went away mid-stream
                    code = "CANCELLED"
                    raise
                finally:
                    finish(begun, _code(context, code))

            return call

        return _rewrap(handler, wrap_unary, wrap_stream)


class TokenInterceptor(grpc.ServerInterceptor):
    """Requires ``authorization: Bearer <token>`` on every call except the health service and
    ``open_methods`` (full method paths, ``/package.Service/Method``: liveness probes).

    Either token is accepted, the public one (users, the CLI, the SDK, the web app) and the
    service-to-service one, except on ``internal_methods`` (full method paths: the services' own
    writes, such as starting a training job) and on every method of ``internal_services`` (full
    service names: internal APIs, such as the pool process's run store): when the server has an
    internal token, those need it, and the public one gets PERMISSION_DENIED. Without an internal
    token the public one opens everything."""

    def __init__(
        self,
        token: str,
        internal_token: str = "",
        *,
        open_methods: Iterable[str] = (),
        internal_methods: Iterable[str] = (),
        internal_services: Iterable[str] = (),
    ):
        if not (token or internal_token):
            raise ValueError("TokenInterceptor needs at least one non-empty token")
        self._public = f"Bearer {token}".encode() if token else None
        self._internal = f"Bearer {internal_token}".encode() if internal_token else None
        self._open = frozenset(open_methods)
        self._internal_methods = frozenset(internal_methods)
        self._internal_prefixes = tuple(f"/{name}/" for name in internal_services)

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method.startswith(_HEALTH_PREFIX) or method in self._open:
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = str(metadata.get("authorization", "")).encode()
        # Both tokens are compared (no early exit), so the time taken tells nothing about which matched.
        is_public = self._public is not None and hmac.compare_digest(given, self._public)
        is_internal = self._internal is not None and hmac.compare_digest(given, self._internal)
        internal_only = self._internal is not None and (
            method in self._internal_methods or method.startswith(self._internal_prefixes)
        )
        if is_internal or (is_public and not internal_only):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if is_public:
            code = grpc.StatusCode.PERMISSION_DENIED
            message = (
                f"{method} is a service-to-service method: it takes the internal token "
                "(LESSLABELS_INTERNAL_TOKEN / --internal-token), not the public one"
            )
        else:
            code = grpc.StatusCode.UNAUTHENTICATED
            message = "missing or wrong bearer token (set LESSLABELS_TOKEN / --token on the client)"

        def deny_unary(_fn):
            def call(request, context):
                context.abort(code, message)

            return call

        def deny_stream(_fn):
            def call(request, context):
                context.abort(code, message)
                yield  # pragma: no cover - makes this a generator

            return call

        return _rewrap(handler, deny_unary, deny_stream)


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """TLS credentials from ``settings`` (None: plaintext). With ``tls_client_ca`` every client must
    present a certificate signed by it (mutual TLS)."""
    if not settings.tls_cert:
        return None
    with open(settings.tls_key, "rb") as key, open(settings.tls_cert, "rb") as cert:
        pair = (key.read(), cert.read())
    client_ca = None
    if settings.tls_client_ca:
        with open(settings.tls_client_ca, "rb") as ca:
            client_ca = ca.read()
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=client_ca is not None)


@dataclasses.dataclass
class ServiceRegistration:
    """A servicer to add: ``register(server)`` adds it; ``names`` are its full service names;
    ``open_methods`` are full method paths answered without the bearer token (probes);
    ``internal_methods`` those only the services call, which take only the internal token when the
    server has one (``TokenInterceptor``); ``internal``: every method of the services is such a
    one (an internal API served beside a public one)."""

    names: tuple[str, ...]
    register: Callable[[grpc.Server], None]
    open_methods: tuple[str, ...] = ()
    internal_methods: tuple[str, ...] = ()
    internal: bool = False


class Server:
    """A gRPC server with health (NOT_SERVING until ``set_serving``), reflection and a grace period.

    >>> server = Server(settings, [registration]); port = server.start(); server.set_serving()
    """

    def __init__(
        self,
        settings: ServerSettings,
        services: Iterable[ServiceRegistration],
        *,
        name: str = "lesslabels",
    ):
        self.settings = settings
        self.name = name
        self._services = list(services)
        self._stopped = threading.Event()
        self._on_stop: list[Callable[[], None]] = []
        # Traced first (when tracing is on), so the other interceptors' log lines carry the call's trace id.
        interceptors: list[grpc.ServerInterceptor] = [*tracing.server_interceptors(), MetricsInterceptor()]
        if settings.token or settings.internal_token:
            interceptors.append(
                TokenInterceptor(
                    settings.token,
                    settings.internal_token,
                    open_methods=[m for s in self._services for m in s.open_methods],
                    internal_methods=[m for s in self._services for m in s.internal_methods],
                    internal_services=[n for s in self._services if s.internal for n in s.names],
                )
            )
        interceptors.append(ErrorInterceptor(threading.Semaphore(settings.max_streams), settings.max_streams))
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
            # Clients (lesslabels.common.channels) ping every 30 s to keep long streams (WatchRun,
            # WatchJob) alive through idle periods; accept that instead of answering
            # GOAWAY too_many_pings, which the default 5-minute minimum would.
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
        # Threads: ``workers`` for unary calls plus one per admitted response stream, so a full
        # stream budget still leaves every worker to unary calls; each ends after a few idle seconds,
        # so a flood of streams leaves no threads behind. grpc itself answers RESOURCE_EXHAUSTED
        # past maximum_concurrent_rpcs: the streams of both budgets (ours and the thread-less health
        # watches) and a queue of unary calls four times the workers.
        self.thread_pool = ElasticThreadPool(settings.workers + settings.max_streams, thread_name_prefix=f"{name}-rpc")
        self._server = grpc.server(
            self.thread_pool,  # type: ignore[arg-type]  # grpc calls submit() only
            interceptors=interceptors,
            options=options,
            maximum_concurrent_rpcs=2 * settings.max_streams + 4 * settings.workers,
        )
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        names = [HEALTH_SERVICE, reflection.SERVICE_NAME]
        for service in self._services:
            service.register(self._server)
            names.extend(service.names)
        reflection.enable_server_reflection(names, self._server)
        self._served = [n for s in self._services for n in s.names]
        self.port: int | None = None
        self._metrics_http: metrics.WSGIServer | None = None

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the server stopped accepting calls (close pools, stop workers)."""
        self._on_stop.append(callback)

    def start(self) -> int:
        credentials = server_credentials(self.settings)
        if credentials is None:
            self.port = self._server.add_insecure_port(self.settings.bind_address)
        else:
            self.port = self._server.add_secure_port(self.settings.bind_address, credentials)
        if self.port == 0:
            raise RuntimeError(f"cannot bind {self.settings.bind_address}")
        if self.settings.metrics_port:
            self._metrics_http = metrics.start_http(self.settings.metrics_port, self.settings.host)
            log.info(
                "event=metrics server=%s address=%s:%d path=/metrics",
                self.name,
                self.settings.host,
                self.settings.metrics_port,
            )
        self._set_status(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._server.start()
        log.info(
            "event=started server=%s address=%s:%d tls=%s client_certificates=%s",
            self.name,
            self.settings.host,
            self.port,
            credentials is not None,
            bool(self.settings.tls_client_ca),
        )
        return self.port

    def set_serving(self) -> None:
        self._set_status(health_pb2.HealthCheckResponse.SERVING)
        log.info("event=serving server=%s port=%s", self.name, self.port)

    def set_not_serving(self) -> None:
        self._set_status(health_pb2.HealthCheckResponse.NOT_SERVING)

    def _set_status(self, status) -> None:
        self.health.set("", status)
        for name in self._served:
            self.health.set(name, status)

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, give in-flight calls ``grace`` seconds, then run stop callbacks."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.grace_seconds if grace is None else grace
        log.info("event=stopping server=%s grace=%.1fs", self.name, grace)
        # No health.enter_graceful_shutdown() here: it sends NOT_SERVING to every Watch stream
        # while holding the health servicer's lock, and a watcher that disconnects meanwhile makes
        # grpc's polling thread wait for that lock: with hundreds of watchers the stop hung
        # (tests/unit/common/test_server.py flood test). Stopping ends the watch streams instead.
        self._server.stop(grace).wait()
        if self._metrics_http is not None:
            metrics.stop_http(self._metrics_http)
        for callback in reversed(self._on_stop):
            try:
                callback()
            except Exception:  # noqa: BLE001 - shutdown continues
                log.exception("event=stop_callback_failed server=%s", self.name)
        log.info("event=stopped server=%s", self.name)

    def wait(self) -> None:
        self._stopped.wait()
        self._server.wait_for_termination()

    def serve_forever(self) -> None:
        """Block until SIGTERM/SIGINT, then stop gracefully. For ``main()`` only."""
        stop_requested = threading.Event()

        def handle(signum, _frame):
            log.info("event=signal signal=%s", signal.Signals(signum).name)
            stop_requested.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        stop_requested.wait()
        self.stop()
