"""Parquet through the CLI against a real pool (issue 30): ``lesslabels import FILE.parquet``,
``lesslabels export -o FILE.parquet`` and ``export-hf -o FILE.parquet`` (loadable by
``datasets.load_dataset("parquet", ...)`` with its label names, and importable again)."""

from __future__ import annotations

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from lesslabels.cli.data import export_main, import_main  # noqa: E402
from lesslabels.cli.main import main as cli  # noqa: E402
from lesslabels.client import PoolClient  # noqa: E402


def _write_parquet(path, columns: dict) -> None:
    pq.write_table(pa.table(columns), path)


def _import_and_label(pool_address, tmp_path) -> None:
    src = tmp_path / "in.parquet"
    _write_parquet(
        src,
        {
            "text": ["book a flight to denver", "=cheapest fare?", "hello there", "ground transport"],
            "label": ["flight", "airfare", None, "ground_service"],
        },
    )
    assert import_main([str(src), "--dataset", "d", "--pool-address", pool_address]) == 0
    with PoolClient(pool_address, timeout=10) as pool:
        samples = pool.list_samples("d")
        pool.submit_labels("d", {samples[0].id: "flight", samples[1].id: "airfare"}, annotator="ana")


def test_import_a_parquet_file(pool_address, tmp_path, capsys):
    src = tmp_path / "in.parquet"
    _write_parquet(src, {"sentence": ["hello there", "see you"], "intent": ["greet", "bye"]})
    assert import_main([str(src), "--dataset", "d", "--pool-address", pool_address]) == 0
    out = capsys.readouterr().out
    assert "imported 2 rows" in out and "(parquet)" in out and "columns: text='sentence', label='intent'" in out


def test_a_bad_parquet_file_is_refused_and_nothing_stored(pool_address, tmp_path, capsys):
    src = tmp_path / "bad.parquet"
    _write_parquet(src, {"text": ["hello there", "see you"], "label": [0, 1]})
    assert import_main([str(src), "--dataset", "d", "--pool-address", pool_address]) == 1
    err = capsys.readouterr().err
    assert "INVALID_ARGUMENT" in err and "row 1: label must be a string, got the integer 0" in err
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(src.read_bytes()[:40])
    assert import_main([str(truncated), "--dataset", "d", "--pool-address", pool_address]) == 1
    assert "not a readable Parquet file" in capsys.readouterr().err
    assert export_main(["--dataset", "d", "--pool-address", pool_address]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err  # no dataset was created


def test_export_writes_the_csv_columns_as_parquet(pool_address, tmp_path):
    _import_and_label(pool_address, tmp_path)
    out = tmp_path / "labels.parquet"
    assert export_main(["--dataset", "d", "--pool-address", pool_address, "-o", str(out)]) == 0
    table = pq.read_table(out)
    assert table.column_names == ["label", "text", "sample_id", "annotator", "labelled_at", "label_source"]
    assert table.schema.field("sample_id").type == pa.int64()
    rows = table.to_pylist()
    # The formula-safe quote of the CSV export is not part of the text in Parquet.
    assert [(r["label"], r["text"], r["annotator"]) for r in rows] == [
        ("flight", "book a flight to denver", "ana"),
        ("airfare", "=cheapest fare?", "ana"),
    ]
    # And it imports back: the provenance columns are left out, the labels are the new gold labels.
    assert import_main([str(out), "--dataset", "again", "--pool-address", pool_address]) == 0
    with PoolClient(pool_address, timeout=10) as pool:
        assert [s.text for s in pool.list_samples("again")] == ["book a flight to denver", "=cheapest fare?"]


def test_export_of_parquet_to_stdout_is_refused(pool_address, capsys):
    assert export_main(["--dataset", "d", "--format", "parquet", "--pool-address", pool_address]) == 2
    assert "pass --output FILE" in capsys.readouterr().err


def test_export_hf_parquet_loads_in_datasets_and_imports_back(pool_address, tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    _import_and_label(pool_address, tmp_path)
    out = tmp_path / "hf.parquet"
    assert cli(["export-hf", "--dataset", "d", "-o", str(out), "--pool-address", pool_address]) == 0
    assert "wrote 2 labelled texts" in capsys.readouterr().out
    loaded = datasets.load_dataset("parquet", data_files=str(out), cache_dir=str(tmp_path / "cache"))["train"]
    names = loaded.features["label"].names  # a ClassLabel without being told: the file's own metadata
    assert names[:3] == ["flight", "airfare", "ground_service"]
    assert [(r["text"], names[r["label"]], r["annotator"]) for r in loaded] == [
        ("book a flight to denver", "flight", "ana"),
        ("=cheapest fare?", "airfare", "ana"),
    ]
    # The Parquet round trip: the pool reads the class indices back as their names.
    assert import_main([str(out), "--dataset", "back", "--pool-address", pool_address]) == 0
    with PoolClient(pool_address, timeout=10) as pool:
        assert pool.get_dataset("back").labels[:2] == ("flight", "airfare")


def test_export_hf_parquet_without_pyarrow_says_what_to_install(monkeypatch):
    import sys

    from lesslabels.client import hfexport

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install 'lesslabels\[parquet\]'"):
        hfexport.encode([{"text": "a", "label": 0}], "parquet", ["x"])
    assert (
        hfexport.encode([{"text": "a", "label": 0}], "jsonl", ["x"]) == b'{"text": "a", "label": 0}\n'
    )  # text formats work
