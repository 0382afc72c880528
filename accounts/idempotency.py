"""Safe retries for API writes: the ``Idempotency-Key`` request header.

Decorate a DRF view method (an action or ``create``) with :func:`idempotent`::

    @extend_schema(summary="Sign the report", ...)
    @action(detail=True, methods=["post"])
    @idempotent
    def sign(self, request, pk=None): ...

A request without the header runs as before. With it:

* the first request with a key runs and its response (status, JSON body) is stored with the key,
  the user and a fingerprint of the request (method, path, body; for uploaded files their size
  and SHA-256);
* a retry with the same key and the same request gets the stored response again, with
  ``Idempotent-Replayed: true``; nothing runs a second time;
* the same key with a different request is refused with 422 ``idempotency_key_reused``;
* a retry while the first is still running gets 409 ``idempotency_in_progress`` with
  ``Retry-After``;
* a response with a 5xx status (or an exception) is not stored: the key is released and a
  retry runs again. Keys expire after ``IDEMPOTENCY_KEY_HOURS`` (default 24) and are purged by
  the beat task ``accounts.tasks.idempotency_purge``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.response import Response

from accounts.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"
# Statuses worth replaying: everything the client should not simply retry. 409 and 429 say
# "try again later"; 5xx is our failure. Those release the key instead.
_NOT_STORED = {status.HTTP_409_CONFLICT, status.HTTP_429_TOO_MANY_REQUESTS}
_REPLAYED_HEADERS = ("Location", "Content-Type")

SCHEMA_PARAMETER = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any unique string (a UUID) chosen by the client, at most 255 characters. A retry with "
        "the same key and the same request replays the first response instead of doing the "
        "work again (header Idempotent-Replayed: true); the same key with a different request "
        "is refused with 422. Keys are kept for 24 hours, per user."
    ),
)


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = _(
        "This Idempotency-Key was already used for a different request; use a new key for a "
        "new request."
    )


class IdempotencyInProgress(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_in_progress"
    default_detail = _(
        "A request with this Idempotency-Key is still being processed; retry in a moment."
    )
    wait = 1  # seconds: DRF's exception handler sends it as Retry-After


def key_lifetime() -> dt.timedelta:
    return dt.timedelta(hours=getattr(settings, "IDEMPOTENCY_KEY_HOURS", 24))


def fingerprint(request) -> str:
    """SHA-256 of the method, the path and the body: JSON canonically, a form field by field,
    an uploaded file by its name, size and contents (read in chunks, then rewound)."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    data = request.data
    if hasattr(data, "lists"):  # a QueryDict: form fields
        items = sorted((k, [str(v) for v in values]) for k, values in data.lists())
        digest.update(json.dumps(items, ensure_ascii=False).encode())
    else:
        digest.update(json.dumps(data, sort_keys=True, default=str, ensure_ascii=False).encode())
    for name in sorted(request.FILES):
        for upload in request.FILES.getlist(name):
            digest.update(f"\nfile {name} {upload.name} {upload.size}\n".encode())
            for chunk in upload.chunks():
                digest.update(chunk)
            upload.seek(0)
    return digest.hexdigest()


def _key_from(request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise exceptions.ValidationError(
            {
                HEADER: [
                    _("Give an Idempotency-Key of 1 to %(max)d printable characters.")
                    % {"max": MAX_KEY_LENGTH}
                ]
            }
        )
    return key


def _replay(record: IdempotencyKey) -> Response:
    response = Response(record.response_body, status=record.response_status)
    for name, value in (record.response_headers or {}).items():
        if name != "Content-Type":
            response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _claim(user, key: str, print_: str) -> IdempotencyKey | None:
    """Our new row for the key, or None when a live row exists (returned via the caller)."""
    IdempotencyKey.objects.filter(
        user=user, key=key, created_at__lt=timezone.now() - key_lifetime()
    ).delete()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(user=user, key=key, fingerprint=print_)
    except IntegrityError:
        return None


def idempotent(view_method):
    """Make a DRF view method honour ``Idempotency-Key`` (see the module's docstring)."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = _key_from(request)
        if key is None or not request.user.is_authenticated:
            return view_method(self, request, *args, **kwargs)
        print_ = fingerprint(request)
        record = _claim(request.user, key, print_)
        if record is None:
            existing = IdempotencyKey.objects.filter(user=request.user, key=key).first()
            if existing is None:  # expired and purged between the two queries: run once more
                record = _claim(request.user, key, print_)
                if record is None:
                    raise IdempotencyInProgress
            elif existing.fingerprint != print_:
                raise IdempotencyKeyReused
            elif existing.completed_at is None:
                raise IdempotencyInProgress
            else:
                return _replay(existing)
        try:
            response = view_method(self, request, *args, **kwargs)
        except exceptions.APIException as exc:
            if exc.status_code >= 500 or exc.status_code in _NOT_STORED:
                record.delete()
                raise
            response = self.handle_exception(exc)
        except BaseException:
            record.delete()
            raise
        if response.status_code >= 500 or response.status_code in _NOT_STORED:
            record.delete()
            return response
        record.response_status = response.status_code
        record.response_body = response.data
        record.response_headers = {h: response[h] for h in _REPLAYED_HEADERS if h in response}
        record.completed_at = timezone.now()
        record.save(
            update_fields=["response_status", "response_body", "response_headers", "completed_at"]
        )
        return response

    # Read by mis.openapi.AutoSchema: documents the header and the 409/422 answers. (An
    # extend_schema here would be overwritten by @action, which replaces the function's kwargs.)
    wrapper.idempotent = True
    return wrapper


def idempotency_purge() -> int:
    """Delete expired keys; returns how many."""
    deleted, _ = IdempotencyKey.objects.filter(
        created_at__lt=timezone.now() - key_lifetime()
    ).delete()
    return deleted
