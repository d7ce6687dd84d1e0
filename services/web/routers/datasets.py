"""Datasets: counts per label and split, import of a file, export of the labels people gave."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from lesslabels.common import errors
from lesslabels.web.routers.common import backend, csrf_protected, render

router = APIRouter()
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


@router.get("/datasets")
def datasets_page(request: Request):
    return render(request, "datasets.html", {"datasets": backend(request).list_datasets()})


@router.get("/datasets/{name}")
def dataset_page(request: Request, name: str, imported: int = -1):
    context = {"dataset": backend(request).dataset(name), "team": backend(request).team(name), "imported": imported}
    return render(request, "dataset.html", context)


@router.post("/datasets/import", dependencies=[Depends(csrf_protected)])
async def import_file(
    request: Request, dataset: str = Form(...), split: str = Form("train"), file: UploadFile = File(...)
):
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise errors.ResourceExhausted(
            f"file larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB: use `lesslabels import`"
        )
    summary = backend(request).import_data(dataset.strip(), data, split)
    return RedirectResponse(f"/datasets/{summary['dataset']}?imported={summary['imported']}", status_code=303)


@router.get("/datasets/{name}/export.csv")
def export(request: Request, name: str):
    data = backend(request).export_labels(name)
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-labels.csv"'},
    )
