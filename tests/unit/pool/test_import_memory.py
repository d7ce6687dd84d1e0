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
