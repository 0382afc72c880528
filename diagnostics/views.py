"""The study page's AI section: the fragment it polls, "Run AI", feedback, heatmap images."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import Actor, audit_view
from accounts.permissions import can
from accounts.protected_files import protected_file_response
from diagnostics import selectors, services
from diagnostics.forms import FeedbackForm
from diagnostics.models import AIModel
from studies import selectors as study_selectors


def _study(request, pk):
    if not can(request.user, study_selectors.VIEW):
        raise PermissionDenied
    return study_selectors.study_get(user=request.user, pk=pk)


def _back(study) -> str:
    return reverse("studies:detail", args=[study.pk]) + "#ai"


@login_required
@require_GET
def study_ai(request, pk: int):
    """The AI section alone (HTML), polled by static/js/ai-status.js while runs are pending."""
    study = _study(request, pk)
    if not can(request.user, selectors.VIEW_RUN):
        raise PermissionDenied
    audit_view(actor=Actor.from_request(request), obj=study)
    ai = selectors.study_ai(user=request.user, study=study)
    return render(request, "diagnostics/_study_ai_section.html", {"study": study, "ai": ai})


@login_required
@require_POST
def study_run(request, pk: int):
    """ "Run AI": every applicable active model, or the one chosen (a re-run supersedes)."""
    if not can(request.user, services.RUN_PERM):
        raise PermissionDenied
    study = _study(request, pk)
    model = None
    if request.POST.get("model"):
        if not request.POST["model"].isdigit():
            raise Http404
        model = AIModel.objects.filter(pk=request.POST["model"]).first()
        if model is None:
            raise Http404
    try:
        runs = services.runs_request(actor=Actor.from_request(request), study=study, model=model)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("AI analysis queued (%(n)d runs).") % {"n": len(runs)})
    return redirect(_back(study))


@login_required
@require_POST
def finding_feedback(request, pk: int):
    if not can(request.user, services.FEEDBACK_PERM):
        raise PermissionDenied
    finding = selectors.finding_get(user=request.user, pk=pk, perm=services.FEEDBACK_PERM)
    study = finding.run.instance.series.study
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(m for ms in form.errors.values() for m in ms))
        return redirect(_back(study))
    services.feedback_give(
        actor=Actor.from_request(request),
        finding=finding,
        agrees=form.cleaned_data["verdict"] == "agree",
        comment=form.cleaned_data["comment"],
    )
    messages.success(request, _("Thank you: your feedback on the AI finding is saved."))
    return redirect(_back(study))


@login_required
@require_GET
def heatmap(request, pk: int):
    """A heatmap PNG, inside the study's viewing window."""
    finding = selectors.finding_get(user=request.user, pk=pk)
    if finding.heatmap is None or not finding.heatmap.file:
        raise Http404
    study = finding.run.instance.series.study
    return protected_file_response(
        request,
        name=finding.heatmap.file.name,
        object_type="studies.derivedimage",
        object_id=finding.heatmap_id,
        patient_id=study.patient_id,
        download_name=f"heatmap-{finding.pk}.png",
        content_type="image/png",
        as_attachment=False,
        viewing_window_of=study,
    )
