"""The pool service over real gRPC: every RPC, every bad input, idempotent labelling."""

from __future__ import annotations

import csv
import io
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lesslabels.contract import wire
from lesslabels.v1 import common_pb2, pool_pb2, run_pb2, run_store_pb2
from tests.unit.pool.seeding import acquire
from tests.helpers import BOTH_DATABASES, import_bytes, import_rows, pool_stub, submit_labels

ROWS = [("greet", "hello there"), ("bye", "see you"), ("greet", "hi"), ("bye", "farewell"), ("greet", "good morning")]


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def _samples(stub, **kw) -> list[common_pb2.Sample]:
    pages = stub.ListSamples(pool_pb2.ListSamplesRequest(**kw), timeout=10)
    return [s for page in pages for s in page.samples]


def _serving(address):
    with grpc.insecure_channel(address) as ch:
        return (
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status
            == health_pb2.HealthCheckResponse.SERVING
        )


def test_the_pool_process_serves_and_reports_both_services(pool_address):
    """One server, two services: health answers SERVING for the public pool service and the internal
    run store by name, and reflection lists both."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(pool_address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("lesslabels.v1.PoolService", "lesslabels.v1.RunStore"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (answer,) = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(iter([request]), timeout=5)
        listed = {s.name for s in answer.list_services_response.service}
    assert {"lesslabels.v1.PoolService", "lesslabels.v1.RunStore"} <= listed


# -- datasets ---------------------------------------------------------------------------


def test_create_get_list_datasets(stub):
    created = stub.CreateDataset(
        pool_pb2.CreateDatasetRequest(name="intents", description="d", labels=["a", "b"]), timeout=5
    )
    assert (created.name, list(created.labels), created.train_count) == ("intents", ["a", "b"], 0)
    stub.CreateDataset(pool_pb2.CreateDatasetRequest(name="other"), timeout=5)
    assert stub.GetDataset(pool_pb2.GetDatasetRequest(name="intents"), timeout=5).description == "d"
    assert [d.name for d in stub.ListDatasets(pool_pb2.ListDatasetsRequest(), timeout=5).datasets] == [
        "intents",
        "other",
    ]


@pytest.mark.parametrize(
    "request_, code, words",
    [
        (pool_pb2.CreateDatasetRequest(name=""), grpc.StatusCode.INVALID_ARGUMENT, "invalid dataset name"),
        (pool_pb2.CreateDatasetRequest(name="bad name!"), grpc.StatusCode.INVALID_ARGUMENT, "invalid dataset name"),
        (pool_pb2.CreateDatasetRequest(name="x", labels=["a", "a"]), grpc.StatusCode.INVALID_ARGUMENT, "given twice"),
        (pool_pb2.CreateDatasetRequest(name="x", labels=["a", " "]), grpc.StatusCode.INVALID_ARGUMENT, "empty"),
    ],
)
def test_create_dataset_bad_input(stub, request_, code, words):
    err = _code(lambda: stub.CreateDataset(request_, timeout=5))
    assert err.code() == code and words in err.details()
    assert stub.ListDatasets(pool_pb2.ListDatasetsRequest(), timeout=5).datasets == []


def test_duplicate_dataset_is_already_exists(stub):
    stub.CreateDataset(pool_pb2.CreateDatasetRequest(name="x"), timeout=5)
    assert (
        _code(lambda: stub.CreateDataset(pool_pb2.CreateDatasetRequest(name="x"), timeout=5)).code()
        == grpc.StatusCode.ALREADY_EXISTS
    )


def test_unknown_dataset_is_not_found_everywhere(stub, pool_address):
    calls = [
        lambda: stub.GetDataset(pool_pb2.GetDatasetRequest(name="nope"), timeout=5),
        lambda: _samples(stub, dataset="nope"),
        lambda: stub.GetCounts(pool_pb2.GetCountsRequest(dataset="nope"), timeout=5),
        lambda: stub.SubmitLabels(
            pool_pb2.SubmitLabelsRequest(dataset="nope", labels=[pool_pb2.LabelAssignment(sample_id=1, label="a")]),
            timeout=5,
        ),
        lambda: list(stub.ExportLabels(pool_pb2.ExportLabelsRequest(dataset="nope"), timeout=5)),
        lambda: stub.CreateRun(run_store_pb2.CreateRunRequest(config=run_pb2.RunConfig(dataset="nope")), timeout=5),
        lambda: import_bytes(pool_address, "nope", b"greet,hello there\n", create=False),
    ]
    for call in calls:
        err = _code(call)
        assert err.code() == grpc.StatusCode.NOT_FOUND and "nope" in err.details()
    assert _serving(pool_address)


# -- import -----------------------------------------------------------------------------


@BOTH_DATABASES
def test_import_atis_counts_per_label(pool_address, stub, atis_train):
    started = time.monotonic()
    summary = import_bytes(pool_address, "atis", atis_train.read_bytes())
    elapsed = time.monotonic() - started
    assert summary.imported == 4834
    assert summary.format == pool_pb2.IMPORT_FORMAT_CSV_LABEL_TEXT
    expected = {
        "atis_flight": 3666,
        "atis_airfare": 423,
        "atis_ground_service": 255,
        "atis_airline": 157,
        "atis_abbreviation": 147,
        "atis_aircraft": 81,
        "atis_flight_time": 54,
        "atis_quantity": 51,
    }
    assert dict(summary.by_label) == expected
    counts = stub.GetCounts(pool_pb2.GetCountsRequest(dataset="atis"), timeout=5)
    assert dict(counts.train.gold_by_label) == expected and counts.train.total == 4834 and counts.train.labelled == 0
    # Leading spaces of the ATIS texts are stripped; duplicates are stored and reported.
    first = _samples(stub, dataset="atis", limit=1)[0]
    assert first.text == "i want to fly from boston at 838 am and arrive in denver at 1110 in the morning"
    assert summary.duplicate_rows == 335
    assert elapsed < 30, f"import took {elapsed:.1f}s"  # generous: a sanity bound, not a benchmark


@pytest.mark.parametrize(
    "data, fmt, expected",
    [
        (
            b"greet, hello\nbye,see you\n",
            pool_pb2.IMPORT_FORMAT_AUTO,
            [("greet", "hello", "train"), ("bye", "see you", "train")],
        ),
        (b"label,text\ngreet,hello\n", pool_pb2.IMPORT_FORMAT_AUTO, [("greet", "hello", "train")]),
        (b"text\nhello\nworld\n", pool_pb2.IMPORT_FORMAT_AUTO, [("", "hello", "train"), ("", "world", "train")]),
        (
            b'text,label,split\n"hello, you",greet,test\n',
            pool_pb2.IMPORT_FORMAT_CSV_HEADER,
            [("greet", "hello, you", "test")],
        ),
        (
            b'{"text": "hi", "label": "greet"}\n\n{"text": "yo", "split": "dev"}\n',
            pool_pb2.IMPORT_FORMAT_AUTO,
            [("greet", "hi", "train"), ("", "yo", "dev")],
        ),
        (
            "\ufefflabel,text\ngreet,h\u00e9llo\n".encode(),
            pool_pb2.IMPORT_FORMAT_AUTO,
            [("greet", "h\u00e9llo", "train")],
        ),
    ],
)
def test_import_formats(pool_address, stub, data, fmt, expected):
    import_bytes(pool_address, "d", data, fmt=fmt)
    test_gold = {
        s.text: s.gold_label for s in _samples(stub, dataset="d", split=common_pb2.SPLIT_TEST, include_gold=True)
    }
    dev_gold = {
        s.text: s.gold_label for s in _samples(stub, dataset="d", split=common_pb2.SPLIT_DEV, include_gold=True)
    }
    counts = stub.GetCounts(pool_pb2.GetCountsRequest(dataset="d"), timeout=5)
    got = []
    for s in _samples(stub, dataset="d"):
        split = wire.SPLIT_TO_CORE[s.split]
        gold = test_gold.get(s.text, dev_gold.get(s.text))
        got.append((gold, s.text, split))
    # Train-split gold stays hidden: check it through the counts instead.
    for i, (_gold, text, split) in enumerate(got):
        if split == "train":
            got[i] = (expected[i][0], text, split)
    assert got == expected
    assert sum(counts.train.gold_by_label.values()) == counts.train.total


def test_import_in_many_small_chunks(pool_address):
    data = "".join(f"greet,text number {i}\n" for i in range(500)).encode()
    assert import_bytes(pool_address, "d", data, chunk=7).imported == 500


@pytest.mark.parametrize(
    "data, words",
    [
        (b"greet,hello\nbye,   \n", "row 2 (line 2): empty text"),
        (b"greet,hello\nbye," + b"x" * 100_001 + b"\n", "row 2 (line 2): text of 100,001 characters, longer than"),
        (b'{"text": "a"}\n{"text": "' + "é".encode() * 100_001 + b'"}\n', "row 2 (line 2): text of 100,001 characters"),
        (b"greet,hello\nbye\n", "row 2 (line 2): expected 2 fields"),
        (b"greet,hello\nbye,see,you\n", "row 2 (line 2): expected 2 fields"),
        (b'greet,hello\nbye,"unterminated\n', "malformed CSV"),
        (b'{"text": "a"}\n{"text": \n', "row 2 (line 2): invalid JSON"),
        (b'{"text": "a"}\n{"label": "b"}\n', "row 2 (line 2): no 'text' field"),
        (b'{"text": "a"}\n{"text": 5}\n', "row 2 (line 2): text must be a string"),
        (b"label,text,split\ngreet,hi,holdout\n", "unknown split 'holdout'"),
        (b"label,txt\ngreet,hi\n", "no text column among 'label', 'txt'"),
        (b"\xff\xfe bad bytes", "not valid UTF-8"),
        (b"", "empty"),
        (b"label,text\n", "no data rows"),
    ],
)
@BOTH_DATABASES
def test_bad_imports_name_the_row_and_store_nothing(pool_address, stub, data, words):
    import_rows(pool_address, "d", ROWS)
    err = _code(lambda: import_bytes(pool_address, "d", data))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.details()
    assert stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5).train_count == len(ROWS)
    assert _serving(pool_address)


MISREADABLE = [
    # A header of unknown names, read as headerless label,text data, would become a one-text class.
    (
        b"kind,phrase\nweather,what is the weather today\nweather,will it rain\ngreet,hello there\n",
        {},
        "looks like a header",
    ),
    # Headerless with the columns the wrong way round: 4 one-text classes instead of 2.
    (
        b"what is the weather today,weather\nwill it rain tomorrow,weather\nhello there my friend,greet\n"
        b"hi how are you,greet\n",
        {},
        "the columns look swapped",
    ),
    # The same with a header that names them the wrong way round.
    (
        b"label,text\nwhat is the weather today,weather\nwill it rain tomorrow,weather\nhello there friend,greet\n"
        b"hi how are you,greet\n",
        {},
        "the columns look swapped",
    ),
    (b'{"text": "a", "intent": "x", "source": "web"}\n', {}, "keys ['source'] are read as nothing"),
    (b"text,label,source\nhi,greet,web\n", {}, "columns ['source'] are read as nothing"),
    # With the columns named, the message offers only what is left: --ignore-extra.
    (
        b'{"utterance": "a", "tag": "x", "meta": {"by": "me"}}\n',
        {"text_column": "utterance", "label_column": "tag"},
        "keys ['meta'] are read as nothing (read: text='utterance', label='tag'); pass --ignore-extra",
    ),
    (b"text,sentence,label\nhi,hello,greet\n", {}, "could each be the text; choose one with --text-column"),
    (b"body,tag\nhi,greet\n", {"text_column": "content"}, "no column 'content' for the text"),
    (b"greet,hi\n", {"text_column": "x", "fmt": pool_pb2.IMPORT_FORMAT_CSV_LABEL_TEXT}, "add a header line"),
    (b"weather,what is it like\nwether,will it rain\n", {}, "'weather' and 'wether'"),
    (b"weather,what is it like\nWeather,will it rain\n", {}, "near-duplicate of 'weather'"),
    (b"weather,what is it like\n greet ,hi\nGreet,hello\n", {}, "near-duplicate of 'greet'"),
    (b"id,text,label\n7,hi,greet\n7,hello,greet\n", {}, "row 2: id '7' repeats the id of row 1"),
    (b'{"text": "hi", "id": [1]}\n', {}, "id must be a string or an integer"),
    (b'[{"text": "hi", "label": "greet"}]\n', {}, "the file is a JSON array; write one JSON object per line"),
    (b"text,label,\nhi,greet,\nbye,bye,web\n", {}, "row 2 (line 3): a value in unnamed column 3"),
    ("caf\xe9,hi\n".encode("latin-1"), {}, "not valid UTF-8 (byte offset 3); save the file as UTF-8"),
]


@pytest.mark.parametrize("data, header, words", MISREADABLE)
def test_imports_that_would_be_misread_are_refused_and_store_nothing(pool_address, stub, data, header, words):
    import_rows(pool_address, "d", ROWS)
    err = _code(lambda: import_bytes(pool_address, "d", data, **header))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.details()
    dataset = stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5)
    assert dataset.train_count == len(ROWS) and sorted(dataset.labels) == ["bye", "greet"]


def test_header_names_and_column_flags_map_the_columns(pool_address, stub):
    summary = import_bytes(pool_address, "a", b"utterance,intent\nwhat is the weather,weather\nhello there,greet\n")
    assert dict(summary.columns) == {"text": "utterance", "label": "intent"}
    assert dict(summary.by_label) == {"weather": 1, "greet": 1}
    summary = import_bytes(pool_address, "b", b'{"sentence": "hello there", "intent": "greet"}\n')
    assert dict(summary.columns) == {"text": "sentence", "label": "intent"} and dict(summary.by_label) == {"greet": 1}
    summary = import_bytes(
        pool_address,
        "c",
        b"body,tag,ref\nhello there,greet,u-1\nsee you,bye,u-2\n",
        text_column="body",
        label_column="tag",
        id_column="ref",
    )
    assert dict(summary.columns) == {"text": "body", "label": "tag", "id": "ref"}
    assert [s.text for s in _samples(stub, dataset="c")] == ["hello there", "see you"]


def test_ignore_extra_leaves_out_what_no_field_reads_and_names_it(pool_address, stub):
    data = b"text,label,source,score\nhello there,greet,web,0.5\nsee you,bye,app,0.7\n"
    summary = import_bytes(pool_address, "x", data, ignore_extra=True)
    assert dict(summary.columns) == {"text": "text", "label": "label", "ignored": "source, score"}
    assert [s.text for s in _samples(stub, dataset="x")] == ["hello there", "see you"]
    assert dict(summary.by_label) == {"greet": 1, "bye": 1}


def test_empty_unnamed_columns_are_skipped(pool_address):
    summary = import_bytes(pool_address, "d", b"\xef\xbb\xbfText,Label,\r\nhello there,greet,\r\nsee you,bye,\r\n")
    assert dict(summary.by_label) == {"greet": 1, "bye": 1}
    assert dict(summary.columns) == {"text": "Text", "label": "Label"}


def test_tab_and_semicolon_separated_files(pool_address):
    summary = import_bytes(pool_address, "t", b"text\tlabel\nhello, there\tgreet\nsee you\tbye\n")
    assert dict(summary.by_label) == {"greet": 1, "bye": 1} and summary.format == pool_pb2.IMPORT_FORMAT_CSV_HEADER
    summary = import_bytes(pool_address, "s", b"greet;hello there\nbye;see you\n")
    assert dict(summary.by_label) == {"greet": 1, "bye": 1}


def test_label_names_are_normalised_for_whitespace(pool_address, stub):
    summary = import_bytes(pool_address, "d", b'"  weather\t report ",what is it like\nweather report,rain\n')
    assert dict(summary.by_label) == {"weather report": 2}
    assert list(stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5).labels) == ["weather report"]


def test_similar_labels_are_accepted_when_asked_for(pool_address, stub):
    data = b"weather,what is it like\nwether,will it rain\n"
    summary = import_bytes(pool_address, "d", data, allow_similar_labels=True)
    assert dict(summary.by_label) == {"weather": 1, "wether": 1}
    # Near-duplicates of labels already in the dataset are refused too.
    err = _code(lambda: import_bytes(pool_address, "d", b"wheather,is it sunny\n"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "'wheather' and 'weather'" in err.details()


def test_user_ids_are_kept_exported_and_not_repeated(pool_address, stub):
    import_bytes(pool_address, "d", b"id,text,label\nu-1,hello there,greet\nu-2,see you,bye\n")
    err = _code(lambda: import_bytes(pool_address, "d", b"id,text,label\nu-2,again,bye\n"))
    assert (
        err.code() == grpc.StatusCode.INVALID_ARGUMENT and "row 1: id 'u-2' is already in the dataset" in err.details()
    )
    assert stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5).train_count == 2
    train = _samples(stub, dataset="d")
    submit_labels(stub, [(train[0].id, "greet")])
    exported = b"".join(c.data for c in stub.ExportLabels(pool_pb2.ExportLabelsRequest(dataset="d"), timeout=5))
    header, row = exported.decode().splitlines()
    assert header == "label,text,id,sample_id,annotator,labelled_at,label_source"
    assert row.startswith(f"greet,hello there,u-1,{train[0].id},ann,") and row.endswith(",human")


def test_check_only_reports_and_stores_nothing(pool_address, stub):
    data = b"text,label,split\nhello there,greet,train\nsee you,bye,test\nhi,greet,\n"
    summary = import_bytes(pool_address, "fresh", data, check_only=True)
    assert summary.checked_only and summary.imported == 3
    assert dict(summary.by_split) == {"train": 2, "test": 1} and dict(summary.by_label) == {"greet": 2, "bye": 1}
    assert stub.ListDatasets(pool_pb2.ListDatasetsRequest(), timeout=5).datasets == []
    import_rows(pool_address, "d", ROWS)
    assert import_bytes(pool_address, "d", data, check_only=True).imported == 3
    assert stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5).train_count == len(ROWS)
    # A check refuses what the import would refuse.
    err = _code(lambda: import_bytes(pool_address, "d", b"weather,a\nwether,b\n", check_only=True))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


@BOTH_DATABASES
def test_failed_import_into_new_dataset_leaves_no_dataset(pool_address, stub):
    err = _code(lambda: import_bytes(pool_address, "fresh", b"greet,hello\nbye,\n"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.ListDatasets(pool_pb2.ListDatasetsRequest(), timeout=5).datasets == []


def test_label_outside_fixed_label_set(pool_address, stub):
    stub.CreateDataset(pool_pb2.CreateDatasetRequest(name="d", labels=["greet", "bye"]), timeout=5)
    err = _code(lambda: import_bytes(pool_address, "d", b"greet,hi\nshout,HEY\n", create=False))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "row 2" in err.details() and "'shout'" in err.details()
    assert stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5).train_count == 0


def test_duplicates_are_reported_not_dropped(pool_address, stub):
    first = import_rows(pool_address, "d", [("greet", "hi"), ("greet", "hi"), ("bye", "bye")])
    assert first.imported == 3 and first.duplicate_rows == 1
    assert (list(first.duplicates[0].rows), first.duplicates[0].first_row, first.duplicates[0].text) == ([1], 0, "hi")
    second = import_rows(pool_address, "d", [("bye", "bye"), ("greet", "new")])
    assert second.duplicate_rows == 1 and second.duplicates[0].first_row == -1
    assert stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5).train_count == 5


def test_duplicates_report_is_bounded_and_counts_every_row(pool_address, stub, monkeypatch):
    """Re-importing a file repeats every row: the reply names the first 100 texts (in row order,
    though looked up in hash order, a few at a time) with 100 rows each and 200 characters of text,
    duplicate_rows counts them all, and every row is stored."""
    from lesslabels.pool import imports

    monkeypatch.setattr(imports, "_HASHES_PER_QUERY", 7)
    long_text = "x" * 1000
    texts = [("greet", f"hello {i}") for i in range(250)]
    import_rows(pool_address, "d", texts)
    again = import_rows(pool_address, "d", texts + [("greet", "same")] * 302)
    assert again.imported == 552 and again.duplicate_rows == 250 + 301
    assert [d.text for d in again.duplicates] == [f"hello {i}" for i in range(100)]
    assert all(list(d.rows) == [i] and d.first_row == -1 for i, d in enumerate(again.duplicates))
    alone = import_rows(pool_address, "e", [("greet", "same")] * 302 + [("greet", long_text)] * 2)
    assert alone.duplicate_rows == 301 + 1 and len(alone.duplicates) == 2
    assert (alone.duplicates[0].first_row, list(alone.duplicates[0].rows)) == (0, list(range(1, 101)))
    assert alone.duplicates[1].text == long_text[:200]
    assert stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=5).train_count == 802


def test_texts_sharing_a_hash_are_not_duplicates(tmp_path, monkeypatch):
    """The hash only finds candidates: with every text hashed alike, only equal texts are duplicates."""
    from lesslabels.pool import imports
    from lesslabels.pool.store import PoolStore

    store = PoolStore(f"sqlite:///{tmp_path / 'p.db'}")
    monkeypatch.setattr(imports, "text_hash", lambda text: 42)
    store.import_samples("d", b"greet,hi\nbye,bye\n", create_dataset=True)
    result = store.import_samples("d", b"greet,hello\nbye,bye\ngreet,hello\n")
    assert sorted((d.text, d.first_row, list(d.rows)) for d in result.duplicates) == [
        ("bye", -1, [1]),
        ("hello", 0, [2]),
    ]
    assert result.imported == 3


def test_import_protocol_errors(pool_address, stub):
    def call(messages):
        return stub.ImportSamples(iter(messages), timeout=5)

    header = pool_pb2.ImportSamplesRequest(header=pool_pb2.ImportHeader(dataset="d", create_dataset=True))
    data = pool_pb2.ImportSamplesRequest(data=b"greet,hi\n")
    for messages, words in [([], "no header"), ([data, header], "first message"), ([header, header, data], "once")]:
        err = _code(lambda messages=messages: call(messages))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and words in err.details()


def test_import_size_limit(tmp_path):
    from lesslabels.common.server import Server
    from lesslabels.pool.servicer import PoolServicer, registration
    from lesslabels.pool.store import PoolStore
    from tests.helpers import server_settings_for_tests

    store = PoolStore(f"sqlite:///{tmp_path / 'p.db'}")
    server = Server(server_settings_for_tests(), [registration(PoolServicer(store, max_import_bytes=100))])
    port = server.start()
    server.set_serving()
    try:
        err = _code(lambda: import_bytes(f"127.0.0.1:{port}", "d", b"greet,hello\n" * 20, chunk=50))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "100 bytes" in err.details()
    finally:
        server.stop(0)


# -- samples, paging, labels --------------------------------------------------------------


def test_list_samples_pages_and_resumes(pool_address, stub):
    import_rows(pool_address, "d", [("greet", f"t{i}") for i in range(25)])
    pages = list(stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="d", page_size=10), timeout=5))
    assert [len(p.samples) for p in pages] == [10, 10, 5]
    assert pages[0].total == 25 and pages[-1].next_page_token == ""
    resumed = _samples(stub, dataset="d", page_size=10, page_token=pages[0].next_page_token)
    assert [s.text for s in resumed] == [f"t{i}" for i in range(10, 25)]
    assert len(_samples(stub, dataset="d", limit=7, page_size=3)) == 7
    err = _code(lambda: _samples(stub, dataset="d", page_token="abc"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_train_gold_labels_are_never_listed(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    assert all(s.gold_label == "" and s.label == "" for s in _samples(stub, dataset="d"))
    err = _code(lambda: _samples(stub, dataset="d", split=common_pb2.SPLIT_TRAIN, include_gold=True))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "hidden oracle" in err.details()
    import_rows(pool_address, "d", [("greet", "test hi")], split="test")
    assert [s.gold_label for s in _samples(stub, dataset="d", split=common_pb2.SPLIT_TEST, include_gold=True)] == [
        "greet"
    ]


def test_labels_filter_state_and_counts(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    ids = [s.id for s in _samples(stub, dataset="d")]
    reply = submit_labels(stub, [(ids[0], "greet"), (ids[1], "bye")], key="batch-1")
    assert (reply.recorded, reply.unchanged, reply.changed) == (2, 0, 0)
    labelled = _samples(stub, dataset="d", state=pool_pb2.LABEL_STATE_LABELLED)
    assert [(s.id, s.label) for s in labelled] == [(ids[0], "greet"), (ids[1], "bye")]
    assert len(_samples(stub, dataset="d", state=pool_pb2.LABEL_STATE_UNLABELLED)) == 3
    counts = stub.GetCounts(pool_pb2.GetCountsRequest(dataset="d"), timeout=5)
    assert counts.train.labelled == 2 and dict(counts.train.labelled_by_label) == {"greet": 1, "bye": 1}
    # A correction appends an event and replaces the label in force.
    assert submit_labels(stub, [(ids[1], "greet")], key="batch-2").changed == 1
    assert dict(stub.GetCounts(pool_pb2.GetCountsRequest(dataset="d"), timeout=5).train.labelled_by_label) == {
        "greet": 2
    }


@BOTH_DATABASES
def test_same_label_batch_twice_leaves_one_label_per_sample(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    ids = [s.id for s in _samples(stub, dataset="d")]
    batch = [(i, "greet") for i in ids[:3]]
    assert submit_labels(stub, batch, key="k").recorded == 3
    again = submit_labels(stub, batch, key="k")
    assert (again.recorded, again.unchanged) == (0, 3)
    no_key = submit_labels(stub, batch)
    assert (no_key.recorded, no_key.unchanged) == (0, 3)
    assert stub.GetCounts(pool_pb2.GetCountsRequest(dataset="d"), timeout=5).train.labelled == 3
    assert len(_samples(stub, dataset="d", state=pool_pb2.LABEL_STATE_LABELLED)) == 3


def test_concurrent_idempotent_submissions_give_exactly_one_label_each(pool_address, stub, database_url):
    import_rows(pool_address, "d", [("greet", f"text {i}") for i in range(40)])
    ids = [s.id for s in _samples(stub, dataset="d")]
    batch = [(i, "greet") for i in ids]
    results, failures = [], []

    def worker(n):
        try:
            # Half retry the same keyed batch, half send it without a key.
            results.append(submit_labels(pool_stub(pool_address), batch, key="same" if n % 2 else ""))
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert sum(r.recorded for r in results) == len(ids)
    assert sum(r.changed for r in results) == 0
    assert stub.GetCounts(pool_pb2.GetCountsRequest(dataset="d"), timeout=5).train.labelled == len(ids)
    # And in the database itself: one label event and one label in force per sample.
    from sqlalchemy import create_engine, func, select

    from lesslabels.pool.tables import CurrentLabel, LabelEvent

    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(LabelEvent)) == len(ids)
        assert conn.scalar(select(func.count()).select_from(CurrentLabel)) == len(ids)
    engine.dispose()


@pytest.mark.parametrize(
    "labels, words",
    [
        ([(999999, "greet")], "no such sample"),
        ([(None, "")], "empty label"),
        ([(None, "shout")], "not in the dataset's label set"),
        ([(None, "greet"), (None, "bye")], "more than once"),
    ],
)
def test_bad_labels_are_rejected_and_store_nothing(pool_address, stub, labels, words):
    import_rows(pool_address, "d", ROWS)
    first = _samples(stub, dataset="d")[0].id
    labels = [(first if sid is None else sid, label) for sid, label in labels]
    err = _code(lambda: submit_labels(stub, labels))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and words in err.details()
    assert stub.GetCounts(pool_pb2.GetCountsRequest(dataset="d"), timeout=5).train.labelled == 0


def test_export_labelled_set_as_csv(pool_address, stub):
    import_rows(pool_address, "d", [("greet", "hello, friend"), ("bye", 'say "bye"'), ("greet", "hi")])
    ids = [s.id for s in _samples(stub, dataset="d")]
    submit_labels(stub, [(ids[0], "greet"), (ids[1], "bye")])
    data = b"".join(c.data for c in stub.ExportLabels(pool_pb2.ExportLabelsRequest(dataset="d"), timeout=5))
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0] == ["label", "text", "sample_id", "annotator", "labelled_at", "label_source"]
    assert [r[:4] + r[5:] for r in rows[1:]] == [
        ["greet", "hello, friend", str(ids[0]), "ann", "human"],
        ["bye", 'say "bye"', str(ids[1]), "ann", "human"],
    ]
    # The export re-imports as a headered CSV, its provenance columns left out.
    summary = import_bytes(pool_address, "copy", data)
    assert summary.imported == 2 and summary.columns["ignored"] == "sample_id, annotator, labelled_at, label_source"


# -- runs, rounds, acquisitions ---------------------------------------------------------------


def _run(stub, dataset="d"):
    config = run_pb2.RunConfig(dataset=dataset, strategy=run_pb2.STRATEGY_ENTROPY, seed_size=run_pb2.Amount(count=2))
    return stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=5)


@BOTH_DATABASES
def test_create_run_request_id_and_resumed_runs(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    config = run_pb2.RunConfig(dataset="d", seed_size=run_pb2.Amount(count=2))
    first = stub.CreateRun(run_store_pb2.CreateRunRequest(config=config, request_id="k"), timeout=5)
    again = stub.CreateRun(run_store_pb2.CreateRunRequest(config=config, request_id="k"), timeout=5)
    other = stub.CreateRun(run_store_pb2.CreateRunRequest(config=config, request_id="k2"), timeout=5)
    plain = [stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=5) for _ in range(2)]
    assert first.id == again.id and len({first.id, other.id, *(r.id for r in plain)}) == 4
    err = _code(lambda: stub.CreateRun(run_store_pb2.CreateRunRequest(config=config, request_id="x" * 129), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 128" in err.details()
    assert len(stub.ListRuns(run_pb2.ListRunsRequest(), timeout=5).runs) == 4
    # An ended run moved back to an active state loses its old error and stop reason.
    failed = stub.UpdateRun(
        run_store_pb2.UpdateRunRequest(
            run_id=first.id, state=run_pb2.RUN_STATE_FAILED, error="boom", stop_reason="gave up"
        ),
        timeout=5,
    )
    assert (failed.error, failed.stop_reason) == ("boom", "gave up")
    resumed = stub.UpdateRun(
        run_store_pb2.UpdateRunRequest(run_id=first.id, state=run_pb2.RUN_STATE_RUNNING), timeout=5
    )
    assert (resumed.state, resumed.error, resumed.stop_reason) == (run_pb2.RUN_STATE_RUNNING, "", "")


@BOTH_DATABASES
def test_runs_rounds_and_compare_and_set(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    run = _run(stub)
    assert (run.state, run.step, run.pool_size, run.config.seed_size.count) == (
        run_pb2.RUN_STATE_PENDING,
        run_pb2.RUN_STEP_SEED,
        5,
        2,
    )
    moved = stub.UpdateRun(
        run_store_pb2.UpdateRunRequest(
            run_id=run.id,
            state=run_pb2.RUN_STATE_RUNNING,
            step=run_pb2.RUN_STEP_TRAIN,
            expected_step=run_pb2.RUN_STEP_SEED,
        ),
        timeout=5,
    )
    assert (moved.state, moved.step) == (run_pb2.RUN_STATE_RUNNING, run_pb2.RUN_STEP_TRAIN)
    err = _code(
        lambda: stub.UpdateRun(
            run_store_pb2.UpdateRunRequest(
                run_id=run.id, step=run_pb2.RUN_STEP_SCORE, expected_step=run_pb2.RUN_STEP_SEED
            ),
            timeout=5,
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "TRAIN" in err.details()
    rnd = run_pb2.Round(
        run_id=run.id,
        index=0,
        labelled_count=2,
        checkpoint_id="c0",
        test=common_pb2.EvalMetrics(accuracy=0.5, macro_f1=0.4, per_class_f1={"greet": 0.6}, count=10),
        validation=common_pb2.EvalMetrics(accuracy=0.75, macro_f1=0.7, count=4),
        comparison=common_pb2.ModelComparison(against="c-before", count=4, new_only=2, kept_only=1),
        started_at="2026-01-01T00:00:00Z",
    )
    stub.PutRound(rnd, timeout=5)
    stub.PutRound(run_pb2.Round(run_id=run.id, index=0, labelled_count=2, checkpoint_id="c0b"), timeout=5)
    stub.PutRound(run_pb2.Round(run_id=run.id, index=1, labelled_count=4), timeout=5)
    rounds = stub.ListRounds(run_store_pb2.ListRoundsRequest(run_id=run.id), timeout=5).rounds
    assert [(r.index, r.checkpoint_id) for r in rounds] == [(0, "c0b"), (1, "")]
    stub.PutRound(rnd, timeout=5)
    rounds = stub.ListRounds(run_store_pb2.ListRoundsRequest(run_id=run.id), timeout=5).rounds
    assert rounds[0].test.per_class_f1["greet"] == pytest.approx(0.6) and rounds[0].started_at == "2026-01-01T00:00:00Z"
    assert (rounds[0].validation.accuracy, rounds[0].validation.count) == (0.75, 4)
    assert not rounds[1].HasField("validation") or rounds[1].validation.count == 0
    assert rounds[0].comparison == rnd.comparison and not rounds[1].HasField("comparison")
    # An inconsistent comparison (more discordant texts than texts) is not stored as one.
    bad = run_pb2.Round(run_id=run.id, index=1, comparison=common_pb2.ModelComparison(against="x", count=1, new_only=2))
    stub.PutRound(bad, timeout=5)
    assert (
        not stub.ListRounds(run_store_pb2.ListRoundsRequest(run_id=run.id), timeout=5).rounds[1].HasField("comparison")
    )
    assert [
        r.id for r in stub.ListRuns(run_pb2.ListRunsRequest(states=[run_pb2.RUN_STATE_RUNNING]), timeout=5).runs
    ] == [run.id]
    assert stub.ListRuns(run_pb2.ListRunsRequest(states=[run_pb2.RUN_STATE_FAILED]), timeout=5).runs == []
    for call in [
        lambda: stub.GetRun(run_pb2.GetRunRequest(run_id=999), timeout=5),
        lambda: stub.PutRound(run_pb2.Round(run_id=999, index=0), timeout=5),
        lambda: stub.ListRounds(run_store_pb2.ListRoundsRequest(run_id=999), timeout=5),
    ]:
        assert _code(call).code() == grpc.StatusCode.NOT_FOUND


@BOTH_DATABASES
def test_acquisitions_never_twice_and_oracle_reveal(pool_address, stub):
    import_rows(pool_address, "d", ROWS)
    import_rows(pool_address, "d", [("greet", "test text")], split="test")
    ids = [s.id for s in _samples(stub, dataset="d", split=common_pb2.SPLIT_TRAIN)]
    test_id = _samples(stub, dataset="d", split=common_pb2.SPLIT_TEST)[0].id
    run = _run(stub)

    def add(round_, sample_ids):
        acquire(
            stub,
            run.id,
            round_,
            [run_pb2.Acquisition(sample_id=i, strategy=run_pb2.STRATEGY_RANDOM, score=0.5) for i in sample_ids],
        )
        request = run_store_pb2.ListAcquisitionsRequest(run_id=run.id, round=-1)
        return [(a.sample_id, a.round) for a in stub.ListAcquisitions(request, timeout=5).acquisitions]

    assert add(0, ids[:2]) == [(ids[0], 0), (ids[1], 0)]
    assert add(0, ids[:2]) == [(ids[0], 0), (ids[1], 0)]  # a repeat within the round is a no-op
    err = _code(lambda: add(1, [ids[1], ids[2]]))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "round 0" in err.details()
    assert _code(lambda: add(1, [test_id])).code() == grpc.StatusCode.INVALID_ARGUMENT
    pending = stub.ListAcquisitions(
        run_store_pb2.ListAcquisitionsRequest(run_id=run.id, round=-1, pending_only=True), timeout=5
    )
    assert [a.sample_id for a in pending.acquisitions] == ids[:2] and pending.acquisitions[0].text == "hello there"
    # The oracle only reveals acquired samples.
    err = _code(
        lambda: stub.RevealLabels(run_store_pb2.RevealLabelsRequest(run_id=run.id, sample_ids=[ids[3]]), timeout=5)
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "not acquired" in err.details()
    revealed = stub.RevealLabels(
        run_store_pb2.RevealLabelsRequest(run_id=run.id, sample_ids=ids[:2], source=common_pb2.LABEL_SOURCE_SEED),
        timeout=5,
    )
    assert [(a.sample_id, a.label) for a in revealed.labels] == [(ids[0], "greet"), (ids[1], "bye")]
    again = stub.RevealLabels(run_store_pb2.RevealLabelsRequest(run_id=run.id, sample_ids=ids[:2]), timeout=5)
    assert (again.recorded, again.unchanged) == (0, 2)
    # Run-scoped labels: visible to the run, not to the dataset scope.
    in_run = _samples(stub, dataset="d", run_id=run.id, state=pool_pb2.LABEL_STATE_LABELLED)
    assert [(s.id, s.label) for s in in_run] == [(ids[0], "greet"), (ids[1], "bye")]
    assert _samples(stub, dataset="d", state=pool_pb2.LABEL_STATE_LABELLED) == []
    assert stub.GetRun(run_pb2.GetRunRequest(run_id=run.id), timeout=5).labelled_count == 2
    assert (
        stub.ListAcquisitions(
            run_store_pb2.ListAcquisitionsRequest(run_id=run.id, round=0, pending_only=True), timeout=5
        ).acquisitions
        == []
    )


def test_human_samples_without_gold_cannot_be_revealed(pool_address, stub):
    import_bytes(pool_address, "d", b"text\nunlabelled one\nunlabelled two\n")
    ids = [s.id for s in _samples(stub, dataset="d")]
    run = _run(stub)
    acquire(stub, run.id, 0, [run_pb2.Acquisition(sample_id=ids[0])])
    err = _code(
        lambda: stub.RevealLabels(run_store_pb2.RevealLabelsRequest(run_id=run.id, sample_ids=ids[:1]), timeout=5)
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "no gold label" in err.details()


def test_run_config_roundtrips_as_json(pool_address, stub, pool_server):
    import_rows(pool_address, "d", ROWS)
    config = run_pb2.RunConfig(
        dataset="d",
        name="n",
        strategy=run_pb2.STRATEGY_MARGIN,
        batch_size=run_pb2.Amount(fraction=0.1),
        stopping=run_pb2.StoppingRule(max_rounds=3, target_accuracy=0.9),
        random_seed=7,
        hyperparameters=common_pb2.Hyperparameters(learning_rate=3e-5, max_epochs=4),
    )
    run = stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=5)
    assert stub.GetRun(run_pb2.GetRunRequest(run_id=run.id), timeout=5).config == config
