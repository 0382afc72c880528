"""The audit page: administrators search by user, patient, action and dates, and export CSV."""

import csv
import io

import pytest
from django.urls import reverse

from accounts.audit import Actor, audit_record
from accounts.models import AuditEvent

pytestmark = pytest.mark.django_db

URL = reverse("accounts:audit")


@pytest.fixture
def events():
    audit_record(actor=Actor.system("alice"), action="view", patient_id=7)
    audit_record(actor=Actor.system("bob"), action="download", patient_id=8)


def test_administrators_search_by_user_patient_and_action(client, administrator, events):
    client.force_login(administrator)
    page = client.get(URL, {"user": "alice", "patient": 7, "action": "view"})
    assert page.status_code == 200
    assert [e.username for e in page.context["page"].object_list] == ["alice"]
    listed = AuditEvent.objects.get(action="list", object_type="accounts.auditevent")
    assert listed.details["query"] == {"user": "alice", "patient": "7", "action": "view"}


def test_a_date_range_filters(client, administrator, events):
    client.force_login(administrator)
    page = client.get(URL, {"since": "2999-01-01"})
    assert page.context["page"].paginator.count == 0
    page = client.get(URL, {"until": "2999-01-01", "user": "bob"})
    assert page.context["page"].paginator.count == 1


def test_a_bad_date_is_a_form_error_not_a_500(client, administrator, events):
    client.force_login(administrator)
    page = client.get(URL, {"since": "31.02.2020x"})
    assert page.status_code == 200 and page.context["filter"].errors


def test_the_csv_export_is_audited(client, administrator, events):
    client.force_login(administrator)
    response = client.get(URL, {"user": "bob", "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["id", "time", "username"]
    assert [r[2] for r in rows[1:]] == ["bob"]
    export = AuditEvent.objects.get(action="export")
    assert export.details == {"query": {"user": "bob"}, "rows": 1}


@pytest.mark.parametrize("role", ["radiologist", "clinician", "registrar", "researcher"])
def test_other_roles_are_forbidden(client, request, role):
    client.force_login(request.getfixturevalue(role))
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"format": "csv"}).status_code == 403


def test_anonymous_is_sent_to_login(client):
    assert client.get(URL).status_code == 302


def test_the_emergency_review_list_is_for_reviewers(client, administrator, clinician):
    client.force_login(administrator)
    url = reverse("admin:accounts_emergencyaccess_changelist")
    assert client.get(url).status_code == 200
    client.force_login(clinician)
    assert client.get(url).status_code == 302  # not staff: the admin login
