"""Traces (lesslabels.common.tracing): configured by the OTEL_* variables or not at all, spans of a
call on both sides of a channel linked by the traceparent metadata, trace ids in log lines."""

from __future__ import annotations

import io
import logging

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lesslabels.common import tracing
from lesslabels.common.channels import make_channel
from lesslabels.common.logs import log_handler
from lesslabels.common.server import Server, ServiceRegistration
from tests.helpers import server_settings_for_tests
from tests.stack import wait_for

SERVICE = "lesslabels.test.Traced"


@pytest.fixture
def no_otel_variables(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def spans():
    """Tracing on in this process, spans kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)
    provider.shutdown()


def _registration(seen: list):
    """A service whose handlers record the metadata each call arrived with."""

    def unary(request: bytes, context):
        seen.append(dict(context.invocation_metadata()))
        if request == b"missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        if request == b"boom":
            raise RuntimeError("unexpected")  # INTERNAL, by the server's error interceptor
        return request

    def stream(request: bytes, context):
        seen.append(dict(context.invocation_metadata()))
        for _ in range(1000):
            yield b"page"
            if not context.is_active():
                return

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }

    def register(server):
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    return ServiceRegistration(names=(SERVICE,), register=register)


@pytest.fixture
def served():
    """Start a server (built now, so with tracing as it is now); yields a factory -> (address, seen)."""
    servers = []

    def start():
        seen: list[dict] = []
        server = Server(server_settings_for_tests(), [_registration(seen)], name="test")
        port = server.start()
        server.set_serving()
        servers.append(server)
        return f"127.0.0.1:{port}", seen

    yield start
    for server in servers:
        server.stop(0)


# -- configuration by the OTEL_* variables ----------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_RESOURCE_ATTRIBUTES": "a=b"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ["otlp"]),
    ],
)
def test_exporters_follow_the_standard_variables(environ, expected):
    assert tracing.exporter_names(environ) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            "OTEL_EXPORTER_OTLP_PROTOCOL='http/protobuf'",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/json'",
        ),
    ],
)
def test_a_variable_lesslabels_cannot_honour_is_named(environ, message):
    with pytest.raises(ValueError, match=message.replace("/", ".")):
        tracing.exporter_names(environ)


def test_a_bad_variable_ends_the_service_at_start_with_its_name(no_otel_variables, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(SystemExit, match="lesslabels scorer: OTEL_TRACES_EXPORTER='jaeger'"):
        tracing.configure("scorer")
    assert not tracing.enabled()


def test_without_otel_variables_tracing_stays_off(no_otel_variables, served):
    assert tracing.from_environment("pool") is None
    assert tracing.configure("pool") is False
    assert not tracing.enabled()
    assert tracing.server_interceptors() == [] and tracing.client_interceptors() == []
    with tracing.span("step SCORE", {"lesslabels.run_id": 1}) as span:
        assert span is None
    # A server and a channel built now add nothing to a call, even one made inside someone's span.
    address, seen = served()
    own = TracerProvider()
    with own.get_tracer("test").start_as_current_span("caller"), make_channel(address) as channel:
        assert channel.unary_unary(f"/{SERVICE}/Unary")(b"x", timeout=5) == b"x"
    assert "traceparent" not in seen[0]
    own.shutdown()


def test_the_service_name_defaults_to_lesslabels_service(no_otel_variables, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = tracing.from_environment("scorer")
    assert provider is not None and provider.resource.attributes["service.name"] == "lesslabels-scorer"
    provider.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "scorer-eu-1")
    provider = tracing.from_environment("scorer")
    assert provider is not None and provider.resource.attributes["service.name"] == "scorer-eu-1"
    provider.shutdown()


def test_an_otlp_endpoint_configures_the_otlp_exporter(no_otel_variables, monkeypatch):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    provider = tracing.from_environment("pool")
    assert provider is not None
    processors = provider._active_span_processor._span_processors  # noqa: SLF001 - what was configured
    exporters = [type(p.span_exporter) for p in processors]  # type: ignore[attr-defined]
    assert exporters == [OTLPSpanExporter]
    provider.shutdown()


# -- spans across a channel -----------------------------------------------------------------------


def test_a_call_is_a_client_span_and_a_server_span_of_one_trace(spans, served):
    address, seen = served()
    with tracing.span("step SCORE", {"lesslabels.run_id": 7, "lesslabels.round": 2}) as step:
        with make_channel(address, token="") as channel:
            assert channel.unary_unary(f"/{SERVICE}/Unary")(b"x", timeout=5) == b"x"
    assert seen[0]["traceparent"].split("-")[1] == f"{step.get_span_context().trace_id:032x}"
    by_kind = {s.kind: s for s in spans.get_finished_spans()}
    client, server, internal = by_kind[SpanKind.CLIENT], by_kind[SpanKind.SERVER], by_kind[SpanKind.INTERNAL]
    assert internal.name == "step SCORE" and internal.attributes["lesslabels.round"] == 2
    assert client.name == server.name == f"/{SERVICE}/Unary"
    assert {client.context.trace_id, server.context.trace_id} == {internal.context.trace_id}
    assert client.parent.span_id == internal.context.span_id
    assert server.parent.span_id == client.context.span_id
    assert client.attributes["rpc.grpc.status_code"] == 0


@pytest.mark.parametrize(
    ("payload", "code", "server_status"),
    [
        # The caller's mistake: an error of the client span, not of the server's (OpenTelemetry's rule).
        (b"missing", grpc.StatusCode.NOT_FOUND, StatusCode.UNSET),
        (b"boom", grpc.StatusCode.INTERNAL, StatusCode.ERROR),
    ],
)
def test_a_failed_call_records_its_code_on_both_spans(spans, served, payload, code, server_status):
    address, _ = served()
    with make_channel(address) as channel, pytest.raises(grpc.RpcError):
        channel.unary_unary(f"/{SERVICE}/Unary")(payload, timeout=5)
    by_kind = {s.kind: s for s in spans.get_finished_spans()}
    assert by_kind[SpanKind.CLIENT].status.status_code == StatusCode.ERROR
    assert by_kind[SpanKind.SERVER].status.status_code == server_status
    for kind in (SpanKind.CLIENT, SpanKind.SERVER):
        assert by_kind[kind].attributes["rpc.grpc.status_code"] == code.value[0]


def test_a_traced_stream_can_still_be_cancelled_and_its_span_ends(spans, served):
    address, seen = served()
    with make_channel(address, token="t") as channel:
        call = channel.unary_stream(f"/{SERVICE}/Stream")(b"x", timeout=5)
        assert next(call) == b"page"
        call.cancel()  # as the scorer stops a pool read when its own caller goes away
        assert call.code() == grpc.StatusCode.CANCELLED
    assert seen[0]["authorization"] == "Bearer t" and "traceparent" in seen[0]
    client = wait_for(lambda: [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT], 5)
    assert client[0].attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]


def test_health_checks_are_not_traced(spans, served):
    from lesslabels.common.channels import wait_until_serving

    address, _ = served()
    wait_until_serving(address, timeout=5)
    assert spans.get_finished_spans() == ()


def test_an_expected_exception_ends_a_span_without_an_error(spans):
    class Pause(Exception):
        pass

    with pytest.raises(Pause), tracing.span("step LABEL", {}, expected=(Pause,)):
        raise Pause
    with pytest.raises(KeyError), tracing.span("step TRAIN", {}, expected=(Pause,)):
        raise KeyError("job")
    label, train = spans.get_finished_spans()
    assert label.status.status_code == StatusCode.UNSET and label.attributes["lesslabels.outcome"] == "Pause"
    assert train.status.status_code == StatusCode.ERROR and train.events[0].name == "exception"


# -- trace ids in log lines -------------------------------------------------------------------------


def _logged(run) -> str:
    stream = io.StringIO()
    logger = logging.getLogger("lesslabels.test.tracing")
    handler = log_handler("coordinator", stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        run(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_log_line_inside_a_span_carries_its_trace_and_span_ids(spans):
    def run(logger):
        with tracing.span("step SCORE", {}) as step:
            logger.info("event=inside")
            context = step.get_span_context()
            ids.update(trace=f"{context.trace_id:032x}", span=f"{context.span_id:016x}")
        logger.info("event=outside")

    ids: dict[str, str] = {}
    inside, outside = _logged(run).splitlines()
    assert f"service=coordinator logger=lesslabels.test.tracing trace_id={ids['trace']} span_id={ids['span']}" in inside
    assert inside.endswith("event=inside")
    assert "trace_id=0 span_id=0 event=outside" in outside


def test_log_lines_carry_trace_id_0_with_tracing_off(no_otel_variables):
    line = _logged(lambda logger: logger.info("event=plain"))
    assert "trace_id=0 span_id=0 event=plain" in line
