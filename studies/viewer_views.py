"""The viewer's pages: full screen, and two studies of one patient side by side."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.audit import Actor, audit_view
from studies import selectors
from studies.views import _require


@login_required
@require_GET
def viewer_page(request, pk: int):
    _require(request, selectors.VIEW)
    study = selectors.study_get(user=request.user, pk=pk)
    audit_view(actor=Actor.from_request(request), obj=study)
    return render(request, "studies/viewer.html", {"study": study})


@login_required
@require_GET
def compare_page(request, pk: int, other: int):
    """Two studies of the same patient; another patient's study is not offered (404)."""
    _require(request, selectors.VIEW)
    study = selectors.study_get(user=request.user, pk=pk)
    prior = selectors.study_get(user=request.user, pk=other)
    if prior.patient_id != study.patient_id or prior.pk == study.pk:
        raise Http404
    actor = Actor.from_request(request)
    audit_view(actor=actor, obj=study)
    audit_view(actor=actor, obj=prior)
    return render(request, "studies/compare.html", {"study": study, "prior": prior})
