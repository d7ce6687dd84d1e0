"""``lesslabels datasets`` and ``lesslabels dataset show|labels|delete`` against a real pool."""

from __future__ import annotations

from lesslabels.cli.main import main
from tests.helpers import import_rows

ROWS = [("greet", "hello there"), ("bye", "see you"), ("greet", "hi")]


def test_list_show_labels_and_delete(pool_address, capsys):
    flags = ["--pool-address", pool_address]
    assert main(["datasets", *flags]) == 0
    assert "no datasets" in capsys.readouterr().out
    import_rows(pool_address, "intents", ROWS)
    import_rows(pool_address, "other", ROWS[:1])
    assert main(["datasets", *flags]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["intents", "3", "0", "0", "0", "2"] and out[2].split()[0] == "other"

    assert main(["dataset", "show", "intents", *flags]) == 0
    out = capsys.readouterr().out
    assert "label set: greet, bye" in out
    assert [line.split() for line in out.splitlines() if line.startswith("train")] == [["train", "3", "0", "3"]]
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("greet")] == [["greet", "0", "2"]]

    assert main(["dataset", "labels", "intents", "greet", "bye", "thanks", *flags]) == 0
    assert "greet, bye, thanks" in capsys.readouterr().out
    assert main(["dataset", "labels", "intents", "greet", "bye", "thanks", "Greet", *flags]) == 1
    assert "near-duplicate" in capsys.readouterr().err

    assert main(["dataset", "delete", "intents", *flags]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["dataset", "delete", "intents", "--yes", *flags]) == 0
    assert "deleted dataset 'intents' (3 samples)" in capsys.readouterr().out
    assert main(["dataset", "show", "intents", *flags]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["dataset", "show", "other", *flags]) == 0
