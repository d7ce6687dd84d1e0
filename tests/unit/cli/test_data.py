"""``lesslabels import`` / ``export`` against a real pool."""

from __future__ import annotations

import grpc

from lesslabels.cli.data import export_main, import_main


def test_import_and_export_roundtrip(pool_address, tmp_path, capsys):
    src = tmp_path / "d.csv"
    src.write_text("greet, hello\nbye, see you\ngreet, hello\n")
    assert import_main([str(src), "--dataset", "d", "--pool-address", pool_address]) == 0
    out = capsys.readouterr().out
    assert "imported 3 rows" in out and "greet" in out and "1 rows repeat a text" in out
    target = tmp_path / "out.csv"
    assert export_main(["--dataset", "d", "--pool-address", pool_address, "-o", str(target)]) == 0
    assert target.read_text() == "label,text,sample_id,annotator,labelled_at,label_source\n"  # nothing labelled yet


def test_import_errors_are_clear(pool_address, tmp_path, capsys):
    assert import_main([str(tmp_path / "missing.csv"), "--dataset", "d", "--pool-address", pool_address]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("greet,hello\nbye,\n")
    assert import_main([str(bad), "--dataset", "d", "--pool-address", pool_address]) == 1
    err = capsys.readouterr().err
    assert "INVALID_ARGUMENT" in err and "row 2" in err and "empty text" in err
    assert import_main([str(bad), "--dataset", "new", "--no-create", "--pool-address", pool_address]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_import_check_prints_the_plan_and_stores_nothing(pool_address, tmp_path, capsys):
    src = tmp_path / "d.csv"
    src.write_text("body,tag,split\nhello there,greet,train\nsee you,bye,test\nhi,greet,\n")
    argv = [str(src), "--dataset", "d", "--pool-address", pool_address, "--text-column", "body"]
    assert import_main([*argv, "--label-column", "tag", "--check"]) == 0
    out = capsys.readouterr().out
    assert "would import (--check: nothing stored) 3 rows" in out
    assert "columns: text='body', label='tag', split='split'" in out and "per split: test 1, train 2" in out
    assert export_main(["--dataset", "d", "--pool-address", pool_address]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err  # the check created no dataset
    assert import_main([*argv, "--label-column", "tag"]) == 0
    assert "imported 3 rows" in capsys.readouterr().out


def test_import_refusals_name_the_flags(pool_address, tmp_path, capsys):
    src = tmp_path / "d.jsonl"
    src.write_text('{"body": "hello there", "tag": "greet"}\n')
    assert import_main([str(src), "--dataset", "d", "--pool-address", pool_address]) == 1
    err = capsys.readouterr().err
    assert "no text column among 'body', 'tag'" in err and "--text-column" in err
    similar = tmp_path / "s.csv"
    similar.write_text("weather,what is it like\nwether,will it rain\n")
    assert import_main([str(similar), "--dataset", "d", "--pool-address", pool_address]) == 1
    assert "--allow-similar-labels" in capsys.readouterr().err
    assert export_main(["--dataset", "d", "--pool-address", pool_address]) == 1  # nothing was stored
    capsys.readouterr()
    assert import_main([str(similar), "--dataset", "d", "--pool-address", pool_address, "--allow-similar-labels"]) == 0
    assert "imported 2 rows" in capsys.readouterr().out


def test_a_jsonl_key_no_field_reads_is_refused_naming_ignore_extra_then_left_out_with_it(
    pool_address, tmp_path, capsys
):
    src = tmp_path / "d.jsonl"
    src.write_text(
        '{"utterance": "hello there", "intent": "greet", "meta": {"by": "ada"}}\n'
        '{"utterance": "see you", "intent": "bye", "meta": null}\n'
    )
    argv = [str(src), "--dataset", "d", "--pool-address", pool_address, "--text-column", "utterance"]
    assert import_main([*argv, "--label-column", "intent"]) == 1
    err = capsys.readouterr().err
    assert "keys ['meta'] are read as nothing" in err and "pass --ignore-extra" in err
    assert "--text-column" not in err  # the flags given are not suggested again
    assert export_main(["--dataset", "d", "--pool-address", pool_address]) == 1  # nothing stored, no dataset
    capsys.readouterr()
    assert import_main([*argv, "--label-column", "intent", "--ignore-extra"]) == 0
    out = capsys.readouterr().out
    assert "imported 2 rows" in out and "columns: text='utterance', label='intent'" in out
    assert "left out (not stored): meta" in out


def _stored(pool_address: str) -> tuple[int, int]:
    from lesslabels.client import PoolClient

    with PoolClient(pool_address, timeout=10) as pool:
        dataset = pool.get_dataset("d")
    return dataset.train_count, dataset.test_count


def test_the_same_import_run_again_stores_nothing_twice_and_says_so(pool_address, tmp_path, capsys):
    src = tmp_path / "d.csv"
    src.write_text("greet,hello\nbye,see you\ngreet,hi there\n")
    argv = [str(src), "--dataset", "d", "--pool-address", pool_address]
    assert import_main(argv) == 0
    assert "imported 3 rows" in capsys.readouterr().out
    assert import_main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"already imported: {src} went into dataset 'd' before") and "nothing was stored again" in out
    assert "the first import stored 3 rows (csv)" in out
    assert _stored(pool_address) == (3, 0)
    # Other options store the rows otherwise: a new import, as is a changed file.
    assert import_main([*argv, "--split", "test"]) == 0
    assert "imported 3 rows" in capsys.readouterr().out
    src.write_text("greet,hello\nbye,see you\ngreet,hi there\nbye,farewell\n")
    assert import_main(argv) == 0
    assert "imported 4 rows" in capsys.readouterr().out
    assert _stored(pool_address) == (7, 3)
    # --request-id names the import itself: the same file again under a new key is stored again.
    assert import_main([*argv, "--request-id", "second-copy"]) == 0
    assert "imported 4 rows" in capsys.readouterr().out
    assert _stored(pool_address) == (11, 3)


def test_an_import_whose_answer_was_lost_is_recognised_when_run_again(pool_address, tmp_path, capsys, monkeypatch):
    """The pool stored the rows but the CLI never heard (the server stopped, the network went): the
    CLI says the outcome is unknown, and the same command again stores nothing twice."""
    from lesslabels.client import PoolClient, errors

    real = PoolClient.import_chunks
    sent: list[str] = []

    def stored_then_lost(self, *args, **kwargs):
        real(self, *args, **kwargs)
        sent.append(kwargs["request_id"])
        exc = errors.Unavailable("pool: Cancelling all calls")
        exc.status = grpc.StatusCode.UNAVAILABLE
        raise exc

    src = tmp_path / "d.jsonl"
    src.write_text('{"text": "hello", "label": "greet"}\n{"text": "see you", "label": "bye"}\n')
    argv = [str(src), "--dataset", "d", "--pool-address", pool_address]
    monkeypatch.setattr(PoolClient, "import_chunks", stored_then_lost)
    assert import_main(argv) == 1
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err and "run the same command again" in err and "at most once" in err
    monkeypatch.setattr(PoolClient, "import_chunks", real)
    assert import_main(argv) == 0
    assert "already imported" in capsys.readouterr().out
    assert _stored(pool_address) == (2, 0)
    assert sent and sent[0].startswith("cli-import-")
