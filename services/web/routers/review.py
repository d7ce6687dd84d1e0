"""Team pages of a dataset: one annotator's labels, and the review of texts people labelled
differently (each one's label shown; the reviewer's choice becomes the label in force)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from lesslabels.common import errors
from lesslabels.contract import MAX_ANNOTATOR_LENGTH
from lesslabels.web.routers.common import backend, csrf_protected, render

router = APIRouter()


@router.get("/datasets/{name}/labels")
def annotator_page(request: Request, name: str, annotator: str = ""):
    rows = backend(request).annotator_labels(name, annotator)
    return render(request, "annotator.html", {"dataset": name, "annotator": annotator, "rows": rows})


@router.get("/datasets/{name}/review")
def review_page(request: Request, name: str, resolved: int = 0):
    context = {
        "dataset": backend(request).dataset(name),
        "flagged": backend(request).flagged(name),
        "resolved": resolved,
    }
    return render(request, "review.html", context)


@router.post("/datasets/{name}/review", dependencies=[Depends(csrf_protected)])
def resolve(request: Request, name: str, sample_id: int = Form(0), label: str = Form(""), reviewer: str = Form("")):
    reviewer = reviewer.strip()
    if not reviewer:
        raise errors.InvalidArgument("type your name as the reviewer: a review is recorded with who gave it")
    if len(reviewer) > MAX_ANNOTATOR_LENGTH:
        raise errors.InvalidArgument(
            f"the reviewer's name is {len(reviewer)} characters; at most {MAX_ANNOTATOR_LENGTH}"
        )
    if sample_id <= 0 or not label:
        raise errors.InvalidArgument("choose the final label of a flagged text")
    key = f"web-review:{sample_id}:{secrets.token_hex(8)}"
    done = backend(request).resolve(name, sample_id, label, reviewer, key)
    return RedirectResponse(f"/datasets/{name}/review?resolved={done['sample_id']}", status_code=303)
