"""The shared server runtime: health, reflection, error mapping, token auth, probe, settings."""

from __future__ import annotations

import argparse
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lesslabels.common import config, errors
from lesslabels.common.channels import make_channel, wait_until_serving
from lesslabels.common.probe import main as probe_main
from lesslabels.common.server import Server, ServiceRegistration
from tests.helpers import server_settings_for_tests

# A tiny generic service to exercise the runtime without any real servicer.
SERVICE = "lesslabels.test.Echo"


def _echo_registration(behaviour):
    def unary(request: bytes, context):
        return behaviour(request)

    def stream(request: bytes, context):
        yield b"first"
        yield behaviour(request)

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }

    def register(server):
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    return ServiceRegistration(names=(SERVICE,), register=register)


def _raise(exc):
    def behaviour(request):
        raise exc

    return behaviour


@pytest.fixture
def server_factory():
    started = []

    def start(behaviour=lambda r: r, serving=True, **settings):
        server = Server(server_settings_for_tests(**settings), [_echo_registration(behaviour)], name="test")
        port = server.start()
        if serving:
            server.set_serving()
        started.append(server)
        return server, f"127.0.0.1:{port}"

    yield start
    for server in started:
        server.stop(0)


def _unary(channel, payload=b"x", **kw):
    return channel.unary_unary(f"/{SERVICE}/Unary")(payload, timeout=5, **kw)


def _stream(channel, payload=b"x"):
    return list(channel.unary_stream(f"/{SERVICE}/Stream")(payload, timeout=5))


def _health(address, service=""):
    with grpc.insecure_channel(address) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_health_is_not_serving_until_ready(server_factory):
    server, address = server_factory(serving=False)
    assert _health(address) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert _health(address, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
    server.set_serving()
    assert _health(address) == health_pb2.HealthCheckResponse.SERVING
    assert _health(address, SERVICE) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_services(server_factory):
    _, address = server_factory()
    with grpc.insecure_channel(address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


#: Every domain error and the status a caller sees; a new error without a row here fails the test below.
DOMAIN_ERRORS = [
    (errors.InvalidArgument("row 3: empty text"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound("dataset 'x' not found"), grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition("need 2 classes"), grpc.StatusCode.FAILED_PRECONDITION),
    (errors.AlreadyExists("dataset 'x' exists"), grpc.StatusCode.ALREADY_EXISTS),
    (errors.ResourceExhausted("limit 1000 texts"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable("the pool at 127.0.0.1:9 is unreachable"), grpc.StatusCode.UNAVAILABLE),
    # A server's own call to another service ran out of time: its caller's deadline did not pass, and
    # retrying later may work, so the caller sees UNAVAILABLE (DeadlineExceeded is an Unavailable).
    (errors.DeadlineExceeded("the pool did not answer in 30 s"), grpc.StatusCode.UNAVAILABLE),
    (errors.Unauthenticated("a token is required"), grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied("UpdateRun takes the internal token"), grpc.StatusCode.PERMISSION_DENIED),
    (errors.Cancelled("the job was cancelled"), grpc.StatusCode.CANCELLED),
]


def test_every_domain_error_has_a_mapping_test():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    assert {type(exc) for exc, _ in DOMAIN_ERRORS} == set(subclasses(errors.LessLabelsError))


@pytest.mark.parametrize(
    "exc, code",
    [
        *DOMAIN_ERRORS,
        (ZeroDivisionError("boom"), grpc.StatusCode.INTERNAL),
        (
            FileNotFoundError(2, "No such file or directory", "/srv/lesslabels/secret/model.bin"),
            grpc.StatusCode.INTERNAL,
        ),
    ],
)
def test_domain_errors_map_to_status_codes(server_factory, exc, code, caplog):
    _, address = server_factory(_raise(exc))
    with grpc.insecure_channel(address) as ch:
        with pytest.raises(grpc.RpcError) as unary_err:
            _unary(ch)
        with pytest.raises(grpc.RpcError) as stream_err:
            _stream(ch)
    assert unary_err.value.code() == code
    assert stream_err.value.code() == code
    if code == grpc.StatusCode.INTERNAL:
        # The caller learns the type, the log gets the traceback; the text (paths...) stays here.
        assert type(exc).__name__ in unary_err.value.details() and str(exc) not in unary_err.value.details()
        assert "/srv/" not in unary_err.value.details() and "/srv/" not in stream_err.value.details()
        assert any(r.exc_info and r.exc_info[1] is exc for r in caplog.records)
    else:
        assert str(exc) in unary_err.value.details()
    # The server keeps serving after any error.
    assert _health(address) == health_pb2.HealthCheckResponse.SERVING


def test_token_required_except_for_health(server_factory):
    _, address = server_factory(token="s3cret")
    with grpc.insecure_channel(address) as ch:
        with pytest.raises(grpc.RpcError) as err:
            _unary(ch)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            _stream(ch)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with make_channel(address, token="wrong") as ch:
        with pytest.raises(grpc.RpcError) as err:
            _unary(ch)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with make_channel(address, token="s3cret") as ch:
        assert _unary(ch, b"hello") == b"hello"
        assert _stream(ch, b"hello") == [b"first", b"hello"]
    assert _health(address) == health_pb2.HealthCheckResponse.SERVING


def test_message_size_limit(server_factory):
    _, address = server_factory(max_message_bytes=1024)
    with grpc.insecure_channel(address) as ch:
        with pytest.raises(grpc.RpcError) as err:
            _unary(ch, b"x" * 4096)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_graceful_stop_lets_inflight_call_finish(server_factory):
    release = threading.Event()

    def slow(request):
        release.wait(5)
        return b"done"

    server, address = server_factory(slow)
    result = {}
    with grpc.insecure_channel(address) as ch:
        t = threading.Thread(target=lambda: result.setdefault("r", _unary(ch)))
        t.start()
        threading.Timer(0.3, release.set).start()
        import time

        time.sleep(0.1)
        server.stop(grace=5)
        t.join(5)
    assert result.get("r") == b"done"


def test_probe_command(server_factory, capsys):
    server, address = server_factory(serving=False)
    assert probe_main([address, "--timeout", "2"]) == 1
    server.set_serving()
    assert probe_main([address, "--timeout", "2"]) == 0
    assert "SERVING" in capsys.readouterr().out
    assert probe_main(["127.0.0.1:1", "--timeout", "0.5"]) == 1


def test_wait_until_serving_waits_then_gives_up(server_factory):
    server, address = server_factory(serving=False)
    threading.Timer(0.5, server.set_serving).start()
    wait_until_serving(address, timeout=10)
    with pytest.raises(errors.Unavailable, match="not serving"):
        wait_until_serving("127.0.0.1:1", timeout=1)


def test_wait_until_serving_one_of_several_replicas_is_enough(server_factory):
    """A dead replica listed first does not hold up a dependant: the first SERVING one is returned."""
    _server, address = server_factory(serving=True)
    assert wait_until_serving(["127.0.0.1:1", address], timeout=10) == address
    with pytest.raises(errors.Unavailable, match=r"none of 2 replicas serving.*127\.0\.0\.1:1: .*127\.0\.0\.1:9: "):
        wait_until_serving(["127.0.0.1:1", "127.0.0.1:9"], timeout=1)


def test_retry_on_unavailable_for_idempotent_calls():
    # A health Check (idempotent) issued before the server exists succeeds once it starts, with wait_for_ready.
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = Server(server_settings_for_tests(port=port), [], name="late")
    threading.Timer(0.5, lambda: (server.start(), server.set_serving())).start()
    try:
        with make_channel(f"127.0.0.1:{port}") as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=10, wait_for_ready=True
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(0)


def test_a_target_of_several_addresses_spreads_calls_over_them():
    """Channels balance round robin: a name resolving to several replicas reaches all of them."""
    from concurrent import futures

    counts = [0, 0]
    servers, ports = [], []
    for i in range(2):

        def hit(request, context, i=i):
            counts[i] += 1
            return b""

        server = grpc.server(futures.ThreadPoolExecutor(2))
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Count", {"Hit": grpc.unary_unary_rpc_method_handler(hit)}),)
        )
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        server.start()
        servers.append(server)
    try:
        with make_channel(f"ipv4:127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}") as ch:
            call = ch.unary_unary("/test.Count/Hit")
            call(b"", timeout=5, wait_for_ready=True)
            time.sleep(0.5)  # both subchannels connect
            for _ in range(40):
                call(b"", timeout=5, wait_for_ready=True)
        assert min(counts) >= 10, counts  # pick_first would send every call to one server
    finally:
        for server in servers:
            server.stop(0)


def test_flags_fall_back_to_environment(monkeypatch):
    monkeypatch.setenv("LESSLABELS_PORT", "7001")
    monkeypatch.setenv("LESSLABELS_TOKEN", "abc")
    parser = argparse.ArgumentParser()
    config.add_server_flags(parser, default_port=50051)
    settings = config.server_settings(parser.parse_args([]))
    assert (settings.port, settings.token) == (7001, "abc")
    # A flag on the command line wins over the environment.
    assert config.server_settings(parser.parse_args(["--port", "7002"])).port == 7002


def test_bad_environment_value_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("LESSLABELS_PORT", "seventy")
    parser = argparse.ArgumentParser()
    with pytest.raises(SystemExit):
        config.add_server_flags(parser, default_port=50051)
    assert "LESSLABELS_PORT='seventy'" in capsys.readouterr().err


def test_bad_environment_value_of_a_flag_in_an_argument_group_is_a_clear_error(monkeypatch):
    # An argument group has no parser.error(): the message still names the variable.
    monkeypatch.setenv("LESSLABELS_TIMEOUT", "soon")
    group = argparse.ArgumentParser().add_argument_group("calls")
    with pytest.raises(SystemExit, match="LESSLABELS_TIMEOUT='soon'"):
        config.add_flag(group, "--timeout", default=30.0, type=float)


@pytest.mark.slow
def test_idle_stream_with_client_keepalive_is_not_dropped(server_factory):
    # A stream idle through several client keepalive pings must not get GOAWAY "Too many pings"
    # (the gRPC default tolerates one ping per 5 minutes and 2 strikes; ours allows one per 10 s).
    release = threading.Event()

    def slow(request):
        release.wait(60)
        return b"late"

    _, address = server_factory(slow)
    options = [
        ("grpc.keepalive_time_ms", 10_500),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    with grpc.insecure_channel(address, options=options) as ch:
        threading.Timer(36.0, release.set).start()
        assert list(ch.unary_stream(f"/{SERVICE}/Stream")(b"x", timeout=60)) == [b"first", b"late"]


def _flood(address: str, token: str, holds: int, watches: int, release: threading.Event):
    """Open ``holds`` authenticated response streams (each waits for ``release``) and ``watches``
    unauthenticated health Watch streams, over several channels; return calls and channels."""
    channels = [grpc.insecure_channel(address) for _ in range(max(1, (holds + watches) // 50))]
    auth = (("authorization", f"Bearer {token}"),)
    calls = []
    for i in range(holds):
        call = channels[i % len(channels)].unary_stream(f"/{SERVICE}/Stream")(b"x", timeout=60, metadata=auth)
        assert next(call) == b"first"  # admitted: its handler runs in a thread of its own
        calls.append(call)
    for i in range(watches):
        call = health_pb2_grpc.HealthStub(channels[i % len(channels)]).Watch(
            health_pb2.HealthCheckRequest(), timeout=60
        )
        assert next(call).status == health_pb2.HealthCheckResponse.SERVING
        calls.append(call)
    return calls, channels


@pytest.mark.parametrize("holds,watches", [(500, 500)])
def test_idle_streams_do_not_starve_unary_calls(server_factory, holds, watches):
    """500 idle authenticated streams and 500 unauthenticated health watches: unary calls and
    health checks still answer within a second; one stream past the budget is RESOURCE_EXHAUSTED."""
    release = threading.Event()

    def hold(request):  # streams (payload b"x") wait; unary pings answer at once
        if request == b"x":
            release.wait(60)
        return request

    _, address = server_factory(hold, token="s3cret", workers=4, max_streams=holds)
    calls, channels = _flood(address, "s3cret", holds, watches, release)
    try:
        auth = (("authorization", "Bearer s3cret"),)
        with grpc.insecure_channel(address) as ch:
            for _ in range(5):
                assert ch.unary_unary(f"/{SERVICE}/Unary")(b"ping", timeout=1.0, metadata=auth) == b"ping"
                assert (
                    health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1.0).status
                    == health_pb2.HealthCheckResponse.SERVING
                )
            extra = ch.unary_stream(f"/{SERVICE}/Stream")(b"x", timeout=5, metadata=auth)
            with pytest.raises(grpc.RpcError) as info:
                next(extra)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-streams" in info.value.details()
    finally:
        release.set()
        for call in calls:
            call.cancel()
        for channel in channels:
            channel.close()


def test_stream_slot_is_freed_when_a_stream_ends(server_factory):
    release = threading.Event()

    def hold(request):
        release.wait(30)
        return request

    _, address = server_factory(hold, workers=2, max_streams=2)
    with grpc.insecure_channel(address) as ch:
        method = ch.unary_stream(f"/{SERVICE}/Stream")
        first, second = method(b"a", timeout=30), method(b"b", timeout=30)
        assert next(first) == b"first" and next(second) == b"first"
        with pytest.raises(grpc.RpcError) as info:
            next(method(b"c", timeout=5))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        release.set()
        assert list(first) == [b"a"] and list(second) == [b"b"]
        assert list(method(b"d", timeout=5)) == [b"first", b"d"]


def test_bad_stream_budget_is_refused(monkeypatch):
    parser = argparse.ArgumentParser()
    config.add_server_flags(parser, default_port=0)
    with pytest.raises(SystemExit, match="--max-streams"):
        config.server_settings(parser.parse_args(["--max-streams", "0"]))


def test_a_client_stream_cancelled_by_its_caller_is_no_internal_error(caplog):
    """A request stream whose caller cancelled raises grpc.RpcError inside the handler: logged as
    CANCELLED, not as an unexpected INTERNAL error with a traceback."""
    reading, cancelled = threading.Event(), threading.Event()

    def upload(request_iterator, context):
        requests = iter(request_iterator)
        next(requests)
        reading.set()
        # Read on only once the caller has cancelled and the server has seen it, so that the next
        # read meets the cancellation (a read racing it may instead just end the stream).
        cancelled.wait(5)
        deadline = time.monotonic() + 5
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in requests:
            pass
        return b"done"

    def register(server):
        handlers = {"Upload": grpc.stream_unary_rpc_method_handler(upload)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    server = Server(server_settings_for_tests(), [ServiceRegistration(names=(SERVICE,), register=register)])
    port = server.start()
    release = threading.Event()

    def requests():
        yield b"first"
        release.wait(10)

    try:
        with caplog.at_level("INFO", logger="lesslabels.common.server"):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                call = ch.stream_unary(f"/{SERVICE}/Upload").future(requests(), timeout=10)
                assert reading.wait(5)
                call.cancel()
                cancelled.set()
                deadline = time.monotonic() + 5
                while "status=CANCELLED" not in caplog.text and time.monotonic() < deadline:
                    time.sleep(0.05)
            release.set()
        assert f"rpc=/{SERVICE}/Upload status=CANCELLED" in caplog.text
        assert "INTERNAL" not in caplog.text
    finally:
        release.set()
        server.stop(0)
