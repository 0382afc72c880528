"""The viewer's raw frames: full bit depth with metadata, decoded once and kept in a disk cache.

The cache is keyed by the stored file's sha256, the frame and the downsampling size, so a file
replaced under the same instance never serves stale pixels, and nothing in the database refers
to it (no DerivedImage rows). Each entry is one file: a 4-byte little-endian length, the
metadata as JSON, then the pixels; it is written to a temporary name and renamed into place, so
a reader never sees half an entry. The cache is pruned (oldest first) past
``FRAME_CACHE_MAX_MB``; deleting it at any time is safe.
"""

from __future__ import annotations

import json
import os
import random
import struct
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from django.utils.translation import gettext as _

from accounts.audit import Actor, audit_view
from studies.dicom.errors import DicomError, FrameIndexError, NoPixelDataError
from studies.dicom.raw import raw_frame
from studies.models import Instance
from studies.responses import NoImage, _require_file

PRUNE_EVERY = 50  # on average, one write in this many checks the cache's size


def cache_path(instance: Instance, frame: int, max_size: int | None) -> Path:
    sha = instance.sha256 or f"instance-{instance.pk}"
    return Path(settings.FRAME_CACHE_DIR) / sha[:2] / f"{sha}-{frame}-{max_size or 0}.frame"


def _open_cached(path: Path):
    """The open entry positioned at its pixels, and its metadata; ``None`` when absent."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    try:
        (length,) = struct.unpack("<I", handle.read(4))
        meta = json.loads(handle.read(length))
    except (struct.error, ValueError):  # a damaged entry: drop it and decode again
        handle.close()
        path.unlink(missing_ok=True)
        return None
    return handle, meta


def _store(path: Path, body: bytes, meta: dict) -> None:
    header = json.dumps(meta, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(struct.pack("<I", len(header)))
            out.write(header)
            out.write(body)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)  # a full disk costs the cache, not the request
        return
    if random.randrange(PRUNE_EVERY) == 0:
        cache_prune()


def cache_prune(max_bytes: int | None = None) -> int:
    """Delete the least recently written entries until the cache fits; returns files deleted."""
    limit = settings.FRAME_CACHE_MAX_MB * 1024 * 1024 if max_bytes is None else max_bytes
    root = Path(settings.FRAME_CACHE_DIR)
    entries = []
    for entry in root.glob("*/*.frame"):
        try:
            stat = entry.stat()
        except FileNotFoundError:
            continue
        entries.append((stat.st_mtime, stat.st_size, entry))
    total = sum(size for _, size, _ in entries)
    deleted = 0
    for _mtime, size, entry in sorted(entries):
        if total <= limit:
            break
        entry.unlink(missing_ok=True)
        total -= size
        deleted += 1
    return deleted


def _decode(instance: Instance, frame: int, max_size: int | None):
    """Decode from the file's path where the storage has one (only the frame is read), else
    from the opened file (object storage)."""
    try:
        path = default_storage.path(instance.file.name)
    except NotImplementedError:
        path = None
    if path is not None:
        return raw_frame(path, frame, max_size=max_size)
    with default_storage.open(instance.file.name, "rb") as handle:
        return raw_frame(handle, frame, max_size=max_size)


def frame_data(instance: Instance, *, frame: int, max_size: int | None = None):
    """``(open file positioned at the pixels, metadata)`` from the cache, decoding on a miss."""
    _require_file(instance)
    if not instance.is_image:
        raise NoImage(_("This instance is a document; it has no image."))
    path = cache_path(instance, frame, max_size)
    cached = _open_cached(path)
    if cached is not None:
        return cached
    try:
        body, meta = _decode(instance, frame, max_size)
    except FrameIndexError:
        raise NoImage(
            _("There is no frame %(frame)d: this instance has %(count)d frame(s), from 0.")
            % {"frame": frame, "count": instance.frames}
        ) from None
    except NoPixelDataError:
        raise NoImage(_("This instance is a document; it has no image.")) from None
    except DicomError as exc:
        raise NoImage(_("This image cannot be rendered: %(reason)s") % {"reason": exc}) from None
    except OSError:
        raise NoImage(
            _("The stored file of this image cannot be read; ask an administrator to check it.")
        ) from None
    _store(path, body, meta)
    cached = _open_cached(path)
    if cached is not None:
        return cached
    import io

    return io.BytesIO(bytes(body)), meta  # the cache could not be written: serve from memory


def raw_frame_response(request, instance: Instance, *, frame: int, max_size: int | None = None):
    """One frame at full bit depth (``application/octet-stream``, little-endian) with its
    metadata as JSON in the ``X-Frame-Metadata`` header; audited inside the study's viewing
    window, like the rendered frames and thumbnails."""
    handle, meta = frame_data(instance, frame=frame, max_size=max_size)
    audit_view(
        actor=Actor.from_request(request),
        obj=instance.series.study,
        details={"instance": instance.pk, "frame": frame, "raw": True},
    )
    response = FileResponse(handle, content_type="application/octet-stream")
    response["X-Frame-Metadata"] = json.dumps(meta, separators=(",", ":"))
    response["Cache-Control"] = "private, no-store"
    return response
