"""OpenTelemetry traces: one configuration for every service, from the standard ``OTEL_*`` variables.

Off unless asked. With neither ``OTEL_TRACES_EXPORTER`` nor ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, ``configure`` installs nothing: servers and channels
get no tracing interceptor and ``span`` is a null context manager.

When on (``configure`` in each service's ``main()``):

- every gRPC server (``lesslabels.common.server.Server``) gets the server interceptor of
  opentelemetry-instrumentation-grpc: a SERVER span per call, child of the caller's span when the
  call carries W3C ``traceparent`` metadata;
- every channel of ``lesslabels.common.channels.make_channel`` gets ``ClientInterceptor``: a CLIENT
  span per call, sent on as ``traceparent``. Not the library's client interceptor: its channel
  hands back a response stream as a plain generator, without the ``cancel()`` the scorer uses to
  stop a pool read when its own caller goes away;
- spans go in batches to an OTLP exporter (gRPC; ``OTEL_EXPORTER_OTLP_*`` configure it: endpoint,
  headers, certificate, timeout), or to standard output with ``OTEL_TRACES_EXPORTER=console``;
  ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*`` and ``OTEL_RESOURCE_ATTRIBUTES`` as the SDK reads them;
  the service name is ``OTEL_SERVICE_NAME``, else ``lesslabels-<service>``.

The health service is not traced (probes every few seconds would drown the traces). Log lines carry
the current trace and span ids whether tracing is on or not (``lesslabels.common.logs``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace.status import Status, StatusCode

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

#: Values of ``OTEL_TRACES_EXPORTER`` lesslabels understands ("none" turns tracing off).
EXPORTERS = ("otlp", "console")
#: The OTLP protocol of the exporter installed with lesslabels.
OTLP_PROTOCOL = "grpc"
_HEALTH_PREFIX = "/grpc.health.v1.Health/"

_provider: TracerProvider | None = None


def enabled() -> bool:
    """Whether spans are recorded in this process (``configure`` or ``install`` set a provider)."""
    return _provider is not None


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The exporters ``environ`` asks for: ``OTEL_TRACES_EXPORTER`` (comma-separated; "none" alone or
    ``OTEL_SDK_DISABLED=true``: none), else otlp when an OTLP endpoint is set, else none. Raises
    ValueError for a value lesslabels cannot honour, naming the variable."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        endpoints = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
        names = ["otlp"] if any(environ.get(v, "").strip() for v in endpoints) else []
    unknown = [n for n in names if n not in (*EXPORTERS, "none")]
    if unknown:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER={environ['OTEL_TRACES_EXPORTER']!r}: lesslabels exports traces with "
            f"{' or '.join(EXPORTERS)} (or none), not {', '.join(unknown)}"
        )
    names = [n for n in names if n != "none"]
    if "otlp" in names:
        for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = environ.get(variable, "").strip()
            if protocol:
                if protocol != OTLP_PROTOCOL:
                    raise ValueError(
                        f"{variable}={protocol!r}: lesslabels sends OTLP over {OTLP_PROTOCOL} only "
                        "(a collector's port 4317); unset it or set it to grpc"
                    )
                break
    return list(dict.fromkeys(names))


def from_environment(service: str, environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A tracer provider with the exporters the ``OTEL_*`` variables ask for, or None (tracing off).
    Not installed: ``configure`` does that."""
    environ = os.environ if environ is None else environ
    names = exporter_names(environ)
    if not names:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"lesslabels-{service}"}))
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER; flushed at exit
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_EXPORTER_OTLP_*
        else:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider


def configure(service: str) -> bool:
    """Trace this process as ``service`` if the ``OTEL_*`` variables ask for it; for ``main()``,
    before servers and channels are built. Returns whether tracing is on; a variable it cannot
    honour ends the process with a message naming it."""
    try:
        provider = from_environment(service)
    except ValueError as exc:
        raise SystemExit(f"lesslabels {service}: {exc}") from None
    if provider is None:
        return False
    install(provider)
    trace.set_tracer_provider(provider)  # for any other OpenTelemetry instrumentation in the process
    log.info(
        "event=tracing service_name=%s exporters=%s",
        provider.resource.attributes.get("service.name"),
        ",".join(exporter_names(os.environ)),
    )
    return True


def install(provider: TracerProvider | None) -> None:
    """Record spans with ``provider`` from now on (None: stop). Servers and channels built before
    keep what they had. Tests install a provider with an in-memory exporter."""
    global _provider
    _provider = provider


def tracer() -> trace.Tracer:
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer("lesslabels")


def current() -> Context | None:
    """The context of the span current here, to continue in another thread (``span(parent=...)``);
    None when tracing is off."""
    return None if _provider is None else otel_context.get_current()


@contextlib.contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any],
    *,
    expected: tuple[type[BaseException], ...] = (),
    parent: Context | None = None,
) -> Iterator[trace.Span | None]:
    """A span around a block, current inside it (calls made there are its children), a child of the
    current span or of ``parent`` (``current()`` in another thread); None and no span when tracing is
    off. An exception leaving the block marks the span an error, unless it is one of ``expected``
    (control flow, such as a pause): then only its name is recorded, as ``lesslabels.outcome``."""
    if _provider is None:
        yield None
        return
    with tracer().start_as_current_span(
        name, context=parent, attributes=dict(attributes), record_exception=False, set_status_on_exception=False
    ) as opened:
        try:
            yield opened
        except expected as exc:
            opened.set_attribute("lesslabels.outcome", type(exc).__name__)
            raise
        except BaseException as exc:
            opened.record_exception(exc)
            opened.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise


def server_interceptors() -> list[grpc.ServerInterceptor]:
    """The interceptor that traces a server's calls, first of all (so the others' log lines carry
    its trace id); none when tracing is off."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import filters, server_interceptor

    return [server_interceptor(tracer_provider=_provider, filter_=filters.negate(filters.health_check()))]


def client_interceptors() -> list[ClientInterceptor]:
    """The interceptor that traces a channel's calls; none when tracing is off."""
    return [] if _provider is None else [ClientInterceptor(tracer())]


class ClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """A CLIENT span per call, child of the current span, ended when the call ends (a response
    stream: at its last message, or when cancelled), with the call's status code; its context goes
    to the server as ``traceparent`` metadata. The call object is handed back unchanged, so
    streams keep ``cancel()``."""

    def __init__(self, tracer: trace.Tracer):
        self._tracer = tracer

    def _intercept(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        method = details.method
        if method.startswith(_HEALTH_PREFIX):
            return continuation(details, request)
        service, _, name = method.lstrip("/").rpartition("/")
        span = self._tracer.start_span(
            method,
            kind=trace.SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        metadata = (*(details.metadata or ()), *carrier.items())
        try:
            call = continuation(_with_metadata(details, metadata), request)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.end()
            raise
        call.add_done_callback(lambda done: _end(span, done))
        return call

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return self._intercept(continuation, client_call_details, request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return self._intercept(continuation, client_call_details, request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return self._intercept(continuation, client_call_details, request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return self._intercept(continuation, client_call_details, request_iterator)


def _end(span: trace.Span, call: Any) -> None:
    try:
        code = call.code()
    except Exception:  # noqa: BLE001 - a call that cannot say: recorded as unknown
        code = grpc.StatusCode.UNKNOWN
    if isinstance(code, grpc.StatusCode):
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code != grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, f"{code.name}: {call.details() or ''}"))
    span.end()


class _Details(grpc.ClientCallDetails):
    def __init__(self, base: Any, metadata: tuple[tuple[str, str | bytes], ...]):
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


def _with_metadata(details: Any, metadata: tuple[tuple[str, str | bytes], ...]) -> Any:
    return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)
