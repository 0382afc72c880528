"""Session inactivity expiry, the forced password change and the security headers."""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from mis.api import error_body

LAST_ACTIVITY = "last_activity"
# Writing the session on every request would cost a database write per page, frame or API
# call; the activity time is refreshed at most this often (seconds).
ACTIVITY_RESOLUTION = 30


class IdleTimeoutMiddleware:
    """Signs a session out after ``SESSION_IDLE_TIMEOUT`` seconds without a request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            now = time.time()
            last = request.session.get(LAST_ACTIVITY)
            if last is not None and now - last > settings.SESSION_IDLE_TIMEOUT:
                logout(request)
                if request.path.startswith("/api/"):
                    return self.get_response(request)  # now anonymous: 401/403 as usual
                messages.info(request, _("You were signed out after a period of inactivity."))
                return redirect(f"{reverse('login')}?next={request.path}")
            if last is None or now - last > ACTIVITY_RESOLUTION:
                request.session[LAST_ACTIVITY] = now
        return self.get_response(request)


class ForcedPasswordChangeMiddleware:
    """A user whose password an administrator marked for reset may only change it (or leave)."""

    ALLOWED = ("password_change", "logout", "password_change_done")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and getattr(user, "must_change_password", False)
            and request.path not in {reverse(name) for name in self.ALLOWED}
            and not request.path.startswith(("/static/", "/i18n/", "/health/"))
        ):
            if request.path.startswith("/api/"):
                return JsonResponse(
                    error_body(
                        "password_change_required",
                        _("An administrator requires you to change your password first."),
                    ),
                    status=403,
                )
            messages.warning(request, _("An administrator requires you to change your password."))
            return redirect("password_change")
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Headers Django 5.2 does not set itself: Content-Security-Policy, Permissions-Policy,
    and no caching of pages that show patient data."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # The API documentation pages (Swagger UI, ReDoc) bring their own scripts and workers.
        docs = request.path.startswith(("/api/docs", "/api/redoc"))
        if settings.CONTENT_SECURITY_POLICY and not docs:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
        )
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            response.headers.setdefault("Cache-Control", "private, no-store")
        return response
