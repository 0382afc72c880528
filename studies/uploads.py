"""One uploaded file (page or API) into the ingest service: a ZIP is saved to a temporary file
and imported member by member (never held in memory); any other file goes straight in."""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from pathlib import Path

from django.core.files.uploadedfile import UploadedFile

from accounts.audit import Actor
from studies.ingest import REJECTED, IngestResult, StudyFields, ingest_file, ingest_files
from studies.sources import iter_sources


def safe_name(name: str) -> str:
    """The last part of a client's file name, reduced to characters safe on any disk."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w.\- ]", "_", base).strip(" .")
    return base[:120] or "upload"


def ingest_uploads(
    *, actor: Actor, uploads: list[UploadedFile], fields: StudyFields
) -> list[IngestResult]:
    """Import the files of one request, in their order; a ZIP gives one result per member.
    Plain files are imported together (``ingest_files``: one transaction for all of them)."""
    slots: list = []  # per upload: ("plain", index into items) or ("zip", results)
    items = []
    for upload in uploads:
        direct = _plain(upload)
        if direct is None:
            slots.append(("zip", ingest_upload(actor=actor, upload=upload, fields=fields)))
        else:
            slots.append(("plain", len(items)))
            items.append((direct, (upload.name or "upload")[:300]))
    imported = ingest_files(actor=actor, items=items, fields=fields) if items else []
    results: list[IngestResult] = []
    for kind, value in slots:
        results += value if kind == "zip" else [imported[value]]
    return results


def _plain(upload: UploadedFile) -> bytes | Path | None:
    """A file that is no ZIP, as its bytes (held in memory by Django already) or its path
    (spooled to disk by Django); ``None`` for a ZIP."""
    if hasattr(upload, "temporary_file_path"):
        path = Path(upload.temporary_file_path())
        return None if zipfile.is_zipfile(path) else path
    upload.seek(0)
    data = upload.read()
    return None if zipfile.is_zipfile(io.BytesIO(data)) else data


def ingest_upload(
    *, actor: Actor, upload: UploadedFile, fields: StudyFields, name: str | None = None
) -> list[IngestResult]:
    """Import one uploaded file; a ZIP gives one result per member."""
    display = (name or upload.name or "upload")[:300]
    if not hasattr(upload, "temporary_file_path"):
        upload.seek(0)
        data = upload.read()  # small enough that Django kept it in memory: no copy to disk
        if not zipfile.is_zipfile(io.BytesIO(data)):
            return [ingest_file(actor=actor, data=data, name=display, fields=fields)]
        upload.seek(0)
    with tempfile.TemporaryDirectory(prefix="mis-upload-") as scratch:
        if hasattr(upload, "temporary_file_path"):
            path = Path(upload.temporary_file_path())  # already on disk: no second copy
        else:
            path = Path(scratch) / safe_name(display)
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
        if not zipfile.is_zipfile(path):
            return [ingest_file(actor=actor, data=path, name=display, fields=fields)]
        results = []
        for member, member_path, error in iter_sources(path):
            member_name = display + member[len(path.name) :]
            if error:
                results.append(IngestResult(member_name, REJECTED, error))
            else:
                results.append(
                    ingest_file(actor=actor, data=member_path, name=member_name, fields=fields)
                )
        return results
