"""Admin: report templates edited by administrators; reports read-only, scoped and audited."""

import pytest

from accounts.models import AuditEvent
from patients.tests.factories import PatientFactory
from studies.models import ReportTemplate

from .reporting_helpers import make_study, signed_report

pytestmark = pytest.mark.django_db


@pytest.fixture
def report(radiologist, department):
    study = make_study(PatientFactory(mrn="ADM-1", department=department), department)
    return signed_report(study, radiologist)


def test_administrators_add_templates(client, administrator):
    client.force_login(administrator)
    response = client.post(
        "/admin/studies/reporttemplate/add/",
        {"category": "chest_xray", "name": "Норма", "conclusion": "Без патологии.", "active": "on"},
    )
    assert response.status_code == 302, response.content
    assert ReportTemplate.objects.get().name == "Норма"


def test_the_report_admin_is_read_only_and_audited(client, administrator, report):
    client.force_login(administrator)
    assert client.get("/admin/studies/report/").context["cl"].result_count == 1
    url = f"/admin/studies/report/{report.pk}/change/"
    response = client.get(url)
    assert response.status_code == 200
    assert 'name="conclusion"' not in response.content.decode()  # no editable field
    assert AuditEvent.objects.filter(action="view", object_id=str(report.pk)).exists()
    client.post(url, {"conclusion": "changed"})
    report.refresh_from_db()
    assert report.conclusion == "Пневмония нижней доли справа."
    assert client.get(f"/admin/studies/report/{report.pk}/delete/").status_code == 403


def test_the_report_admin_is_scoped(client, report, other_department):
    from accounts.tests.factories import UserFactory

    stranger = UserFactory(username="admin2", role="Administrator", departments=[other_department])
    client.force_login(stranger)
    assert client.get(f"/admin/studies/report/{report.pk}/change/").status_code == 404
    assert client.get("/admin/studies/report/").context["cl"].result_count == 0
