"""The administrator API: users, departments, roles, shares, and the read-only audit."""

import pytest

from accounts.audit import Actor, audit_record
from accounts.models import AuditEvent, User

pytestmark = pytest.mark.django_db

NON_ADMINS = ["radiologist", "clinician", "registrar", "researcher"]
ENDPOINTS = ["/api/v1/users/", "/api/v1/departments/", "/api/v1/audit-events/"]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_administrators_list(api_client, administrator, url):
    api_client.force_authenticate(administrator)
    response = api_client.get(url)
    assert response.status_code == 200 and response.json()["results"]


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("role", NON_ADMINS)
def test_other_roles_are_forbidden(api_client, request, role, url):
    api_client.force_authenticate(request.getfixturevalue(role))
    response = api_client.get(url)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("url", [*ENDPOINTS, "/api/v1/shares/"])
def test_anonymous_gets_401(api_client, url):
    assert api_client.get(url).status_code == 401


def test_an_administrator_creates_a_user_with_roles_and_departments(api_client, administrator):
    api_client.force_authenticate(administrator)
    response = api_client.post(
        "/api/v1/users/",
        {
            "username": "newdoc",
            "last_name": "Новиков",
            "roles": ["Radiologist"],
            "departments": ["radiology"],
            "password": "Long-enough-passphrase-7",
        },
    )
    assert response.status_code == 201, response.json()
    assert response.json()["roles"] == ["Radiologist"]
    user = User.objects.get(username="newdoc")
    assert user.check_password("Long-enough-passphrase-7")
    assert "password" not in response.json()
    role_event = AuditEvent.objects.get(action="role_change", object_id=str(user.pk))
    assert role_event.username == "administrator" and role_event.details == {
        "added": ["Radiologist"]
    }


def test_role_assignment_replaces_the_roles(api_client, administrator, clinician):
    api_client.force_authenticate(administrator)
    response = api_client.patch(f"/api/v1/users/{clinician.pk}/", {"roles": ["Registrar"]})
    assert response.status_code == 200
    assert set(clinician.groups.values_list("name", flat=True)) == {"Registrar"}
    assert AuditEvent.objects.filter(
        action="role_change", username="administrator", details__removed=["Clinician"]
    ).exists()


def test_bad_roles_and_weak_passwords_are_field_errors(api_client, administrator, clinician):
    api_client.force_authenticate(administrator)
    response = api_client.patch(
        f"/api/v1/users/{clinician.pk}/", {"roles": ["Wizard"], "password": "123"}
    )
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert "roles" in details or "password" in details


def test_departments_are_managed(api_client, administrator):
    api_client.force_authenticate(administrator)
    response = api_client.post("/api/v1/departments/", {"code": "icu", "name": "ICU"})
    assert response.status_code == 201


def test_the_audit_api_is_read_only_and_cursor_paginated(api_client, administrator):
    for n in range(5):
        audit_record(actor=Actor.system("t"), action="view", object_id=n, patient_id=7)
    api_client.force_authenticate(administrator)
    first = api_client.get("/api/v1/audit-events/", {"page_size": 2, "patient": 7}).json()
    assert len(first["results"]) == 2 and "cursor=" in first["next"]
    second = api_client.get(first["next"]).json()
    assert {r["id"] for r in first["results"]}.isdisjoint({r["id"] for r in second["results"]})
    pk = first["results"][0]["id"]
    assert api_client.patch(f"/api/v1/audit-events/{pk}/", {"reason": "x"}).status_code == 405
    assert api_client.delete(f"/api/v1/audit-events/{pk}/").status_code == 405
    assert api_client.post("/api/v1/audit-events/", {}).status_code == 405


def test_the_audit_api_filters_by_user_action_and_dates(api_client, administrator):
    audit_record(actor=Actor.system("alice"), action="download")
    api_client.force_authenticate(administrator)
    results = api_client.get(
        "/api/v1/audit-events/", {"user": "alice", "action": "download", "since": "2000-01-01"}
    ).json()["results"]
    assert [r["username"] for r in results] == ["alice"]
    bad = api_client.get("/api/v1/audit-events/", {"since": "yesterday"})
    assert bad.status_code == 400


def test_sharing_through_the_api_needs_a_shareable_type(api_client, administrator, clinician):
    api_client.force_authenticate(administrator)
    response = api_client.post(
        "/api/v1/shares/",
        {"object_type": "accounts.department", "object_id": 1, "user": "clinician"},
    )
    assert response.status_code == 400
    assert "object_type" in response.json()["error"]["details"]


def test_the_schema_generates_with_the_accounts_endpoints(api_client):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/v1/users/", "/api/v1/audit-events/", "/api/v1/shares/"):
        assert path in schema["paths"]


def test_a_nul_character_in_a_lookup_value_is_a_400_not_a_500(api_client, administrator):
    """PostgreSQL refuses NUL in text: the refusal is the client's error, in the error shape."""
    api_client.force_authenticate(administrator)
    response = api_client.patch(
        f"/api/v1/users/{administrator.pk}/", {"departments": ["a\x00b"]}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["status"] == "error"
