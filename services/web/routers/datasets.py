"""Datasets: counts per label and split, import of a file, export of the labels people gave."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from lesslabels.common import errors
from lesslabels.web.app import public_message, status_of
from lesslabels.web.importform import FORMATS, ImportOptions, in_form_words
from lesslabels.web.routers.common import backend, csrf_protected, render

router = APIRouter()
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


@router.get("/datasets")
def datasets_page(request: Request):
    return render(request, "datasets.html", {"datasets": backend(request).list_datasets(), "formats": FORMATS})


@router.get("/datasets/{name}")
def dataset_page(request: Request, name: str, imported: int = -1):
    context = {
        "dataset": backend(request).dataset(name),
        "team": backend(request).team(name),
        "imported": imported,
        "formats": FORMATS,
    }
    return render(request, "dataset.html", context)


@router.post("/datasets/import", dependencies=[Depends(csrf_protected)])
async def import_file(
    request: Request,
    dataset: str = Form(...),
    split: str = Form("train"),
    file: UploadFile = File(...),
    format: str = Form("auto"),
    text_column: str = Form(""),
    label_column: str = Form(""),
    id_column: str = Form(""),
    ignore_extra: bool = Form(False),
    allow_similar_labels: bool = Form(False),
    action: str = Form("import"),
):
    """Import a file, or with ``action=check`` a dry run that stores nothing and shows what an import
    would store. A refused file comes back on the same form, its problem in the form's words."""
    options = ImportOptions(
        dataset=dataset.strip(),
        split=split,
        format=format,
        text_column=text_column.strip(),
        label_column=label_column.strip(),
        id_column=id_column.strip(),
        ignore_extra=ignore_extra,
        allow_similar_labels=allow_similar_labels,
    )
    check = action == "check"
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    context = {"form": options, "formats": FORMATS, "file_name": file.filename or "", "summary": None, "problem": ""}
    try:
        if len(data) > MAX_UPLOAD_BYTES:
            raise errors.ResourceExhausted(
                f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB: split it, or import it from "
                "the command line (lesslabels import)"
            )
        summary = backend(request).import_data(options.dataset, data, options=options, check=check)
    except errors.LessLabelsError as exc:
        problem = in_form_words(public_message(exc))
        return render(request, "import.html", {**context, "problem": problem}, status_code=status_of(exc))
    if check:
        return render(request, "import.html", {**context, "summary": summary})
    return RedirectResponse(f"/datasets/{summary['dataset']}?imported={summary['imported']}", status_code=303)


@router.get("/datasets/{name}/export.csv")
def export(request: Request, name: str):
    data = backend(request).export_labels(name)
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-labels.csv"'},
    )
