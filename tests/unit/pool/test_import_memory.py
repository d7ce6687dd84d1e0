"""The memory of a large import (issues 14 and 15): the pool reads the file as a stream."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT

MiB = 1024 * 1024


def test_a_large_import_holds_a_fraction_of_the_file(tmp_path):
    """The servicer spools the file and the store reads it a batch of rows at a time: a 40 MB import
    raises the pool's peak memory by less than half the file (holding the file, its text and its
    rows, as imports did before, raised it by ~8 times the file)."""
    completed = subprocess.run(
        [sys.executable, "-m", "tests.import_memory", f"sqlite:///{tmp_path / 'pool.db'}", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    measured = json.loads(completed.stdout)
    assert measured["rows"] > 35_000
    assert measured["peak_rss_growth_mib"] < measured["bytes"] / MiB / 2, measured


def test_a_large_parquet_import_decodes_a_batch_at_a_time(tmp_path):
    """A Parquet file of 80 MB of text in one row group (a few MB compressed): the pool reads the
    text and label columns a batch of rows at a time, so the import raises its peak memory by less
    than half the text it holds (growth measured at 80 and 120 MB: 27 and 45 MiB)."""
    completed = subprocess.run(
        [sys.executable, "-m", "tests.import_memory", f"sqlite:///{tmp_path / 'pool.db'}", "80", "parquet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    measured = json.loads(completed.stdout)
    assert measured["rows"] > 75_000
    text_mib = 80 * 1_000_000 / MiB
    assert measured["peak_rss_growth_mib"] < text_mib / 2, measured
