"""The pages a labelling team reads beside the labelling page: runs named and spelled as the CLI
spells them, who labelled what on the dataset page, the import's dry run, column mapping and errors."""

from __future__ import annotations

from fastapi.testclient import TestClient

from lesslabels.client import RunConfig
from lesslabels.contract import Run
from lesslabels.web.app import create_app
from lesslabels.web.backend import run_view


def _run(strategy: str, name: str = "") -> Run:
    return Run(
        id=7, config=RunConfig(dataset="clinc", name=name, strategy=strategy), state="RUNNING", step="SCORE", round=2
    )


class RunsBackend:
    def __init__(self, runs):
        self.runs = runs

    def list_runs(self):
        return [run_view(r) for r in self.runs]

    def run_detail(self, run_id):
        return {"run": run_view(self.runs[0]), "rounds": [], "kept": None, "activity": None}


def test_the_runs_pages_show_the_run_name_and_the_strategy_as_the_cli_spells_it():
    app = create_app(RunsBackend([_run("clustered_entropy", name="team-a"), _run("least_confidence")]))
    with TestClient(app) as client:
        listing = client.get("/runs").text
        page = client.get("/runs/7").text
    assert "<th>name</th>" in listing and "<td>team-a</td>" in listing
    assert "strategy clustered-entropy," in page and "team-a" in page
    assert "clustered_entropy" not in page + listing
    assert run_view(_run("least_confidence"))["strategy"] == "least-confidence"
