"""Pages of reading and reporting: worklists, claims, the report editor, signing, amending,
the print view and PDF, search and turnaround."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.audit import Actor, audit_list, audit_record, audit_view
from accounts.permissions import can
from studies import selectors as study_selectors
from studies.models import Report
from studies.reporting import selectors, services
from studies.reporting.filters import ReportFilter
from studies.reporting.forms import AmendForm, ReportDraftForm, ReportStartForm
from studies.reporting.pdf import render_pdf
from studies.reporting.printing import printed_report
from studies.reporting.search import highlighted, report_search

PAGE_SIZE = 25


def _require(request, perm: str) -> None:
    if not can(request.user, perm):
        raise PermissionDenied


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _study_url(study_id: int) -> str:
    return reverse("studies:detail", args=[study_id]) + "#reading"


@login_required
@require_GET
def worklist(request, mine: bool = False):
    _require(request, services.CLAIM_PERM if mine else study_selectors.VIEW)
    filterset = selectors.worklist_filter(user=request.user, data=request.GET, mine=mine)
    results = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
    audit_list(
        actor=Actor.from_request(request),
        object_type="studies.study",
        query={k: v for k, v in request.GET.items() if k != "page"},
        patient_ids=sorted({s.patient_id for s in page.object_list}),
        worklist="mine" if mine else "department",
    )
    return render(
        request,
        "studies/reports/worklist.html",
        {"filter": filterset, "page": page, "query": _query_without_page(request), "mine": mine},
    )


@login_required
@require_POST
def claim(request, pk: int):
    _require(request, services.CLAIM_PERM)
    study = study_selectors.study_get(user=request.user, pk=pk)
    try:
        services.study_claim(actor=Actor.from_request(request), study=study)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("You are reading this study."))
    return redirect(_study_url(study.pk))


@login_required
@require_POST
def release(request, pk: int):
    study = study_selectors.study_get(user=request.user, pk=pk)
    services.study_release(actor=Actor.from_request(request), study=study)
    messages.success(request, _("The study was released."))
    return redirect(_study_url(study.pk))


@login_required
@require_POST
def report_start(request, pk: int):
    _require(request, services.WRITE_PERM)
    study = study_selectors.study_get(user=request.user, pk=pk)
    form = ReportStartForm(request.POST, category=study.category)
    if not form.is_valid():
        messages.error(request, _("Choose one of the templates offered."))
        return redirect(_study_url(study.pk))
    try:
        report = services.report_draft_create(
            actor=Actor.from_request(request), study=study, template=form.cleaned_data["template"]
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(_study_url(study.pk))
    return redirect(reverse("reporting:report", args=[report.pk]))


@login_required
@require_http_methods(["GET", "POST"])
def report_detail(request, pk: int):
    """A report version: the editor for its author's draft, the read-only text otherwise.
    A POST saves the draft; ``autosave=1`` answers JSON for static/js/report-autosave.js."""
    _require(request, services.VIEW_PERM)
    report = selectors.report_get(user=request.user, pk=pk)
    actor = Actor.from_request(request)
    editable = (
        not report.is_signed
        and report.author_id == request.user.pk
        and can(request.user, services.CHANGE_PERM)
    )
    form = ReportDraftForm(
        initial={
            "conclusion": report.conclusion,
            "finding_codes": list(report.finding_codes.all()),
        },
        category=report.study.category,
    )
    if request.method == "POST":
        if not editable:
            raise PermissionDenied
        autosave = request.POST.get("autosave") == "1"
        form = ReportDraftForm(request.POST, category=report.study.category)
        if form.is_valid():
            try:
                report = services.report_draft_update(
                    actor=actor,
                    report=report,
                    conclusion=form.cleaned_data["conclusion"],
                    finding_codes=[c.code for c in form.cleaned_data["finding_codes"]],
                )
            except ValidationError as exc:
                if autosave:
                    return JsonResponse(
                        {"saved": False, "error": " ".join(exc.messages)}, status=400
                    )
                form.add_error(None, exc.messages)
            else:
                if autosave:
                    saved = timezone.localtime(report.updated_at)
                    return JsonResponse(
                        {"saved": True, "saved_at": date_format(saved, "TIME_FORMAT")}
                    )
                if request.POST.get("sign") in ("final", "preliminary"):
                    return _sign(request, report, preliminary=request.POST["sign"] == "preliminary")
                messages.success(request, _("Draft saved."))
                return redirect(reverse("reporting:report", args=[report.pk]))
        elif autosave:
            return JsonResponse({"saved": False, "error": _("Check the form.")}, status=400)
    audit_view(actor=actor, obj=report, details={"version": report.version})
    versions = selectors.study_reports(user=request.user, study=report.study)
    return render(
        request,
        "studies/reports/report_detail.html",
        {
            "report": report,
            "study": report.study,
            "form": form,
            "editable": editable,
            "can_sign": editable and can(request.user, services.SIGN_PERM),
            "can_amend": report.is_signed
            and can(request.user, services.WRITE_PERM)
            and versions
            and versions[0].pk == report.pk,
            "amend_form": AmendForm(),
            "versions": versions,
        },
    )


def _sign(request, report: Report, *, preliminary: bool):
    try:
        services.report_sign(
            actor=Actor.from_request(request), report=report, preliminary=preliminary
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(reverse("reporting:report", args=[report.pk]))
    messages.success(request, _("The report is signed."))
    return redirect(reverse("reporting:report", args=[report.pk]))


@login_required
@require_POST
def report_amend(request, pk: int):
    _require(request, services.WRITE_PERM)
    report = selectors.report_get(user=request.user, pk=pk)
    form = AmendForm(request.POST)
    try:
        draft = services.report_amend(
            actor=Actor.from_request(request),
            report=report,
            reason=form.data.get("reason", ""),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(reverse("reporting:report", args=[report.pk]))
    return redirect(reverse("reporting:report", args=[draft.pk]))


def _printable(request, pk: int) -> Report:
    _require(request, services.VIEW_PERM)
    report = selectors.report_get(user=request.user, pk=pk)
    if not report.is_signed:
        raise PermissionDenied(_("Only a signed report is printed."))
    return report


@login_required
@require_GET
def report_print(request, pk: int):
    report = _printable(request, pk)
    audit_record(
        actor=Actor.from_request(request),
        action=services.PRINT,
        obj=report,
        details={"version": report.version, "format": "html"},
    )
    return render(
        request,
        "studies/reports/report_print.html",
        {"report": report, "printed": printed_report(report)},
    )


def pdf_response(request, report: Report) -> HttpResponse:
    """The signed report as a PDF download; audited as a print."""
    body = render_pdf(printed_report(report))
    audit_record(
        actor=Actor.from_request(request),
        action=services.PRINT,
        obj=report,
        details={"version": report.version, "format": "pdf"},
    )
    response = HttpResponse(body, content_type="application/pdf")
    name = f"report-{report.study_id}-v{report.version}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def report_pdf(request, pk: int):
    return pdf_response(request, _printable(request, pk))


@login_required
@require_GET
def report_search_page(request):
    _require(request, services.VIEW_PERM)
    filterset = ReportFilter(request.GET, queryset=selectors.report_queryset(user=request.user))
    text = request.GET.get("text", "")
    searched = any(v for k, v in request.GET.items() if k != "page")
    results = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    results = report_search(results, text) if searched else results.none()
    page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(r, highlighted(r, text)) for r in page.object_list]
    if searched:
        audit_list(
            actor=Actor.from_request(request),
            object_type="studies.report",
            query={k: v for k, v in request.GET.items() if k != "page"},
            patient_ids=sorted({r.study.patient_id for r, _h in rows}),
            report_ids=[r.pk for r, _h in rows],
        )
    return render(
        request,
        "studies/reports/report_search.html",
        {
            "filter": filterset,
            "page": page,
            "rows": rows,
            "searched": searched,
            "query": _query_without_page(request),
        },
    )


@login_required
@require_GET
def turnaround(request):
    _require(request, services.TURNAROUND_PERM)
    filterset, table = selectors.turnaround(user=request.user, data=request.GET)
    return render(request, "studies/reports/turnaround.html", {"filter": filterset, "table": table})
