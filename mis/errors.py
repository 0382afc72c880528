"""Error pages: JSON in the API's error shape under /api/, a translated page elsewhere."""

from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from mis.api import error_body


def _respond(request, status: int, code: str, message: str):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code, message), status=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def bad_request(request, exception=None):
    return _respond(request, 400, "bad_request", _("The request could not be understood."))


def permission_denied(request, exception=None):
    return _respond(request, 403, "permission_denied", _("You do not have permission to do this."))


def page_not_found(request, exception=None):
    return _respond(
        request, 404, "not_found", _("This page does not exist or is not available to you.")
    )


def server_error(request):
    return _respond(
        request, 500, "server_error", _("An unexpected error occurred; it has been logged.")
    )
