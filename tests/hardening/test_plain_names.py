"""Names are plain text (issue 25 F5): the pool refuses control characters in dataset, run and label
names on every write path, naming the field; the CLI never prints a stored one raw."""

from __future__ import annotations

import json

import grpc
import pytest
import sqlalchemy

from lesslabels.cli import main as cli_main
from lesslabels.common.plaintext import check_name, visible
from lesslabels.contract import RunConfig
from lesslabels.v1 import common_pb2, pool_pb2, run_pb2, run_store_pb2
from tests.helpers import import_bytes
from tests.stack import load_toy_dataset

#: Each is refused in a name: ESC (terminal sequences), BEL, NUL, newline, tab, DEL, a C1 control
#: (CSI), the right-to-left override and a line separator.
CONTROLS = ["\x1b", "\x07", "\x00", "\n", "\t", "\x7f", "\x9b", "\u202e", "\u2028"]


def _refused(call) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return caught.value.details()


@pytest.mark.parametrize("char", CONTROLS)
def test_the_one_check_names_the_field_and_the_character(char):
    with pytest.raises(Exception, match=rf"name holds the control character U\+{ord(char):04X} at position 3"):
        check_name(f"ab{char}c", "name")
    assert check_name("book_flight été", "name") == "book_flight été"


@pytest.mark.parametrize("char", ["\x1b", "\x00", "\n", "\u202e"])
def test_a_run_name_with_a_control_character_is_refused_by_the_run_store(pool_address, stub, char):
    load_toy_dataset(pool_address)
    config = run_pb2.RunConfig(dataset="toy", name=f"run{char}]0;pwned", strategy=run_pb2.STRATEGY_ENTROPY)
    message = _refused(lambda: stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=10))
    assert f"name holds the control character U+{ord(char):04X}" in message
    assert stub.ListRuns(run_pb2.ListRunsRequest(), timeout=10).runs == []
    # The coordinator checks with the same validate().
    assert any("name holds the control character" in p for p in RunConfig(dataset="toy", name=f"x{char}").problems())


@pytest.mark.parametrize("char", ["\x1b", "\x07", "\u202e"])
def test_label_names_with_control_characters_are_refused_on_every_path(pool_address, stub, char):
    bad = f"ok{char}"
    message = _refused(
        lambda: stub.CreateDataset(pool_pb2.CreateDatasetRequest(name="d", labels=["fine", bad]), timeout=10)
    )
    assert f"labels[1] holds the control character U+{ord(char):04X}" in message
    message = _refused(lambda: import_bytes(pool_address, "d", f"label,text\n{bad},a text\n".encode()))
    assert f"row 1 (line 2): label holds the control character U+{ord(char):04X}" in message
    assert stub.ListDatasets(pool_pb2.ListDatasetsRequest(), timeout=10).datasets == []  # nothing stored

    import_bytes(pool_address, "d", b"text\nfirst\nsecond\n")
    message = _refused(
        lambda: stub.SetDatasetLabels(pool_pb2.SetDatasetLabelsRequest(dataset="d", labels=[bad]), timeout=10)
    )
    assert "labels[0] holds the control character" in message
    sample = next(iter(stub.ListSamples(pool_pb2.ListSamplesRequest(dataset="d"), timeout=10))).samples[0]
    request = pool_pb2.SubmitLabelsRequest(
        dataset="d",
        source=common_pb2.LABEL_SOURCE_HUMAN,
        labels=[pool_pb2.LabelAssignment(sample_id=sample.id, label=bad)],
    )
    message = _refused(lambda: stub.SubmitLabels(request, timeout=10))
    assert f"label 1 (sample {sample.id}): label holds the control character" in message
    dataset = stub.GetDataset(pool_pb2.GetDatasetRequest(name="d"), timeout=10)
    assert list(dataset.labels) == [] and dataset.labelled_count == 0


def test_a_dataset_name_with_a_control_character_is_refused(stub):
    message = _refused(lambda: stub.CreateDataset(pool_pb2.CreateDatasetRequest(name="d\x1b[2J"), timeout=10))
    assert "invalid dataset name" in message


def test_visible_escapes_what_a_terminal_obeys_and_keeps_layout():
    assert visible("a\x1b]0;title\x07b\u202ec\rd\x00") == r"a\x1b]0;title\x07b\u202ec\x0dd\x00"
    assert visible("line one\n\tline two é ✓") == "line one\n\tline two é ✓"


EVIL = "evil\x1b]0;pwned\x07\x1b[2J\u202egnp.exe"
SHOWN = r"evil\x1b]0;pwned\x07\x1b[2J\u202egnp.exe"


def _shown_escaped(text: str) -> bool:
    return not any(c in text for c in "\x1b\x07\u202e") and SHOWN in text


def test_stored_texts_reach_the_terminal_escaped(pool_address, stub, database_url, capsys):
    """A description holds anything; a run name stored before the pool refused control characters
    (written into the database here): `datasets`, `dataset show`, `runs`, `status` and `report`
    print them escaped, as does an error naming one."""
    from lesslabels.coordinator.main import build_server
    from tests.helpers import server_settings_for_tests

    stub.CreateDataset(pool_pb2.CreateDatasetRequest(name="toy", description=EVIL), timeout=10)
    load_toy_dataset(pool_address)
    config = run_pb2.RunConfig(dataset="toy", name="placeholder", strategy=run_pb2.STRATEGY_ENTROPY)
    run_id = stub.CreateRun(run_store_pb2.CreateRunRequest(config=config), timeout=10).id
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "UPDATE runs SET config_json = replace(config_json, 'placeholder', :name), "
                "state = 'COMPLETED', step = 'DONE', error = :name WHERE id = :id"
            ),
            {"name": json.dumps(EVIL)[1:-1], "id": run_id},
        )
    engine.dispose()
    server = build_server(server_settings_for_tests(), pool_address, "127.0.0.1:1", "127.0.0.1:1", rpc_timeout=5)
    server.start()
    server.ready()
    coordinator = ["--coordinator-address", f"127.0.0.1:{server.port}"]
    try:
        for argv in (
            ["dataset", "show", "toy", "--pool-address", pool_address],
            ["runs", *coordinator],
            ["status", str(run_id), *coordinator],
            ["report", str(run_id), "--no-plot", *coordinator],
        ):
            code = cli_main.main(argv)
            out, err = capsys.readouterr()
            assert _shown_escaped(out + err), (argv, code, out, err)
        # An error that quotes a stored name goes through the same escaping.
        assert cli_main.main(["dataset", "show", "no\x1b]0;x\x07", "--pool-address", pool_address]) != 0
        assert "\x1b" not in capsys.readouterr().err
    finally:
        server.stop(0)
