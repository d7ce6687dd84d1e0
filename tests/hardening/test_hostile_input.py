"""Bad input gets a clear status, never INTERNAL: each case below answered INTERNAL
before, against the real servers."""

from __future__ import annotations

import grpc
import pytest

from lesslabels.common import errors
from lesslabels.v1 import common_pb2, pool_pb2, run_pb2, run_store_pb2, scorer_pb2, scorer_pb2_grpc
from lesslabels.common.channels import make_channel
from tests.helpers import import_bytes, server_settings_for_tests
from tests.stack import load_toy_dataset


def _refused(call, code=grpc.StatusCode.INVALID_ARGUMENT) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details()


def _run(stub) -> int:
    config = run_pb2.RunConfig(dataset="toy", strategy=run_pb2.STRATEGY_ENTROPY)
    return stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=10).id


def test_a_recorded_step_with_an_unknown_strategy_value(pool_address, stub):
    load_toy_dataset(pool_address)
    run_id = _run(stub)
    sample = next(iter(stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="toy"), timeout=10))).samples[0]
    request = run_store_pb2.RecordStepRequest(
        run_id=run_id,
        expected_step=run_pb2.RUN_STEP_SEED,
        acquisitions=[run_pb2.Acquisition(sample_id=sample.id, strategy=99)],
    )
    message = _refused(lambda: stub.RecordStep(request, timeout=10))
    assert f"acquisition of sample {sample.id}: strategy: unknown value 99" in message
    assert stub.ListAcquisitions(run_store_pb2.ListAcquisitionsRequest(run_id=run_id), timeout=10).acquisitions == []


@pytest.mark.parametrize("token", ["²", "9" * 25, "-1", " 5", "1e3"])
def test_list_samples_with_a_bad_page_token(pool_address, stub, token):
    load_toy_dataset(pool_address)
    request = pool_pb2.ListSamplesRequest(dataset="toy", page_token=token)
    message = _refused(lambda: list(stub.ListSamples(request, timeout=10)))
    assert message.startswith("invalid page_token")


def test_the_largest_page_token_is_an_empty_page(pool_address, stub):
    load_toy_dataset(pool_address)
    request = pool_pb2.ListSamplesRequest(dataset="toy", page_token=str(2**63 - 1))
    assert [s for page in stub.ListSamples(request, timeout=10) for s in page.samples] == []


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b', "label": "a"}\n', "JSON nested too deeply"),
        (b'{"text": "caf\\ud800 au lait", "label": "a"}\n', "the text holds a lone surrogate"),
        (b'{"text": "fine", "label": "\\udfff"}\n', "the label holds a lone surrogate"),
        (b'{"text": "fine", "label": "' + b"L" * 200 + b'"}\n', "is longer than 128 characters"),
    ],
    ids=["deep-nesting", "surrogate-text", "surrogate-label", "long-label"],
)
def test_jsonl_import_refuses_what_no_database_can_store(pool_address, stub, data, message):
    details = _refused(lambda: import_bytes(pool_address, "hostile", data, fmt=pool_pb2.IMPORT_FORMAT_JSONL))
    assert message in details and len(details) < 300
    assert "hostile" not in [d.name for d in stub.ListDatasets(pool_pb2.ListDatasetsRequest(), timeout=10).datasets]


def test_over_long_annotator_and_idempotency_key_are_refused(pool_address, stub):
    load_toy_dataset(pool_address)
    sample = next(iter(stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="toy"), timeout=10))).samples[0]

    def submit(**kw):
        request = pool_pb2.SubmitLabelsRequest(
            dataset="toy", labels=[pool_pb2.LabelAssignment(sample_id=sample.id, label="flight")], **kw
        )
        return stub.SubmitLabels(request, timeout=10)

    assert "annotator is 129 characters; at most 128" in _refused(lambda: submit(annotator="a" * 129))
    assert "idempotency_key is 201 characters; at most 200" in _refused(lambda: submit(idempotency_key="k" * 201))
    history = stub.GetLabelHistory(pool_pb2.GetLabelHistoryRequest(dataset="toy", sample_id=sample.id), timeout=10)
    assert history.events == []
    assert submit(annotator="a" * 128, idempotency_key="k" * 200).recorded == 1


def test_over_long_round_ids_are_refused(pool_address, stub):
    load_toy_dataset(pool_address)
    run_id = _run(stub)
    round_ = run_pb2.Round(run_id=run_id, index=0, checkpoint_id="c" * 129)
    assert "checkpoint_id is 129 characters; at most 128" in _refused(lambda: stub.PutRound(round_, timeout=10))


def test_errors_quote_only_a_short_prefix_of_a_huge_value(pool_address, stub):
    huge = "x" * 100_000
    message = _refused(
        lambda: stub.GetDataset(pool_pb2.GetDatasetRequest(name=huge), timeout=10), grpc.StatusCode.NOT_FOUND
    )
    assert "100000 characters" in message and len(message) < 200
    assert errors.quote("short") == "'short'"
    assert errors.quote(huge).startswith("'xxx") and len(errors.quote(huge)) < 120


@pytest.fixture
def scorer_address(tmp_path):
    from lesslabels.scorer.main import build_server

    server = build_server(server_settings_for_tests(), str(tmp_path / "checkpoints"), "")
    server.start()
    server.set_serving()
    yield f"127.0.0.1:{server.port}"
    server.stop(0)


@pytest.mark.parametrize(
    "checkpoint_id, code",
    [
        ("abc\x00def", grpc.StatusCode.INVALID_ARGUMENT),
        ("c" * 256, grpc.StatusCode.INVALID_ARGUMENT),
        ("c" * 200, grpc.StatusCode.NOT_FOUND),
        ("..\\..", grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["nul", "256-chars", "200-chars", "backslash"],
)
def test_scorer_checkpoint_ids_that_no_folder_can_have(scorer_address, tmp_path, checkpoint_id, code):
    request = scorer_pb2.ScoreRequest(model=common_pb2.ModelRef(checkpoint_id=checkpoint_id), texts=["hello"])
    with make_channel(scorer_address) as channel:
        stub = scorer_pb2_grpc.ScorerServiceStub(channel)
        message = _refused(lambda: stub.Score(request, timeout=30), code)
    assert str(tmp_path) not in message and "ckpt-" not in message and len(message) < 300
