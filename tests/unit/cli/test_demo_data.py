"""Where the demo's data comes from: a path, LESSLABELS_DATA, the cache, a checked download, or the synthetic set."""

from __future__ import annotations

import collections
import shutil

import pytest

from lesslabels.demo import data as demo_data


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSLABELS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LESSLABELS_DATA", raising=False)


def test_synthetic_rows_are_deterministic_distinct_and_cover_several_intents():
    train, test = demo_data.synthetic_rows()
    assert (train, test) == demo_data.synthetic_rows()
    assert 300 <= len(train) <= 1000 and 100 <= len(test) <= 400
    texts = [t for _, t in train + test]
    assert len(set(texts)) == len(texts)  # no repeats, no test text in train
    counts = collections.Counter(label for label, _ in train)
    assert len(counts) >= 4 and min(counts.values()) >= 30
    assert set(label for label, _ in test) == set(counts)


def test_no_atis_and_no_download_falls_back_to_synthetic(tmp_path):
    found, notes = demo_data.resolve_demo_data(None, tmp_path / "work", download=False)
    assert found.name == "synthetic"
    assert any("not in the cache" in n for n in notes) and "download disabled" in notes
    lines = found.train.read_text().splitlines()
    assert len(lines) == len(demo_data.synthetic_rows()[0])
    assert lines[0].split(",", 1)[0] in demo_data.TEMPLATES


def test_failed_download_falls_back_and_says_why(tmp_path):
    found, notes = demo_data.resolve_demo_data(None, tmp_path / "work", mirror="http://127.0.0.1:1/atis")
    assert found.name == "synthetic"
    assert any(n.startswith("ATIS download failed") for n in notes)


def _mirror(tmp_path, atis_dir, corrupt=False):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in (demo_data.ATIS_TRAIN, demo_data.ATIS_TEST):
        shutil.copy(atis_dir / name, mirror / name)
    if corrupt:
        with open(mirror / demo_data.ATIS_TEST, "a") as fh:
            fh.write("atis_flight, tampered\n")
    return mirror


def test_download_checks_sha256_and_caches(tmp_path, atis_train):
    mirror = _mirror(tmp_path, atis_train.parent)
    found, _ = demo_data.resolve_demo_data(None, tmp_path / "work", mirror=mirror.as_uri())
    assert found.name == "atis" and found.train.parent == demo_data.cache_dir() / "atis"
    # Second time: from the cache, no download (the mirror is gone).
    shutil.rmtree(mirror)
    again, notes = demo_data.resolve_demo_data(None, tmp_path / "work", mirror=mirror.as_uri())
    assert again.name == "atis" and notes == []


def test_download_with_a_wrong_digest_is_rejected(tmp_path, atis_train):
    mirror = _mirror(tmp_path, atis_train.parent, corrupt=True)
    found, notes = demo_data.resolve_demo_data(None, tmp_path / "work", mirror=mirror.as_uri())
    assert found.name == "synthetic"
    assert any("sha256" in n and "is not the expected" in n for n in notes)
    assert not (demo_data.cache_dir() / "atis" / demo_data.ATIS_TEST).exists()


def test_explicit_path_and_env(tmp_path, monkeypatch, atis_train):
    found, _ = demo_data.resolve_demo_data(str(atis_train.parent), tmp_path / "work")
    assert found.name == "atis" and found.train == atis_train
    monkeypatch.setenv("LESSLABELS_DATA", str(atis_train.parent))
    found, _ = demo_data.resolve_demo_data(None, tmp_path / "work")
    assert found.name == "atis"


def test_a_bad_explicit_path_is_an_error_not_a_silent_fallback(tmp_path, monkeypatch):
    with pytest.raises(demo_data.DataError, match="does not exist"):
        demo_data.resolve_demo_data(str(tmp_path / "nowhere"), tmp_path / "work")
    (tmp_path / "empty").mkdir()
    with pytest.raises(demo_data.DataError, match="holds neither"):
        demo_data.resolve_demo_data(str(tmp_path / "empty"), tmp_path / "work")
    monkeypatch.setenv("LESSLABELS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(demo_data.DataError, match="LESSLABELS_DATA"):
        demo_data.resolve_demo_data(None, tmp_path / "work")


def test_synthetic_flag_wins_over_a_path(tmp_path, atis_train):
    found, _ = demo_data.resolve_demo_data(str(atis_train.parent), tmp_path / "work", synthetic_only=True)
    assert found.name == "synthetic"


def test_demo_with_a_missing_data_path_is_a_clear_error(tmp_path, capsys):
    from lesslabels.cli.main import main

    assert main(["demo", "--data", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "lesslabels demo: error: --data" in err and "does not exist" in err and "Traceback" not in err
