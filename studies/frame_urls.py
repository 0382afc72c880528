"""Signed frame URLs: the viewer's frames served before Django's middleware, with no database.

An ordinary frame request costs a full Django request (session or token, permissions, the
``restrict()`` query, the viewing-window audit check) before any pixel work. A viewer scrolling
a stack asks for hundreds of frames of one study inside one viewing window, so the study is
checked and audited once, when the viewer loads its metadata (the study page, the viewer page,
or ``GET /api/v1/studies/<id>/viewer/``), and the frames come through URLs signed then:

* A **grant** lists the instances of the study that the user was just shown (their stored
  files' local paths, sha256 and frame counts). It is written to the frame cache under the
  sha256 of its content (``grants/<digest>.json``) and never changes afterwards.
* The **token** (query parameter ``t``) is ``user.study.expires.digest.signature``: an HMAC with
  a key derived from ``SECRET_KEY`` over the user, the study, the expiry, the grant's digest
  and a hash of the credential the metadata request was authenticated with (the session key,
  or the API token's key). A leaked URL alone is useless: the same session cookie or
  ``Authorization`` header must come with it. The expiry is ``FRAME_URL_TTL`` seconds away and
  never past the end of the study's viewing window that the metadata request was audited in,
  so every frame fetched with it is counted inside that window.
* :class:`FrameFastPath` wraps the WSGI application. A ``GET`` of
  ``/api/v1/instances/<id>/frames/<n>.raw|.png`` with a token that verifies, for an instance of
  its grant, is answered at once: an uncompressed grey frame as a byte copy of the stored
  pixels (stored values; the metadata says ``rescaled: false``), anything else decoded or
  rendered once into the frame cache. Everything else (no token, a forged, expired or
  mismatched one, another instance, parameters it does not know, a file it cannot read) goes
  on to Django unchanged, where the ordinary endpoint checks scope and audits as always.

What this trades, on purpose and bounded by ``FRAME_URL_TTL``: a user whose access is revoked,
or who signs out, can still fetch the frames of a study granted to them in the last
``FRAME_URL_TTL`` seconds (with the same credential), and frame fetches through a signed URL
neither refresh the session's idle timer nor count against the API throttle.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl

from django.conf import settings
from django.http.cookie import parse_cookie

from studies import frames
from studies.dicom import native
from studies.dicom.errors import DicomError

logger = logging.getLogger(__name__)

TOKEN_PARAM = "t"
_FRAME_PATH = re.compile(r"^/api/v1/instances/(\d{1,12})/frames/(\d{1,6})\.(raw|png)$")
_DIGEST = re.compile(r"^[0-9a-f]{32}$")
_PARAMS = {TOKEN_PARAM, "max_size"}
_CACHE_LIMIT = 4096


# --- signing -------------------------------------------------------------------------------------
def _key() -> bytes:
    secret = settings.SECRET_KEY
    cached = _key_cache.get(secret)
    if cached is None:
        cached = hashlib.sha256(b"mis.studies.frame_urls\0" + secret.encode()).digest()
        _key_cache.clear()
        _key_cache[secret] = cached
    return cached


_key_cache: dict[str, bytes] = {}


def credential_hash(kind: str, value: str) -> bytes:
    return hashlib.sha256(f"{kind}\0{value}".encode()).digest()


def _signature(user_id: int, study_id: int, expires: int, digest: str, credential: bytes) -> str:
    message = f"{user_id}.{study_id}.{expires}.{digest}".encode() + b"\0" + credential
    mac = hmac.digest(_key(), message, "sha256")
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign(user_id: int, study_id: int, expires: int, digest: str, credential: bytes) -> str:
    signature = _signature(user_id, study_id, expires, digest, credential)
    return f"{user_id}.{study_id}.{expires}.{digest}.{signature}"


def request_credential(request) -> bytes | None:
    """The hash of the credential a (DRF or Django) request was authenticated with."""
    from accounts.tokens import ApiToken

    if isinstance(getattr(request, "auth", None), ApiToken):
        parts = request.META.get("HTTP_AUTHORIZATION", "").split()
        return credential_hash("token", parts[1]) if len(parts) == 2 else None
    session = getattr(request, "session", None)
    if session is not None and session.session_key:
        return credential_hash("session", session.session_key)
    return None


def _presented_credentials(environ) -> list[bytes]:
    found = []
    parts = environ.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) == 2 and parts[0].lower() in ("token", "bearer"):
        found.append(credential_hash("token", parts[1]))
    cookie = environ.get("HTTP_COOKIE")
    if cookie:
        session_key = parse_cookie(cookie).get(settings.SESSION_COOKIE_NAME)
        if session_key:
            found.append(credential_hash("session", session_key))
    return found


# --- granting (inside an ordinary, scoped and audited request) ---------------------------------
def _grants_dir() -> Path:
    return Path(settings.FRAME_CACHE_DIR) / "grants"


# Grants by digest, parsed, in this process: the ones it wrote and the ones it read. Both the
# writer and the fast path fill it; content-addressed, so never stale.
_grants: dict[str, dict] = {}


def _remember(digest: str, grant: dict) -> dict:
    if len(_grants) >= _CACHE_LIMIT:
        _grants.clear()
    _grants[digest] = grant
    return grant


def _write_grant(body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()[:32]
    _remember(digest, json.loads(body))
    path = _grants_dir() / digest[:2] / f"{digest}.json"
    if path.exists():  # content-addressed: an existing grant is this one; keep it from pruning
        try:
            os.utime(path)
        except OSError:
            pass
        return digest
    frames._write(path, body)
    return digest


def _window_end(user_id: int, study) -> float:
    """When the study's viewing window that covers now ends for this user."""
    from accounts.audit import VIEW, VIEWING_WINDOW, object_label
    from accounts.models import AuditEvent

    now = time.time()
    if not settings.AUDIT_READS:
        return now + settings.FRAME_URL_TTL
    opened = (
        AuditEvent.objects.filter(
            object_type=object_label(study),
            object_id=str(study.pk),
            user_id=user_id,
            action=VIEW,
            time__gte=_aware(now) - VIEWING_WINDOW,
        )
        .order_by("-time")
        .values_list("time", flat=True)
        .first()
    )
    # No committed event yet: the one this request just sent opens the window now.
    start = opened.timestamp() if opened is not None else now
    return start + VIEWING_WINDOW.total_seconds()


def _aware(seconds: float):
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def viewer_series(study) -> tuple[list[dict], list]:
    """The study's series as the viewer lists them (images with a stored file only), and
    those image instances."""
    from studies import selectors

    series, shown = [], []
    for s in selectors.study_series(study=study):
        images = [i for i in s.instances.all() if i.is_image and i.file]
        if not images:
            continue
        shown.extend(images)
        series.append(
            {
                "id": s.pk,
                "label": f"{s.modality} {s.number if s.number is not None else ''} "
                f"{s.description}".strip(),
                "first_instance": images[0].pk,
                "instances": [
                    {
                        "id": i.pk,
                        "number": i.number,
                        "frames": i.frames,
                        "rows": i.rows,
                        "columns": i.columns,
                    }
                    for i in images
                ],
            }
        )
    return series, shown


def frame_grant(*, request, study, instances) -> dict | None:
    """Sign frame URLs for ``instances`` of ``study`` (the caller found the study through
    ``restrict()`` and audited the view): ``{"token", "expires"}``, or ``None`` when the request
    has no credential to bind them to (the viewer then uses the ordinary endpoints)."""
    user = getattr(request, "user", None)
    credential = request_credential(request)
    if user is None or not user.is_authenticated or credential is None:
        return None
    entries = {}
    for instance in instances:
        if not instance.file or not instance.is_image:
            continue
        path = frames.stored_path(instance)
        if path is not None:
            entries[str(instance.pk)] = [
                path,
                frames.cache_key(instance),
                instance.frames,
                instance.pixel_layout,
                instance.size,
            ]
    body = json.dumps(
        {"study": study.pk, "instances": entries}, sort_keys=True, separators=(",", ":")
    ).encode()
    digest = _write_grant(body)
    expires = int(min(time.time() + settings.FRAME_URL_TTL, _window_end(user.pk, study)))
    return {"token": sign(user.pk, study.pk, expires, digest, credential), "expires": expires}


# --- the fast path -------------------------------------------------------------------------------
class FrameFastPath:
    """WSGI middleware: frames requested with a valid signed URL, without Django; everything
    else to ``app``."""

    def __init__(self, app, *, warm_up: bool = False):
        self.app = app
        self.located: dict[str, native.NativeFrames | None] = {}
        if warm_up:
            _warm_up()

    def __call__(self, environ, start_response):
        if (
            environ.get("REQUEST_METHOD") == "GET"
            and "t=" in environ.get("QUERY_STRING", "")
            and environ.get("PATH_INFO", "").startswith("/api/v1/instances/")
        ):
            try:
                served = self.serve(environ, start_response)
            except Exception:  # never worse than the ordinary endpoint
                logger.exception("signed frame URL: falling back to the ordinary endpoint")
                served = None
            if served is not None:
                return served
        return self.app(environ, start_response)

    def serve(self, environ, start_response):
        """The response for a verified signed frame URL, or ``None`` to let Django answer."""
        match = _FRAME_PATH.match(environ["PATH_INFO"])
        if match is None or not self._secure_enough(environ):
            return None
        params = parse_qsl(environ["QUERY_STRING"], keep_blank_values=True)
        names = [name for name, _ in params]
        if len(set(names)) != len(names) or not {TOKEN_PARAM} <= set(names) <= _PARAMS:
            return None
        values = dict(params)
        grant = self.verify(values[TOKEN_PARAM], environ)
        if grant is None:
            return None
        entry = grant["instances"].get(match.group(1))
        if entry is None:
            return None
        path, sha, frame_count = entry[:3]
        frame = int(match.group(2))
        if frame >= frame_count:
            return None
        max_size = None
        if "max_size" in values:
            try:
                max_size = int(values["max_size"])
            except ValueError:
                return None
            if not 64 <= max_size <= 16384:
                return None
        try:
            if match.group(3) == "png":
                # Removed images (their files deleted) are never served from the frame cache.
                os.stat(path)
                png = frames.rendered_png(sha, path, frame, None, max_size)
                return self._respond(start_response, "image/png", [png], len(png), environ)
            # A removed image's file is gone: opening it fails.
            return self._raw(environ, start_response, entry, frame, max_size)
        except (OSError, DicomError):
            return None  # Django gives the reason (removed file, undecodable image)

    def verify(self, token: str, environ) -> dict | None:
        """The grant of a token that is well formed, unexpired, signed for a credential this
        request presents, and whose grant is on disk; ``None`` otherwise."""
        parts = token.split(".")
        if len(parts) != 5 or not _DIGEST.match(parts[3]):
            return None
        try:
            user_id, study_id, expires = int(parts[0]), int(parts[1]), int(parts[2])
        except ValueError:
            return None
        if expires < time.time():
            return None
        presented = parts[4].encode()
        for credential in _presented_credentials(environ):
            expected = _signature(user_id, study_id, expires, parts[3], credential).encode()
            if hmac.compare_digest(expected, presented):
                break
        else:
            return None
        grant = self._grant(parts[3])
        if grant is None or grant.get("study") != study_id:
            return None
        return grant

    def _grant(self, digest: str) -> dict | None:
        grant = _grants.get(digest)
        if grant is not None:
            return grant
        try:
            body = (_grants_dir() / digest[:2] / f"{digest}.json").read_bytes()
        except OSError:
            return None
        if hashlib.sha256(body).hexdigest()[:32] != digest:
            return None  # half written or damaged: Django answers
        return _remember(digest, json.loads(body))

    def _raw(self, environ, start_response, entry: list, frame: int, max_size):
        path, sha = entry[0], entry[1]
        handle = open(path, "rb", buffering=0)  # the server closes it once sent
        try:
            size = os.fstat(handle.fileno()).st_size
            located = self._located(path, entry, size, handle)
            if (
                located is not None
                and frame < located.frames
                and (
                    max_size is None
                    or max(located.meta["rows"], located.meta["columns"]) <= max_size
                )
            ):
                start = located.offset + frame * located.frame_bytes
                handle.seek(start)
                meta = located.frame_json(frame)
                length = located.frame_bytes
                remaining = size - start
            else:
                handle.close()
                handle, decoded_meta = frames.decoded_frame(sha, path, frame, max_size)
                meta = json.dumps(decoded_meta, separators=(",", ":"))
                length = remaining = _remaining(handle)
        except BaseException:
            handle.close()
            raise
        # The server's file wrapper (sendfile) sends the rest of the file: only for a frame that
        # ends the file (WSGI servers other than gunicorn, runserver's among them, do not stop at
        # Content-Length); a frame followed by others is sent in chunks of its own length.
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper and remaining == length:
            body = wrapper(handle, 256 * 1024)
        else:
            body = _chunks(handle, length)
        extra = [("X-Frame-Metadata", meta)]
        octet = "application/octet-stream"
        return self._respond(start_response, octet, body, length, environ, extra)

    def _located(self, path: str, entry: list, size: int, handle) -> native.NativeFrames | None:
        """Where the file's frames lie: from the grant (found at import and kept with the
        instance) when the file is the size it had then, else by walking its header once."""
        located = self.located.get(path, False)
        if located is False:
            kept = entry[3] if len(entry) > 4 else None
            located = native.NativeFrames.from_dict(kept) if kept else None
            if located is None or entry[4] != size:
                located = native.locate_fd(handle.fileno())
            if len(self.located) >= _CACHE_LIMIT:
                self.located.clear()
            self.located[path] = located
        if located is not None and located.offset + located.frames * located.frame_bytes > size:
            return None  # the file is shorter than it was: decode it the ordinary way
        return located

    def _respond(self, start_response, content_type, body, length, environ, extra=()):
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(length)),
            ("Cache-Control", "private, no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", settings.SECURE_REFERRER_POLICY or "same-origin"),
            *extra,
        ]
        if settings.SECURE_HSTS_SECONDS and _is_secure(environ):
            headers.append(("Strict-Transport-Security", f"max-age={settings.SECURE_HSTS_SECONDS}"))
        start_response("200 OK", headers)
        return body

    def _secure_enough(self, environ) -> bool:
        """Where Django would redirect to HTTPS, let it."""
        return not settings.SECURE_SSL_REDIRECT or _is_secure(environ)


def _warm_up() -> None:
    """Decode and encode a tiny image once, so that the worker's first frame does not pay for
    loading pydicom's pixel decoders and the PNG encoder (a quarter of a second)."""
    import io

    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    from studies.dicom.render import render_png

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows = ds.Columns = ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = np.zeros((1, 1), dtype="<u2").tobytes()
    buffer = io.BytesIO()
    try:
        pydicom.dcmwrite(buffer, ds, enforce_file_format=False)
        render_png(buffer.getvalue())
    except Exception:  # only an optimisation
        logger.warning("frame fast path: warm-up failed", exc_info=True)


def _is_secure(environ) -> bool:
    if environ.get("wsgi.url_scheme") == "https":
        return True
    header = settings.SECURE_PROXY_SSL_HEADER
    if header:
        name, value = header
        return environ.get(name) == value
    return False


def _remaining(handle) -> int:
    position = handle.tell()
    try:
        return os.fstat(handle.fileno()).st_size - position
    except (AttributeError, OSError, ValueError):  # in memory
        end = handle.seek(0, 2)
        handle.seek(position)
        return end - position


def _chunks(handle, length: int):
    try:
        while length > 0:
            block = handle.read(min(length, 256 * 1024))
            if not block:
                break
            length -= len(block)
            yield block
    finally:
        handle.close()
