"""Per-model-version monitoring from radiologist feedback, as the admin shows it."""

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from diagnostics.models import AnalysisRun, Feedback, Finding
from diagnostics.monitoring import model_monitoring, wilson

from .conftest import chest_dicom

pytestmark = pytest.mark.django_db


def _findings(ai_model, ingest, positives: int, negatives: int) -> list[Finding]:
    """Findings of real runs, then set positive/negative as the counts need (the monitoring
    counts verdicts on decisions; the decisions themselves are tested in test_runs)."""
    from diagnostics import services

    findings = []
    for index in range(positives + negatives):
        result = ingest(chest_dicom(PatientID=f"M-{index}", lesion=index < positives, seed=index))
        run = AnalysisRun.objects.get(instance_id=result.instance_id)
        services.run_execute(run.pk)
        findings.append(run.findings.get())
    assert [f.positive for f in findings] == [True] * positives + [False] * negatives
    return findings


def test_agreement_sensitivity_and_specificity_per_model_version(ai_model, ingest, settings):
    settings.DIAGNOSTICS_MONITORING_MIN_CASES = 2
    findings = _findings(ai_model, ingest, positives=3, negatives=3)
    reader = UserFactory(username="reader", role="Radiologist")
    verdicts = [True, True, False, True, True, False]  # TP TP FP TN TN FN
    for finding, agrees in zip(findings, verdicts, strict=True):
        Feedback.objects.create(finding=finding, user=reader, agrees=agrees)
    m = model_monitoring(ai_model)
    assert (m.tp, m.fp, m.tn, m.fn, m.feedback) == (2, 1, 2, 1, 6)
    assert m.agreement.value == pytest.approx(4 / 6, abs=1e-4)
    assert m.sensitivity.value == pytest.approx(2 / 3, abs=1e-4)  # TP / (TP + FN)
    assert m.specificity.value == pytest.approx(2 / 3, abs=1e-4)  # TN / (TN + FP)
    assert m.sensitivity.low < m.sensitivity.value < m.sensitivity.high


def test_too_few_labelled_cases_give_no_sensitivity(ai_model, ingest, settings):
    settings.DIAGNOSTICS_MONITORING_MIN_CASES = 10
    (finding,) = _findings(ai_model, ingest, positives=1, negatives=0)
    Feedback.objects.create(finding=finding, user=UserFactory(username="r2"), agrees=True)
    m = model_monitoring(ai_model)
    assert m.agreement.value == 1.0 and m.sensitivity is None and m.specificity is None


def test_wilson_interval():
    rate = wilson(9, 10)
    assert rate.value == 0.9 and 0.59 < rate.low < 0.6 and 0.98 < rate.high < 0.99


def test_the_admin_shows_cards_monitoring_and_refuses_to_activate_unavailable_models(
    client, administrator, ai_model, ingest, settings
):
    from diagnostics.models import AIModel

    administrator.is_staff = True
    administrator.save()
    (finding,) = _findings(ai_model, ingest, positives=1, negatives=0)
    Feedback.objects.create(finding=finding, user=administrator, agrees=True)
    client.force_login(administrator)
    html = client.get(reverse("admin:diagnostics_aimodel_changelist")).content.decode()
    assert "lesion@1.0.0" in html and "1.00 [" in html and "too few cases" in html
    html = client.get(
        reverse("admin:diagnostics_aimodel_change", args=[ai_model.pk])
    ).content.decode()
    assert "Thresholds" in html and "lesion: 0." in html and "Applies to" in html
    assert "chest_xray; views PA, AP; age 0.0–10.0" in html
    figure = reverse("admin:diagnostics_aimodel_figure", args=[ai_model.pk, "roc"])
    assert figure in html and client.get(figure).status_code == 200
    broken = AIModel.objects.create(
        name="broken", version="1", state="invalid", problem="sha256 differs", folder="/x"
    )
    response = client.post(
        reverse("admin:diagnostics_aimodel_changelist"),
        {"action": "activate", "_selected_action": [broken.pk]},
        follow=True,
    )
    assert "roken@1 cannot be activated: sha256 differs" in response.content.decode()
    broken.refresh_from_db()
    assert broken.active is False
    client.post(
        reverse("admin:diagnostics_aimodel_changelist"),
        {"action": "deactivate", "_selected_action": [ai_model.pk]},
    )
    ai_model.refresh_from_db()
    assert ai_model.active is False


def test_admin_lists_of_runs_and_findings_are_scoped_filtered_and_audited(
    client, administrator, ai_model, ingest
):
    from accounts.models import AuditEvent

    administrator.is_staff = True
    administrator.save()
    _findings(ai_model, ingest, positives=1, negatives=0)
    client.force_login(administrator)
    response = client.get(
        reverse("admin:diagnostics_analysisrun_changelist"), {"status__exact": "succeeded"}
    )
    assert response.status_code == 200 and "lesion@1.0.0" in response.content.decode()
    assert AuditEvent.objects.filter(action="list", object_type="diagnostics.analysisrun").exists()
    response = client.get(reverse("admin:diagnostics_finding_changelist"), {"positive__exact": "1"})
    assert response.status_code == 200 and "lesion" in response.content.decode()
