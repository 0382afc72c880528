import csv
import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.audit import EXPORT, LIST, PASSWORD_CHANGE, Actor, audit_record
from accounts.filters import AuditEventFilter
from accounts.models import AuditEvent
from accounts.permissions import can, restrict

AUDIT_PERM = "accounts.view_auditevent"
PAGE_SIZE = 50
CSV_COLUMNS = [
    "id",
    "time",
    "username",
    "user_id",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "outcome",
    "flagged",
    "reason",
    "ip",
    "user_agent",
    "details",
]


def audit_filter(*, user, data) -> AuditEventFilter:
    return AuditEventFilter(data, queryset=restrict(AuditEvent.objects.all(), user, AUDIT_PERM))


@login_required
def audit_list(request):
    """The audit search for administrators: user, patient, action, date range; CSV export."""
    if not can(request.user, AUDIT_PERM):
        raise PermissionDenied
    filterset = audit_filter(user=request.user, data=request.GET)
    results = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    query = {k: v for k, v in request.GET.items() if k not in ("page", "format")}
    actor = Actor.from_request(request)
    if request.GET.get("format") == "csv":
        # The export itself is audited, naming the filters it used, before any row leaves.
        audit_record(
            actor=actor,
            action=EXPORT,
            object_type="accounts.auditevent",
            details={"query": query, "rows": results.count()},
        )
        return _csv_response(results)
    page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
    audit_record(
        actor=actor,
        action=LIST,
        object_type="accounts.auditevent",
        details={"query": query, "page": page.number},
    )
    encoded = request.GET.copy()
    encoded.pop("page", None)
    encoded.pop("format", None)
    return render(
        request,
        "accounts/audit_list.html",
        {"filter": filterset, "page": page, "query": encoded.urlencode()},
    )


class _Echo:
    def write(self, value):
        return value


def _csv_response(queryset) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for event in queryset.order_by("id").iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    event.pk,
                    event.time.isoformat(),
                    event.username,
                    event.user_id,
                    event.action,
                    event.object_type,
                    event.object_id,
                    event.patient_id,
                    event.outcome,
                    event.flagged,
                    event.reason,
                    event.ip,
                    event.user_agent,
                    event.details,
                ]
            )

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change, which also lifts an administrator's forced reset."""

    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.user
        if user.must_change_password:
            user.must_change_password = False
            user.save(update_fields=["must_change_password"])
        audit_record(actor=Actor.from_request(self.request), action=PASSWORD_CHANGE, obj=user)
        messages.success(self.request, _("Your password has been changed."))
        return response


@require_POST
def keepalive(request) -> HttpResponse:
    """The viewer and the inactivity warning's "stay signed in" button: counts as activity
    (the idle middleware has already refreshed it) and answers the seconds left."""
    if not request.user.is_authenticated:
        return JsonResponse({"authenticated": False}, status=401)
    return JsonResponse({"authenticated": True, "timeout": settings.SESSION_IDLE_TIMEOUT})


@login_required
def api_tokens(request):
    """The profile page's API tokens: make one (the key is shown once), list, revoke."""
    from accounts.models import ApiToken
    from accounts.tokens import token_create, token_revoke

    actor = Actor.from_request(request)
    new_key = None
    error = ""
    if request.method == "POST":
        if "revoke" in request.POST:
            token = ApiToken.objects.filter(user=request.user, pk=request.POST["revoke"]).first()
            if token is not None:
                token_revoke(actor=actor, token=token)
                messages.success(request, _("The token was revoked."))
            return redirect("accounts:tokens")
        name = request.POST.get("name", "").strip()[:100]
        days = request.POST.get("expires_days", "").strip()
        if not name:
            error = _("Give the token a name: what it is for.")
        elif days and (not days.isdigit() or not 1 <= int(days) <= 3650):
            error = _("Expiry: a number of days from 1 to 3650, or empty for none.")
        else:
            expires_at = timezone.now() + dt.timedelta(days=int(days)) if days else None
            _token, new_key = token_create(
                actor=actor, user=request.user, name=name, expires_at=expires_at
            )
    tokens = ApiToken.objects.filter(user=request.user)
    response = render(
        request,
        "accounts/token_list.html",
        {"tokens": tokens, "new_key": new_key, "error": error},
    )
    response["Cache-Control"] = "no-store"  # the new key must not stay in a cache
    return response
