"""Who labelled what: each label's annotator, source and time on listed samples, in the pool's CSV
export (which imports back to the same labels), per annotator, and one annotator's labels."""

from __future__ import annotations

import csv
import io

from lesslabels.cli.data import import_main
from lesslabels.client import PoolClient
from tests.helpers import import_rows


def _labelled(pool_address):
    with PoolClient(pool_address, timeout=10) as pool:
        pool.create_dataset("d", labels=["greet", "bye"])
    import_rows(pool_address, "d", [("", "hello there"), ("", "=cmd|' /C calc'!A0"), ("", "see you"), ("", "hi")])
    with PoolClient(pool_address, timeout=10) as pool:
        ids = [s.id for s in pool.list_samples("d")]
        pool.submit_labels("d", [(ids[0], "greet"), (ids[1], "greet")], annotator="ada", idempotency_key="k1")
        pool.submit_labels("d", [(ids[2], "bye")], annotator="bob", idempotency_key="k2")
        # Bob corrects one of Ada's: the label in force, and its provenance, are Bob's.
        pool.submit_labels("d", [(ids[1], "bye")], annotator="bob", idempotency_key="k3")
    return ids


def test_samples_carry_their_labels_provenance_and_filter_by_annotator(pool_address):
    ids = _labelled(pool_address)
    with PoolClient(pool_address, timeout=10) as pool:
        by_id = {s.id: s for s in pool.list_samples("d")}
        assert [(by_id[i].label, by_id[i].annotator, by_id[i].label_source) for i in ids] == [
            ("greet", "ada", "human"),
            ("bye", "bob", "human"),
            ("bye", "bob", "human"),
            ("", "", ""),
        ]
        assert all(by_id[i].labelled_at.endswith("Z") for i in ids[:3]) and by_id[ids[3]].labelled_at == ""
        assert [s.id for s in pool.list_samples("d", annotator="bob")] == [ids[1], ids[2]]
        assert [s.id for s in pool.list_samples("d", annotator="ada")] == [ids[0]]
        assert pool.list_samples("d", annotator="nobody") == []
        annotators = pool.list_annotators("d")
        assert [(a.name, a.labels) for a in annotators] == [("bob", 2), ("ada", 1)]
        assert annotators[0].last_labelled_at >= annotators[1].last_labelled_at


def test_the_csv_export_names_sample_annotator_time_and_source_and_imports_back(pool_address, tmp_path, capsys):
    ids = _labelled(pool_address)
    with PoolClient(pool_address, timeout=10) as pool:
        exported = pool.export_labels("d").decode()
        rows = list(csv.DictReader(io.StringIO(exported)))
        assert list(rows[0]) == ["label", "text", "sample_id", "annotator", "labelled_at", "label_source"]
        assert [(r["sample_id"], r["label"], r["annotator"], r["label_source"]) for r in rows] == [
            (str(ids[0]), "greet", "ada", "human"),
            (str(ids[1]), "bye", "bob", "human"),
            (str(ids[2]), "bye", "bob", "human"),
        ]
        assert rows[1]["text"] == "'=cmd|' /C calc'!A0"  # formula cells neutralised
        assert all(r["labelled_at"].endswith("Z") for r in rows)
        # Round trip: the export imports into a new dataset as its labels, provenance columns left out.
        path = tmp_path / "export.csv"
        path.write_text(exported)
        assert import_main([str(path), "--dataset", "copy", "--pool-address", pool_address]) == 0
        out = capsys.readouterr().out
        assert "left out (not stored): sample_id, annotator, labelled_at, label_source" in out
        copied = pool.list_samples("copy", include_gold=False)
        assert [s.text for s in copied] == [r["text"].removeprefix("'") for r in rows]
        assert pool.get_counts("copy").train.gold_by_label == {"greet": 1, "bye": 2}
