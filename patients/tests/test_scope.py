"""Department scope, shares and emergency grants, through restrict() and on every patient page,
endpoint and admin page: the role matrix (allowed / read-only / outsider / anonymous), and
guessed ids outside one's scope answer 404 everywhere."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.audit import Actor
from accounts.emergency import emergency_grant
from accounts.models import AuditEvent, EmergencyAccess
from accounts.permissions import restrict
from accounts.sharing import share_grant, share_revoke
from accounts.tests.factories import UserFactory
from patients.models import Patient, PatientIdentifier
from patients.selectors import patient_list
from patients.tests.factories import PatientFactory, PatientIdentifierFactory

pytestmark = pytest.mark.django_db

VIEW = "patients.view_patient"


@pytest.fixture
def ours(department):
    return PatientFactory(mrn="OURS", last_name="Свой", department=department)


@pytest.fixture
def theirs(other_department):
    return PatientFactory(mrn="THEIRS", last_name="Чужой", department=other_department)


def _mrns(user, perm=VIEW):
    return sorted(restrict(Patient.objects.all(), user, perm).values_list("mrn", flat=True))


# --- restrict() -------------------------------------------------------------------------------
def test_a_member_sees_the_patients_of_their_department_only(clinician, ours, theirs):
    assert _mrns(clinician) == ["OURS"]


def test_membership_of_two_departments_sees_both(clinician, other_department, ours, theirs):
    clinician.departments.add(other_department)
    assert _mrns(clinician) == ["OURS", "THEIRS"]


def test_a_patient_without_a_department_is_seen_by_nobody_without_a_share(clinician, ours):
    PatientFactory(mrn="NODEPT", department=None)
    assert _mrns(clinician) == ["OURS"]


def test_an_administrator_without_a_department_sees_no_clinical_data(ours, theirs):
    admin = UserFactory(username="admin-only", role="Administrator")
    assert _mrns(admin) == []


def test_a_superuser_is_scoped_like_everyone(ours, theirs):
    root = UserFactory(username="root2", is_superuser=True, is_staff=True)
    assert _mrns(root) == []
    root.departments.add(ours.department)
    assert _mrns(UserFactory._meta.model.objects.get(pk=root.pk)) == ["OURS"]


def test_a_share_widens_the_scope_to_that_patient_only(administrator, clinician, ours, theirs):
    PatientFactory(mrn="THEIRS2", department=theirs.department)
    assert share_grant(actor=Actor(user=administrator), obj=theirs, user=clinician)
    assert _mrns(clinician) == ["OURS", "THEIRS"]
    event = AuditEvent.objects.get(action="share")
    assert (event.patient_id, event.details["shared_with"]) == (theirs.pk, "clinician")


def test_a_share_gives_view_not_change(administrator, registrar, theirs):
    share_grant(actor=Actor(user=administrator), obj=theirs, user=registrar)
    assert _mrns(registrar) == ["THEIRS"]
    assert _mrns(registrar, "patients.change_patient") == []


def test_a_share_with_a_group_reaches_its_members(clinician, theirs):
    group = Group.objects.create(name="Consultants")
    clinician.groups.add(group)
    assign_perm("view_patient", group, theirs)
    assert _mrns(clinician) == ["THEIRS"]


def test_a_revoked_share_no_longer_widens(administrator, clinician, theirs):
    actor = Actor(user=administrator)
    share_grant(actor=actor, obj=theirs, user=clinician)
    assert share_revoke(actor=actor, obj=theirs, user=clinician)
    assert _mrns(clinician) == []
    assert AuditEvent.objects.filter(action="unshare", patient_id=theirs.pk).exists()


def test_only_a_holder_of_share_record_may_share(clinician, outsider, theirs):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        share_grant(actor=Actor(user=outsider), obj=theirs, user=clinician)


def test_a_share_of_the_patient_reaches_its_identifiers(administrator, clinician, theirs):
    PatientIdentifierFactory(patient=theirs)
    assert not restrict(PatientIdentifier.objects.all(), clinician, None).exists()
    share_grant(actor=Actor(user=administrator), obj=theirs, user=clinician)
    assert restrict(PatientIdentifier.objects.all(), clinician, None).count() == 1


def test_an_emergency_grant_widens_until_it_expires(clinician, theirs):
    grant = emergency_grant(actor=Actor(user=clinician), obj=theirs, reason="Unconscious in ER")
    assert _mrns(clinician) == ["THEIRS"]
    EmergencyAccess.objects.filter(pk=grant.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert _mrns(clinician) == []


def test_the_filters_never_reach_past_the_scope(clinician, theirs):
    assert list(patient_list(user=clinician, filters={"q": "THEIRS"})) == []


# --- the role matrix on pages -----------------------------------------------------------------
PAGES = [
    ("patients:detail", "get"),
    ("patients:edit", "get"),
    ("patients:delete", "get"),
    ("patients:restore", "post"),
]


@pytest.mark.parametrize(("name", "method"), PAGES)
def test_an_outsider_gets_404_for_every_patient_page(client, outsider, ours, name, method):
    outsider.groups.add(
        Group.objects.get(name="Registrar"), Group.objects.get(name="Administrator")
    )
    client.force_login(outsider)
    response = getattr(client, method)(reverse(name, args=[ours.pk]))
    assert response.status_code == 404
    assert not AuditEvent.objects.filter(patient_id=ours.pk).exists()


@pytest.mark.parametrize(("name", "method"), PAGES)
def test_anonymous_is_sent_to_the_login_page(client, ours, name, method):
    response = getattr(client, method)(reverse(name, args=[ours.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ["radiologist", "clinician"])
def test_read_only_roles_see_but_cannot_change(client, request, role, ours):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("patients:detail", args=[ours.pk])).status_code == 200
    assert client.get(reverse("patients:edit", args=[ours.pk])).status_code == 403
    assert client.get(reverse("patients:delete", args=[ours.pk])).status_code == 403
    assert client.post(reverse("patients:restore", args=[ours.pk])).status_code == 403


def test_the_registrar_of_the_department_may_edit(client, registrar, ours):
    client.force_login(registrar)
    assert client.get(reverse("patients:edit", args=[ours.pk])).status_code == 200


def test_the_list_page_shows_only_the_department(client, clinician, ours, theirs):
    client.force_login(clinician)
    body = client.get(reverse("patients:list")).content.decode()
    assert "Свой" in body and "Чужой" not in body
    assert AuditEvent.objects.get(action="list").details["patient_ids"] == [ours.pk]


def test_a_shared_patient_opens_for_the_consultant(client, administrator, outsider, ours):
    share_grant(actor=Actor(user=administrator), obj=ours, user=outsider)
    client.force_login(outsider)
    assert client.get(reverse("patients:detail", args=[ours.pk])).status_code == 200


def test_guessed_ids_are_404_like_missing_ones(client, clinician, theirs):
    client.force_login(clinician)
    for pk in (theirs.pk, theirs.pk + 1000):
        assert client.get(reverse("patients:detail", args=[pk])).status_code == 404


# --- the API ------------------------------------------------------------------------------------
def test_api_outsider_gets_404_in_the_error_shape(api_client, outsider, ours):
    outsider.groups.add(
        Group.objects.get(name="Registrar"), Group.objects.get(name="Administrator")
    )
    api_client.force_authenticate(outsider)
    url = f"/api/v1/patients/{ours.pk}/"
    for response in (
        api_client.get(url),
        api_client.patch(url, {"notes": "x"}),
        api_client.delete(url, {"reason": "x"}),
        api_client.post(url + "restore/"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert Patient.objects.get(pk=ours.pk).notes == ""


def test_api_list_is_scoped(api_client, clinician, ours, theirs):
    api_client.force_authenticate(clinician)
    assert [p["mrn"] for p in api_client.get("/api/v1/patients/").json()["results"]] == ["OURS"]


def test_api_anonymous_gets_401(api_client, ours):
    assert api_client.get(f"/api/v1/patients/{ours.pk}/").status_code == 401


# --- the admin ---------------------------------------------------------------------------------
def test_admin_change_page_of_an_out_of_scope_patient_is_404(client, theirs):
    staff = UserFactory(username="staff", role="Administrator", is_superuser=True)
    client.force_login(staff)
    url = reverse("admin:patients_patient_change", args=[theirs.pk])
    assert client.get(url).status_code == 404
    changelist = client.get(reverse("admin:patients_patient_changelist"))
    assert "Чужой" not in changelist.content.decode()


def test_a_deleted_patient_is_restored_only_within_scope(client, administrator, ours, theirs):
    for patient in (ours, theirs):
        Patient.objects.filter(pk=patient.pk).update(deleted_at=timezone.now())
    client.force_login(administrator)
    assert client.post(reverse("patients:restore", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("patients:restore", args=[ours.pk])).status_code == 302
    assert Patient.objects.get(pk=ours.pk).deleted_at is None


def test_a_patient_registered_without_a_department_stays_visible_to_its_registrar(
    client, registrar
):
    from patients.services import patient_register

    patient = patient_register(actor=Actor(user=registrar), data={"last_name": "Новый"})
    assert patient.department == registrar.departments.get()
    client.force_login(registrar)
    assert client.get(patient.get_absolute_url()).status_code == 200


def test_opening_the_edit_form_is_a_read_of_the_record(client, registrar, ours):
    client.force_login(registrar)
    client.get(reverse("patients:edit", args=[ours.pk]))
    client.get(reverse("patients:detail", args=[ours.pk]))  # same viewing window
    assert AuditEvent.objects.filter(action="view", patient_id=ours.pk).count() == 1


def test_the_duplicate_warning_is_audited_naming_the_patients_it_shows(
    client, api_client, registrar, ours
):
    data = {"last_name": ours.last_name, "first_name": ours.first_name, "birth_date": "1980-05-17"}
    api_client.force_authenticate(registrar)
    assert api_client.post("/api/v1/patients/", {**data, "sex": "M"}).status_code == 409
    client.force_login(registrar)
    form = {
        **data,
        "mrn": "",
        "middle_name": "",
        "sex": "M",
        "identity_status": "verified",
        "department": "",
        "ident-TOTAL_FORMS": "0",
        "ident-INITIAL_FORMS": "0",
    }
    assert client.post(reverse("patients:create"), form).status_code == 200
    events = AuditEvent.objects.filter(action="list", details__has_key="patient_ids")
    assert [e.details["patient_ids"] for e in events] == [[ours.pk], [ours.pk]]
