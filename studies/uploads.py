"""One uploaded file (page or API) into the ingest service: a ZIP is saved to a temporary file
and imported member by member (never held in memory); any other file goes straight in."""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import (
    InMemoryUploadedFile,
    TemporaryUploadedFile,
    UploadedFile,
)
from django.core.files.uploadhandler import FileUploadHandler
from django.http import QueryDict
from django.http.multipartparser import MultiPartParser
from django.utils.datastructures import MultiValueDict
from django.utils.encoding import force_str
from django.utils.http import parse_header_parameters

from accounts.audit import Actor
from studies.ingest import REJECTED, IngestResult, StudyFields, ingest_file, ingest_files
from studies.sources import iter_sources


def safe_name(name: str) -> str:
    """The last part of a client's file name, reduced to characters safe on any disk."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w.\- ]", "_", base).strip(" .")
    return base[:120] or "upload"


# The files of one upload request are kept in memory up to this many bytes in all (Django's
# default keeps none of a request over 2.5 MB: 20 files of 512 KB each went to temporary files,
# written, then read again to hash, parse and store them); what comes after is spooled to disk.
UPLOAD_MEMORY_BYTES = 16 * 1024 * 1024


class IngestUploadHandler(FileUploadHandler):
    """The upload API's files: each hashed (sha256, as ``upload.sha256``) while it streams in,
    held in memory while the request's files stay within ``UPLOAD_MEMORY_BYTES`` altogether,
    else written to a temporary file."""

    def __init__(self, request=None, *, whole_body: bool = True):
        super().__init__(request)
        self.limit = getattr(settings, "STUDIES_UPLOAD_MEMORY_BYTES", UPLOAD_MEMORY_BYTES)
        self.held = 0  # bytes of this request's files kept in memory
        self.whole_body = whole_body

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        """A request body within the memory limit is read at once and, when it is the plain
        form every client sends (only file parts, CRLF framing, Content-Disposition and
        Content-Type headers), split with ``bytes.find`` into the very files Django's parser
        would give (``_plain_multipart``): its chunk-by-chunk boundary search and copies cost
        about as much as hashing the files. Any other body is parsed by Django's parser, from
        the bytes read, exactly as before."""
        if not self.whole_body or not 0 < content_length <= self.limit:
            return None
        body = input_data.read(content_length)
        encoding = encoding or settings.DEFAULT_CHARSET
        parsed = _plain_multipart(body, boundary, encoding) if len(body) == content_length else None
        if parsed is not None:
            return parsed
        handler = IngestUploadHandler(self.request, whole_body=False)
        return MultiPartParser(META, io.BytesIO(body), [handler], encoding).parse()

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.digest = hashlib.sha256()
        self.buffer: io.BytesIO | None = io.BytesIO()
        self.spooled: TemporaryUploadedFile | None = None

    def receive_data_chunk(self, raw_data, start):
        self.digest.update(raw_data)
        if self.spooled is None and self.held + len(raw_data) > self.limit:
            self.spooled = TemporaryUploadedFile(
                self.file_name, self.content_type, 0, self.charset, self.content_type_extra
            )
            self.spooled.write(self.buffer.getbuffer())
            self.held -= self.buffer.tell()
            self.buffer = None
        if self.spooled is not None:
            self.spooled.write(raw_data)
        else:
            self.buffer.write(raw_data)
            self.held += len(raw_data)
        return None

    def file_complete(self, file_size):
        if self.spooled is not None:
            upload = self.spooled
            upload.seek(0)
            upload.size = file_size
        else:
            self.buffer.seek(0)
            upload = InMemoryUploadedFile(
                self.buffer,
                self.field_name,
                self.file_name,
                self.content_type,
                file_size,
                self.charset,
                self.content_type_extra,
            )
        upload.sha256 = self.digest.hexdigest()
        return upload


_HEADER_NAMES = frozenset({"content-disposition", "content-type"})


def _plain_multipart(body: bytes, boundary: bytes, encoding: str):
    """``(POST, FILES)`` of a multipart body made only of file parts in the plain form, as
    Django's ``MultiPartParser`` with ``IngestUploadHandler`` gives them (in memory, with
    ``sha256``); ``None`` for anything else (fields, a preamble or epilogue, other headers or
    transfer encodings, LF-only framing, a file name Django would drop, more files than
    ``DATA_UPLOAD_MAX_NUMBER_FILES``, a cut body), which Django's parser then reads."""
    separator = b"--" + boundary
    if not body.startswith(separator):
        return None
    files = MultiValueDict()
    count, position = 0, len(separator)
    while True:
        if body.startswith(b"--", position):  # the closing delimiter
            if body[position + 2 :] not in (b"", b"\r\n"):
                return None
            break
        if not body.startswith(b"\r\n", position):
            return None
        following = body.find(separator, position)
        header_end = body.find(b"\r\n\r\n", position, following)
        if following < 0 or header_end <= position or header_end + 4 - position > 1024:
            return None
        if body[following - 2 : following] != b"\r\n" or following - 2 < header_end + 4:
            return None
        headers = {}
        for line in body[position + 2 : header_end].split(b"\r\n"):
            try:
                main, params = parse_header_parameters(line.decode())
                name, value = main.split(":", 1)
            except ValueError:
                return None
            if name not in _HEADER_NAMES or name in headers:
                return None
            headers[name] = (value, {k: v.encode() for k, v in params.items()})
        disposition = headers.get("content-disposition", (None, {}))[1]
        if "name" not in disposition or not disposition.get("filename"):
            return None  # a field, or a part Django skips
        file_name = MultiPartParser.sanitize_file_name(
            None, force_str(disposition["filename"], encoding, errors="replace")
        )
        count += 1
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        if not file_name or (limit is not None and count > limit):
            return None
        field_name = force_str(disposition["name"].strip(), encoding, errors="replace")
        content_type, extra = headers.get("content-type", ("", {}))
        data = body[header_end + 4 : following - 2]
        upload = InMemoryUploadedFile(
            io.BytesIO(data),
            field_name,
            file_name,
            content_type.strip(),
            len(data),
            extra.get("charset"),
            extra,
        )
        upload.sha256 = hashlib.sha256(data).hexdigest()
        files.appendlist(field_name, upload)
        position = following + len(separator)
    post = QueryDict(mutable=True)
    post._mutable = False
    return post, files


def ingest_uploads(
    *, actor: Actor, uploads: list[UploadedFile], fields: StudyFields
) -> list[IngestResult]:
    """Import the files of one request, in their order; a ZIP gives one result per member.
    Plain files are imported together (``ingest_files``: one transaction for all of them)."""
    slots: list = []  # per upload: ("plain", index into items) or ("zip", results)
    items, digests = [], []
    for upload in uploads:
        direct = _plain(upload)
        if direct is None:
            slots.append(("zip", ingest_upload(actor=actor, upload=upload, fields=fields)))
        else:
            slots.append(("plain", len(items)))
            items.append((direct, (upload.name or "upload")[:300]))
            digests.append(getattr(upload, "sha256", None))  # from IngestUploadHandler
    imported = (
        ingest_files(actor=actor, items=items, fields=fields, digests=digests) if items else []
    )
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
