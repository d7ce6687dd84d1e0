"""Labelling a run's pending batch: the page, the queue as JSON, one label per request."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from lesslabels.common import errors
from lesslabels.web.routers.common import backend, csrf_protected, render

router = APIRouter()


class LabelSubmission(BaseModel):
    sample_id: int = Field(gt=0)
    label: str = Field(min_length=1, max_length=128)
    annotator: str = Field(min_length=1, max_length=64)
    # Made by the page once per deliberate choice and reused by its retries: a retry or double
    # click of the same choice is recognised by the pool and never adds a second label.
    nonce: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


@router.get("/runs/{run_id}/label")
def label_page(request: Request, run_id: int):
    run = backend(request).run_detail(run_id)["run"]
    if not run["human"]:
        raise errors.FailedPrecondition(f"run {run_id} uses the simulated oracle: it asks nobody for labels")
    return render(request, "label.html", {"run": run})


@router.get("/api/runs/{run_id}/queue")
def queue(request: Request, run_id: int, annotator: str = ""):
    """The texts to label; an asynchronous run leases those it returns to ``annotator``."""
    return backend(request).queue(run_id, annotator.strip())


@router.post("/api/runs/{run_id}/labels", dependencies=[Depends(csrf_protected)])
def submit(request: Request, run_id: int, body: LabelSubmission):
    key = f"web:{run_id}:{body.sample_id}:{body.annotator}:{body.nonce}"
    reply = backend(request).submit_label(run_id, body.sample_id, body.label, body.annotator, key)
    request.app.state.activity.recorded(run_id, body.annotator, reply["recorded"])
    return reply
