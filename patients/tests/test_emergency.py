"""Break-glass: exact MRN or identifier only, minimal identity, a reason, a time limit, review."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, EmergencyAccess
from patients.tests.factories import PatientFactory, PatientIdentifierFactory

pytestmark = pytest.mark.django_db

URL = reverse("patients:emergency")
REASON = "Brought in unconscious, needs prior imaging"


@pytest.fixture
def theirs(other_department):
    patient = PatientFactory(
        mrn="E100", last_name="Чужой", notes="secret notes", department=other_department
    )
    PatientIdentifierFactory(patient=patient, value="112-233-445 95")
    return patient


def _lookup(client, number, reason=REASON):
    return client.post(URL, {"number": number, "reason": reason})


def test_an_exact_mrn_shows_minimal_identity_only(client, clinician, theirs):
    client.force_login(clinician)
    response = _lookup(client, "e100")
    body = response.content.decode()
    assert response.context["found"] == theirs
    assert "Чужой" in body and "secret notes" not in body
    event = AuditEvent.objects.get(action="emergency_lookup")
    assert event.flagged and event.reason == REASON and event.patient_id == theirs.pk
    assert client.get(theirs.get_absolute_url()).status_code == 404  # not granted yet


def test_an_exact_identifier_finds_the_patient(client, clinician, theirs):
    client.force_login(clinician)
    assert _lookup(client, "11223344595").context["found"] == theirs


@pytest.mark.parametrize("number", ["Чужой", "E10", "1122334459", "ч"])
def test_names_and_fragments_find_nothing(client, clinician, theirs, number):
    client.force_login(clinician)
    response = _lookup(client, number)
    assert response.context["found"] is None
    assert "No patient has exactly this MRN" in response.content.decode()
    assert AuditEvent.objects.get(action="emergency_lookup").outcome == "failed"


def test_a_reason_is_required(client, clinician, theirs):
    client.force_login(clinician)
    response = _lookup(client, "E100", reason="")
    assert response.context["found"] is None and response.context["form"].errors["reason"]
    assert not AuditEvent.objects.filter(action__startswith="emergency").exists()


def test_opening_grants_time_limited_flagged_access(client, clinician, theirs, settings):
    settings.EMERGENCY_ACCESS_HOURS = 2
    client.force_login(clinician)
    response = client.post(
        URL, {"number": "E100", "reason": REASON, "patient": theirs.pk, "open": "1"}
    )
    assert response.status_code == 302 and response["Location"] == theirs.get_absolute_url()
    grant = EmergencyAccess.objects.get()
    assert (grant.user, grant.patient_id, grant.reason) == (clinician, theirs.pk, REASON)
    hours = (grant.expires_at - grant.created_at).total_seconds() / 3600
    assert hours == pytest.approx(2)
    event = AuditEvent.objects.get(action="emergency_access")
    assert event.flagged and grant.audit_event_id == event.pk
    assert client.get(theirs.get_absolute_url()).status_code == 200
    # and it shows in "who accessed this record", flagged
    body = client.get(theirs.get_absolute_url()).content.decode()
    assert "emergency access" in body


def test_a_swapped_patient_id_grants_nothing(client, clinician, theirs, other_department):
    other = PatientFactory(mrn="E200", department=other_department)
    client.force_login(clinician)
    client.post(URL, {"number": "E100", "reason": REASON, "patient": other.pk, "open": "1"})
    assert not EmergencyAccess.objects.exists()


@pytest.mark.parametrize("role", ["administrator", "researcher"])
def test_roles_without_emergency_access_are_forbidden(client, request, role, theirs):
    client.force_login(request.getfixturevalue(role))
    assert client.get(URL).status_code == 403
    assert _lookup(client, "E100").status_code == 403


def test_anonymous_is_sent_to_login(client):
    assert client.get(URL).status_code == 302


def test_an_administrator_reviews_it_in_the_admin(client, clinician, superuser, theirs):
    client.force_login(clinician)
    client.post(URL, {"number": "E100", "reason": REASON, "patient": theirs.pk, "open": "1"})
    grant = EmergencyAccess.objects.get()
    client.force_login(superuser)
    url = reverse("admin:accounts_emergencyaccess_changelist")
    assert clinician.username in client.get(url, {"reviewed_at__isempty": "1"}).content.decode()
    client.post(url, {"action": "mark_reviewed", "_selected_action": [grant.pk]})
    grant.refresh_from_db()
    assert grant.reviewed_by == superuser
    assert AuditEvent.objects.filter(action="emergency_review", username="root").exists()


def test_the_share_api_shares_a_patient(api_client, administrator, outsider):
    ours = PatientFactory(mrn="S1")  # radiology; the outsider is of ENT
    payload = {"object_type": "patients.patient", "object_id": ours.pk, "user": "outsider"}
    api_client.force_authenticate(outsider)
    assert api_client.get(f"/api/v1/patients/{ours.pk}/").status_code == 404
    api_client.force_authenticate(administrator)
    assert api_client.post("/api/v1/shares/", payload).status_code == 201
    assert api_client.post("/api/v1/shares/", payload).status_code == 200  # already shared
    assert AuditEvent.objects.filter(action="share", patient_id=ours.pk).count() == 1
    api_client.force_authenticate(outsider)
    assert api_client.get(f"/api/v1/patients/{ours.pk}/").status_code == 200
    api_client.force_authenticate(administrator)
    assert api_client.post("/api/v1/shares/revoke/", payload).status_code == 204
    assert api_client.post("/api/v1/shares/revoke/", payload).status_code == 404
    api_client.force_authenticate(outsider)
    assert api_client.get(f"/api/v1/patients/{ours.pk}/").status_code == 404


def test_only_sharers_may_share(api_client, clinician, outsider, theirs):
    api_client.force_authenticate(clinician)
    payload = {"object_type": "patients.patient", "object_id": theirs.pk, "user": "outsider"}
    assert api_client.post("/api/v1/shares/", payload).status_code == 403


def test_an_emergency_grant_opens_the_record_for_reading_only(registrar, theirs):
    from django.utils import timezone

    from accounts.permissions import restrict
    from patients.models import Patient

    EmergencyAccess.objects.create(
        user=registrar,
        patient_id=theirs.pk,
        object_type="patients.patient",
        object_id=theirs.pk,
        reason=REASON,
        expires_at=timezone.now() + timezone.timedelta(hours=1),
    )
    patients = Patient.objects.filter(pk=theirs.pk)
    assert restrict(patients, registrar, "patients.view_patient").exists()
    assert not restrict(patients, registrar, "patients.change_patient").exists()
