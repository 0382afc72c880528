import pytest
from django.test import RequestFactory
from django.urls import reverse

from accounts.audit import Actor, audit_record
from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_audit_record_takes_who_and_where_from_the_request(clinician):
    request = RequestFactory().get("/", HTTP_USER_AGENT="Firefox/128", REMOTE_ADDR="10.1.2.3")
    request.user = clinician
    department = clinician.departments.get()
    event = audit_record(
        actor=Actor.from_request(request), action="view", obj=department, patient_id=42
    )
    event.refresh_from_db()
    assert (event.user_id, event.username) == (clinician.pk, "clinician")
    assert (event.object_type, event.object_id, event.patient_id) == (
        "accounts.department",
        str(department.pk),
        42,
    )
    assert (event.ip, event.user_agent, event.outcome) == ("10.1.2.3", "Firefox/128", "success")


def test_a_system_actor_is_named():
    event = audit_record(actor=Actor.system("beat"), action="update", object_type="x")
    assert event.username == "beat" and event.user_id is None


def test_audit_events_cannot_be_changed_or_deleted():
    event = audit_record(actor=Actor.system("t"), action="view")
    event.reason = "tampered"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    event.refresh_from_db()
    assert event.reason == ""


def test_the_audit_survives_the_deletion_of_its_user(clinician):
    audit_record(actor=Actor(user=clinician), action="view")
    clinician.delete()
    assert AuditEvent.objects.get(action="view").username == "clinician"


def test_login_logout_and_failed_login_are_audited(client, clinician):
    client.post(reverse("login"), {"username": "clinician", "password": "wrong"})
    client.post(reverse("login"), {"username": "clinician", "password": PASSWORD})
    client.post(reverse("logout"))
    actions = list(
        AuditEvent.objects.filter(action__startswith="log")
        .order_by("id")
        .values_list("action", "username", "outcome")
    )
    assert actions == [
        ("login_failed", "clinician", "failed"),
        ("login", "clinician", "success"),
        ("logout", "clinician", "success"),
    ]


def test_the_admin_cannot_change_or_delete_audit_events(client, superuser):
    event = audit_record(actor=Actor.system("t"), action="view")
    client.force_login(superuser)
    url = reverse("admin:accounts_auditevent_change", args=[event.pk])
    assert client.get(url).status_code == 200
    client.post(url, {"reason": "tampered"})
    delete = reverse("admin:accounts_auditevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.reason == ""


def test_x_real_ip_is_trusted_only_behind_a_proxy(clinician, settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_REAL_IP="6.6.6.6")
    request.user = clinician
    settings.BEHIND_PROXY = False
    assert Actor.from_request(request).ip == "10.0.0.1"
    settings.BEHIND_PROXY = True
    assert Actor.from_request(request).ip == "6.6.6.6"
