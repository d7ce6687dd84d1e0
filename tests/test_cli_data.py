"""``lesslabels import`` / ``export`` against a real pool."""

from __future__ import annotations

from lesslabels.cli.data import export_main, import_main


def test_import_and_export_roundtrip(pool_address, tmp_path, capsys):
    src = tmp_path / "d.csv"
    src.write_text("greet, hello\nbye, see you\ngreet, hello\n")
    assert import_main([str(src), "--dataset", "d", "--pool-address", pool_address]) == 0
    out = capsys.readouterr().out
    assert "imported 3 rows" in out and "greet" in out and "1 rows repeat a text" in out
    target = tmp_path / "out.csv"
    assert export_main(["--dataset", "d", "--pool-address", pool_address, "-o", str(target)]) == 0
    assert target.read_text() == "label,text\n"  # nothing labelled yet


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
