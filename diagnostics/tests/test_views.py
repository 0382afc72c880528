"""The study page's AI section, its polled fragment, "Run AI", feedback and heatmaps; by role."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from diagnostics import services
from diagnostics.models import AnalysisRun, Feedback

from .conftest import chest_dicom

pytestmark = pytest.mark.django_db


@pytest.fixture
def analysed(ai_model, ingest):
    """A child's chest X-ray with a lesion, analysed by the worker's own code."""
    result = ingest(chest_dicom(lesion=True))
    run = AnalysisRun.objects.get(instance_id=result.instance_id)
    services.run_execute(run.pk)
    run.refresh_from_db()
    return run


def _page(client, user, run):
    client.force_login(user)
    return client.get(reverse("studies:detail", args=[run.instance.series.study_id]))


def test_the_study_page_shows_probabilities_the_positive_mark_heatmap_and_disclaimer(
    client, radiologist, analysed
):
    response = _page(client, radiologist, analysed)
    html = response.content.decode()
    finding = analysed.findings.get()
    assert "AI result — decision support, not a diagnosis" in html
    assert "lesion 1.0.0" in html  # model name and version
    assert "ai-bar-fill positive" in html and ">positive<" in html
    assert reverse("diagnostics:heatmap", args=[finding.pk]) in html
    assert f'action="{reverse("diagnostics:feedback", args=[finding.pk])}"' in html
    assert "Run AI" in html
    assert "js/ai-status.js" in html


def test_clinicians_see_results_without_run_or_feedback_controls(client, clinician, analysed):
    html = _page(client, clinician, analysed).content.decode()
    assert "decision support, not a diagnosis" in html and "ai-bar-fill" in html
    assert "Run AI" not in html and "ai-feedback" not in html


def test_not_applicable_and_pending_runs_are_shown_with_reason_and_progress(
    client, radiologist, ai_model, ingest
):
    adult = ingest(chest_dicom(birth="19700101"))
    child = ingest(chest_dicom(PatientID="CHILD-2"))
    client.force_login(radiologist)
    html = client.get(reverse("studies:detail", args=[adult.study_id])).content.decode()
    assert "Not applicable: age 56; model for 0–10 years" in html
    html = client.get(reverse("studies:detail", args=[child.study_id])).content.decode()
    assert 'data-pending="1"' in html and "<progress" in html and "Queued" in html


def test_an_unavailable_model_is_said_plainly(client, radiologist, analysed):
    from diagnostics.models import AIModel

    AIModel.objects.create(
        name="chest-pathologies",
        version="1.0.0",
        title="Chest pathologies",
        state="unavailable",
        folder="/nowhere",
    )
    html = _page(client, radiologist, analysed).content.decode()
    assert "Chest pathologies (chest-pathologies@1.0.0) is unavailable: no weights" in html


def test_the_fragment_is_scoped_and_audited_in_the_viewing_window(
    client, radiologist, outsider, analysed
):
    study_id = analysed.instance.series.study_id
    url = reverse("diagnostics:study-ai", args=[study_id])
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    client.force_login(radiologist)
    response = client.get(url)
    assert response.status_code == 200
    assert response.content.decode().startswith('<section class="card ai-results" id="ai"')
    assert 'data-pending="0"' in response.content.decode()
    events = AuditEvent.objects.filter(
        user_id=radiologist.pk, object_type="studies.study", object_id=str(study_id)
    )
    assert events.count() == 1
    client.get(url)
    assert events.count() == 1  # same viewing window


def test_anonymous_users_are_sent_to_login(client, analysed):
    url = reverse("diagnostics:study-ai", args=[analysed.instance.series.study_id])
    assert client.get(url).status_code == 302


def test_run_ai_from_the_page_queues_runs(client, radiologist, analysed):
    study_id = analysed.instance.series.study_id
    client.force_login(radiologist)
    response = client.post(reverse("diagnostics:study-run", args=[study_id]))
    assert response.status_code == 302 and response.url.endswith("#ai")
    new = AnalysisRun.objects.exclude(pk=analysed.pk).get()
    assert new.status == "queued" and new.trigger == "page" and new.requested_by == radiologist
    assert AuditEvent.objects.filter(object_type="diagnostics.analysisrun").exists()


def test_run_ai_is_refused_to_clinicians_and_outsiders(client, clinician, analysed, outsider):
    from accounts import roles

    study_id = analysed.instance.series.study_id
    client.force_login(clinician)
    assert client.post(reverse("diagnostics:study-run", args=[study_id])).status_code == 403
    outsider.groups.clear()
    from django.contrib.auth.models import Group

    outsider.groups.add(Group.objects.get(name=roles.RADIOLOGIST))
    client.force_login(outsider)
    assert client.post(reverse("diagnostics:study-run", args=[study_id])).status_code == 404
    assert AnalysisRun.objects.count() == 1


def test_feedback_from_the_page_is_stored_and_can_be_changed(client, radiologist, analysed):
    finding = analysed.findings.get()
    url = reverse("diagnostics:feedback", args=[finding.pk])
    client.force_login(radiologist)
    client.post(url, {"verdict": "disagree", "comment": "a nipple shadow"})
    feedback = Feedback.objects.get()
    assert (feedback.agrees, feedback.comment, feedback.user) == (
        False,
        "a nipple shadow",
        radiologist,
    )
    client.post(url, {"verdict": "agree"})
    feedback.refresh_from_db()
    assert feedback.agrees is True and Feedback.objects.count() == 1
    html = _page(client, radiologist, analysed).content.decode()
    assert 'value="agree" required checked' in html


def test_feedback_is_refused_to_clinicians_and_checked(client, clinician, radiologist, analysed):
    url = reverse("diagnostics:feedback", args=[analysed.findings.get().pk])
    client.force_login(clinician)
    assert client.post(url, {"verdict": "agree"}).status_code == 403
    client.force_login(radiologist)
    response = client.post(url, {"verdict": "maybe"}, follow=True)
    assert "Select a valid choice" in response.content.decode()
    assert not Feedback.objects.exists()


def test_heatmap_png_is_served_in_scope_only(client, clinician, outsider, analysed):
    url = reverse("diagnostics:heatmap", args=[analysed.findings.get().pk])
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    client.force_login(clinician)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
