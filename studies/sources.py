"""Where files for ingest come from: one file, a folder, a ZIP (streamed to disk) or a DICOMDIR.

:func:`iter_sources` yields ``(display name, path or None, error message)`` one file at a time,
so a 1 GB ZIP or a whole CD never sits in memory; ZIP members live in a temporary folder only
while they are being imported.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from studies.dicom import archive
from studies.dicom.errors import DicomError

Source = tuple[str, Path | None, str]


def limits() -> archive.ArchiveLimits:
    return archive.ArchiveLimits(
        max_total_bytes=settings.STUDIES_MAX_ZIP_BYTES,
        max_member_bytes=settings.STUDIES_MAX_FILE_BYTES,
    )


def iter_sources(path: Path) -> Iterator[Source]:
    path = Path(path)
    if path.is_dir():
        dicomdir = archive.find_dicomdir(path)
        if dicomdir is not None:
            yield from _dicomdir(dicomdir)
        else:
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if not archive.is_junk(file.name):
                    yield from _file(file, str(file.relative_to(path)))
        return
    if path.name.upper() == "DICOMDIR":
        yield from _dicomdir(path)
        return
    yield from _file(path, path.name)


def _file(path: Path, name: str) -> Iterator[Source]:
    if zipfile.is_zipfile(path):
        yield from _zip(path, name)
    else:
        yield name, path, ""


def _zip(path: Path, name: str) -> Iterator[Source]:
    with tempfile.TemporaryDirectory(prefix="mis-zip-") as scratch:
        try:
            members = list(archive.extract_zip(path, scratch, limits=limits()))
        except DicomError as exc:
            yield name, None, str(exc)
            return
        root = Path(scratch)
        dicomdir = archive.find_dicomdir(root)
        if dicomdir is not None:
            yield from _dicomdir(dicomdir, prefix=f"{name}/")
            return
        for member in members:
            if not member.ok:
                yield f"{name}/{member.name}", None, str(member.error)
            elif not member.is_dicomdir:
                yield f"{name}/{member.name}", member.path, ""


def _dicomdir(path: Path, prefix: str = "") -> Iterator[Source]:
    try:
        entries = archive.read_dicomdir(path)
    except DicomError as exc:
        yield f"{prefix}{path.name}", None, str(exc)
        return
    for entry in entries:
        yield f"{prefix}{entry.file_id}", entry.path, str(entry.error) if entry.error else ""
