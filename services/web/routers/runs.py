"""Runs: the list, and one run's state, learning curve and rounds."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from lesslabels.web.curve import accuracy_drops, learning_curve_svg
from lesslabels.web.perclass import per_class_table
from lesslabels.web.routers.common import backend, render

router = APIRouter()


@router.get("/")
def home():
    return RedirectResponse("/runs", status_code=303)


@router.get("/runs")
def runs_page(request: Request):
    return render(request, "runs.html", {"runs": backend(request).list_runs()})


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: int):
    detail = backend(request).run_detail(run_id)
    rounds = detail["rounds"]
    return render(
        request,
        "run.html",
        {
            "run": detail["run"],
            "rounds": rounds,
            "kept": detail.get("kept"),
            "activity": detail.get("activity"),
            "per_class": per_class_table(rounds),
            "warnings": accuracy_drops(rounds),
            "curve": learning_curve_svg(rounds),
        },
    )


@router.get("/api/runs/{run_id}")
def run_json(request: Request, run_id: int):
    detail = backend(request).run_detail(run_id)
    return {**detail, "warnings": accuracy_drops(detail["rounds"])}
