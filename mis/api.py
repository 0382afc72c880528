"""API conventions shared by every endpoint under /api/v1/.

Every error is ``{"status": "error", "error": {"code", "message", "details"}}`` with the right
HTTP status; lists are page-number paginated with ``page`` and ``page_size``.
"""

import copy
import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, pagination, renderers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class PageNumberPagination(pagination.PageNumberPagination):
    """Page-number pages. A view may make them cheaper without changing them:

    * ``paginated_count(queryset)``: the exact count, computed its own way (the patient list
      counts the parts of the user's scope separately, ``accounts.permissions.restrict_parts``);
    * ``page_rows(queryset, page_slice)``: the rows of one page of ``queryset``, read its own
      way (the patient list finds a page's keys in an index first, ``patients.selectors``).
    """

    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        count = getattr(view, "paginated_count", None)
        rows = getattr(view, "page_rows", None)
        if count is not None or rows is not None:
            queryset = PagedRows(queryset, count=count, rows=rows)
        return super().paginate_queryset(queryset, request, view)


class PagedRows:
    """A queryset as Django's Paginator sees it (``count()``, ``ordered``, slices), counted and
    sliced by the view's ``paginated_count`` and ``page_rows`` where it has them."""

    def __init__(self, queryset, *, count=None, rows=None):
        self.queryset = queryset
        self.model = queryset.model
        self.ordered = queryset.ordered
        self._count = count
        self._rows = rows

    def count(self) -> int:
        if self._count is None:
            return self.queryset.count()
        return self._count(self.queryset)

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, item):
        if not isinstance(item, slice) or self._rows is None:
            return self.queryset[item]
        return self._rows(self.queryset, item)


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for value in detail.values():
            return _first_message(value)
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def _code_for(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return "invalid"
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return exc.default_code


def error_body(code: str, message: str, details=None) -> dict:
    return {"status": "error", "error": {"code": code, "message": message, "details": details}}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        details = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = exceptions.ValidationError(details)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DataError):
        # The database refused a value the fields let through (a NUL character in a lookup
        # value, a number out of range): the client's input, so a 400, never a 500.
        logger.info("Value refused by the database: %s", exc)
        exc = exceptions.ValidationError(
            {"non_field_errors": [_("A value in the request cannot be stored or looked up.")]}
        )

    response = drf_exception_handler(exc, context)
    request = context.get("request")
    if request is not None:
        # Errors are JSON even on endpoints that render images, ZIPs or PDFs: without this an
        # error body would go out labelled image/png or application/zip.
        request.accepted_renderer = renderers.JSONRenderer()
        request.accepted_media_type = "application/json"
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return Response(
            error_body("server_error", _("An unexpected error occurred; it has been logged.")),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        message = _("The request has invalid fields: %(summary)s") % {
            "summary": _first_message(exc.detail)
        }
    else:
        details = getattr(exc, "extra", None)
        message = _first_message(exc.detail)
    response.data = error_body(_code_for(exc), message, details)
    return response


class CachedFieldsMixin:
    """For a ModelSerializer on a hot read path: its fields are built from the model once per
    class (DRF builds them on every instantiation, walking the model's fields and validators)
    and each instance gets a deep copy, as DRF does with declared fields. ``get_fields`` of a
    ModelSerializer depends on the class alone (Meta, declared fields), never on the
    instance, its data or context."""

    def get_fields(self):
        cls = type(self)
        template = cls.__dict__.get("_fields_template")
        if template is None:
            template = super().get_fields()
            cls._fields_template = template
        return copy.deepcopy(template)
