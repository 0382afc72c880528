"""The viewer's frames, decoded (or rendered to PNG) once and kept in a disk cache.

The cache is keyed by the stored file's sha256, the frame and the downsampling size (and, for
PNG, the window), so a file replaced under the same instance never serves stale pixels, and
nothing in the database refers to it (no DerivedImage rows). A raw entry is one file: a 4-byte
little-endian length, the metadata as JSON, then the pixels; a PNG entry is the PNG. Entries
are written to a temporary name and renamed into place, so a reader never sees half an entry.
The cache is pruned (oldest first) past ``FRAME_CACHE_MAX_MB``; deleting it at any time is safe.

The functions taking ``sha``/``source`` need no database: the signed-URL fast path
(``studies.frame_urls``) calls them before Django's middleware.
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
from studies.dicom.render import render_png
from studies.models import Instance
from studies.responses import NoImage, _require_file

PRUNE_EVERY = 50  # on average, one write in this many checks the cache's size


def cache_key(instance: Instance) -> str:
    return instance.sha256 or f"instance-{instance.pk}"


def entry_path(sha: str, frame: int, max_size: int | None) -> Path:
    return Path(settings.FRAME_CACHE_DIR) / sha[:2] / f"{sha}-{frame}-{max_size or 0}.frame"


def cache_path(instance: Instance, frame: int, max_size: int | None) -> Path:
    return entry_path(cache_key(instance), frame, max_size)


def png_path(sha: str, frame: int, window, max_size: int | None) -> Path:
    shown = "header" if window is None else f"{float(window[0]):g}_{float(window[1]):g}"
    return Path(settings.FRAME_CACHE_DIR) / sha[:2] / f"{sha}-{frame}-{max_size or 0}-{shown}.png"


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
    _write(path, struct.pack("<I", len(header)), header, body)


def _write(path: Path, *parts) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                out.write(part)
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
    for entry in (*root.glob("*/*.frame"), *root.glob("*/*.png")):
        try:
            stat = entry.stat()
        except FileNotFoundError:
            continue
        entries.append((stat.st_mtime, stat.st_size, entry))
    _prune_grants(root)
    total = sum(size for _, size, _ in entries)
    deleted = 0
    for _mtime, size, entry in sorted(entries):
        if total <= limit:
            break
        entry.unlink(missing_ok=True)
        total -= size
        deleted += 1
    return deleted


def stored_path(instance: Instance) -> str | None:
    """The stored file's local path, or ``None`` where the storage has none (object storage)."""
    try:
        return default_storage.path(instance.file.name)
    except NotImplementedError:
        return None


def _prune_grants(root: Path) -> None:
    """Signed-URL grants (studies.frame_urls) no token can still use."""
    import time

    stale = time.time() - 2 * settings.FRAME_URL_TTL - 60
    for grant in root.glob("grants/*/*.json"):
        try:
            if grant.stat().st_mtime < stale:
                grant.unlink(missing_ok=True)
        except FileNotFoundError:
            continue


def _decode(source, frame: int, max_size: int | None):
    """Decode from the file's path where there is one (only the frame is read), else from the
    opened file (object storage): ``source`` is then a callable opening it."""
    if not callable(source):
        return raw_frame(source, frame, max_size=max_size)
    with source() as handle:
        return raw_frame(handle, frame, max_size=max_size)


def _source(instance: Instance):
    path = stored_path(instance)
    return path if path is not None else (lambda: default_storage.open(instance.file.name, "rb"))


def decoded_frame(sha: str, source, frame: int, max_size: int | None = None):
    """``(open file positioned at the pixels, metadata)`` from the cache, decoding ``source``
    (a path, or a callable opening the file) on a miss. Needs no database.

    Raises DicomError (and its kinds) and OSError as the decoding does."""
    path = entry_path(sha, frame, max_size)
    cached = _open_cached(path)
    if cached is not None:
        return cached
    body, meta = _decode(source, frame, max_size)
    _store(path, body, meta)
    cached = _open_cached(path)
    if cached is not None:
        return cached
    import io

    return io.BytesIO(bytes(body)), meta  # the cache could not be written: serve from memory


def rendered_png(sha: str, source, frame: int, window=None, max_size: int | None = None):
    """The frame rendered to an 8-bit PNG (``window`` or the header's), from the cache or
    rendered from ``source`` (a path, or a callable opening the file) and kept. Needs no
    database. Raises DicomError (and its kinds) and OSError as rendering does."""
    path = png_path(sha, frame, window, max_size)
    try:
        return path.read_bytes()
    except OSError:
        pass
    if callable(source):
        with source() as handle:
            png = render_png(handle, frame, window=window, max_size=max_size)
    else:
        png = render_png(source, frame, window=window, max_size=max_size)
    _write(path, png)
    return png


def frame_data(instance: Instance, *, frame: int, max_size: int | None = None):
    """``(open file positioned at the pixels, metadata)`` from the cache, decoding on a miss."""
    _require_file(instance)
    if not instance.is_image:
        raise NoImage(_("This instance is a document; it has no image."))
    try:
        return decoded_frame(cache_key(instance), _source(instance), frame, max_size)
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
