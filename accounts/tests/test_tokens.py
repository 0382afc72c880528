"""API tokens (hashed keys, expiry, revocation), service accounts and the per-token throttle."""

import datetime as dt

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from accounts.audit import Actor
from accounts.models import ApiToken, AuditEvent, User
from accounts.tests.factories import PASSWORD, UserFactory
from accounts.tokens import hash_key, token_create

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/tokens/"
PATIENTS = "/api/v1/patients/"


def make(user, name="gateway", **kwargs):
    return token_create(actor=Actor.system("test"), user=user, name=name, **kwargs)


def auth(key):
    return {"HTTP_AUTHORIZATION": f"Token {key}"}


def test_only_the_hash_of_the_key_is_stored(clinician):
    token, key = make(clinician)
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.key_hash == hash_key(key) and key not in stored.key_hash
    assert key.startswith(stored.prefix) and len(stored.prefix) < len(key) // 3


def test_a_token_authenticates_and_records_its_last_use(client, clinician):
    token, key = make(clinician)
    assert client.get(PATIENTS, **auth(key)).status_code == 200
    assert client.get(PATIENTS, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize("header", ["Token nonsense", "Token a b", "Token mis_" + "x" * 43])
def test_bad_tokens_are_401_in_the_error_shape(client, clinician, header):
    response = client.get(PATIENTS, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == "Token"


def test_an_expired_token_is_refused(client, clinician):
    token, key = make(clinician, expires_at=timezone.now() + dt.timedelta(days=1))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(1))
    response = client.get(PATIENTS, **auth(key))
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_an_inactive_users_token_is_refused(client, clinician):
    _token, key = make(clinician)
    User.objects.filter(pk=clinician.pk).update(is_active=False)
    assert client.get(PATIENTS, **auth(key)).status_code == 401


def test_a_user_makes_lists_and_revokes_own_tokens_from_a_session(client, clinician, registrar):
    make(registrar, name="not mine")
    client.force_login(clinician)
    response = client.post(TOKENS, {"name": "laptop script"}, content_type="application/json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["key"].startswith("mis_") and body["user"] == "clinician"
    listed = client.get(TOKENS).json()["results"]
    assert [t["name"] for t in listed] == ["laptop script"]
    assert listed[0]["key"] is None  # never shown again
    assert Client().get(PATIENTS, **auth(body["key"])).status_code == 200
    assert client.delete(f"{TOKENS}{body['id']}/").status_code == 204
    assert Client().get(PATIENTS, **auth(body["key"])).status_code == 401
    actions = list(
        AuditEvent.objects.filter(object_type="accounts.apitoken").values_list("action", flat=True)
    )
    assert sorted(actions) == ["create", "create", "delete"]


def test_a_token_cannot_mint_tokens_for_its_user(client, clinician):
    _token, key = make(clinician)
    response = client.post(TOKENS, {"name": "more"}, content_type="application/json", **auth(key))
    assert response.status_code == 403
    assert ApiToken.objects.count() == 1


def test_users_never_see_or_revoke_others_tokens(client, clinician, registrar):
    other, _key = make(registrar)
    client.force_login(clinician)
    assert client.get(f"{TOKENS}{other.pk}/").status_code == 404
    assert client.delete(f"{TOKENS}{other.pk}/").status_code == 404
    response = client.post(
        TOKENS, {"name": "x", "user": "registrar"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert ApiToken.objects.count() == 1


def test_administrators_make_and_revoke_tokens_for_a_service_account(
    client, administrator, department
):
    gateway = UserFactory(username="pacs-gateway", departments=[department])
    client.force_login(administrator)
    response = client.post(
        TOKENS, {"name": "PACS", "user": "pacs-gateway"}, content_type="application/json"
    )
    assert response.status_code == 201
    token_id = response.json()["id"]
    assert ApiToken.objects.get(pk=token_id).user == gateway
    listed = client.get(TOKENS, {"user": gateway.pk}).json()["results"]
    assert [t["id"] for t in listed] == [token_id]
    assert client.delete(f"{TOKENS}{token_id}/").status_code == 204


def test_expiry_in_the_past_is_a_field_error(client, clinician):
    client.force_login(clinician)
    response = client.post(
        TOKENS,
        {"name": "x", "expires_at": "2001-01-01T00:00:00Z"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "expires_at" in response.json()["error"]["details"]


def test_a_service_account_cannot_sign_in_with_a_password(client, department):
    service = UserFactory(username="svc", departments=[department])
    service.is_service_account = True
    service.save()
    response = client.post("/login/", {"username": "svc", "password": PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_administrators_create_service_accounts_with_exact_permissions(
    client, administrator, department
):
    client.force_login(administrator)
    response = client.post(
        "/api/v1/users/",
        {
            "username": "modality-gw",
            "is_service_account": True,
            "permissions": ["studies.add_study"],
            "departments": [department.code],
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["permissions"] == ["studies.add_study"]
    service = User.objects.get(username="modality-gw")
    assert not service.has_usable_password()
    assert service.has_perm("studies.add_study") and not service.has_perm("studies.view_study")
    _token, key = make(service)
    # Upload-only: reading patients or studies is not among its permissions.
    assert Client().get(PATIENTS, **auth(key)).status_code == 403
    assert Client().get("/api/v1/studies/", **auth(key)).status_code == 403


def test_a_service_account_gets_no_password(client, administrator):
    client.force_login(administrator)
    response = client.post(
        "/api/v1/users/",
        {"username": "svc2", "is_service_account": True, "password": "a-long-pass-phrase-9"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "password" in response.json()["error"]["details"]


def test_unknown_permissions_are_field_errors(client, administrator):
    client.force_login(administrator)
    response = client.post(
        "/api/v1/users/",
        {"username": "svc3", "permissions": ["studies.fly"]},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "permissions" in response.json()["error"]["details"]


def test_the_token_throttle_answers_429_with_retry_after(client, clinician, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    rates = {**SimpleRateThrottle.THROTTLE_RATES, "token": "2/min"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    cache.clear()
    try:
        _token, key = make(clinician)
        _token2, key2 = make(clinician, name="second")
        assert [client.get(PATIENTS, **auth(key)).status_code for _ in range(2)] == [200, 200]
        throttled = client.get(PATIENTS, **auth(key))
        assert throttled.status_code == 429
        assert int(throttled["Retry-After"]) > 0
        assert throttled.json()["error"]["code"] == "throttled"
        # Per token: the user's other token still has its own allowance.
        assert client.get(PATIENTS, **auth(key2)).status_code == 200
    finally:
        cache.clear()


def test_roles_are_listed_for_administrators_only(client, administrator, clinician):
    client.force_login(clinician)
    assert client.get("/api/v1/roles/").status_code == 403
    client.force_login(administrator)
    rows = client.get("/api/v1/roles/").json()["results"]
    roles = {r["name"]: r["permissions"] for r in rows}
    assert "patients.add_patient" in roles["Registrar"]
    assert "accounts.view_auditevent" in roles["Administrator"]


def test_the_profile_page_makes_shows_once_and_revokes(client, clinician, registrar):
    others, _ = make(registrar)
    client.force_login(clinician)
    page = client.get("/accounts/tokens/")
    assert page.status_code == 200 and "No tokens yet" in page.content.decode()
    made = client.post("/accounts/tokens/", {"name": "script", "expires_days": "30"})
    key = made.context["new_key"]
    assert key in made.content.decode() and made["Cache-Control"] == "no-store"
    assert Client().get(PATIENTS, **auth(key)).status_code == 200
    listed = client.get("/accounts/tokens/").content.decode()
    assert "script" in listed and key not in listed
    token = ApiToken.objects.get(user=clinician)
    # Someone else's token cannot be revoked from here.
    client.post("/accounts/tokens/", {"revoke": others.pk})
    assert ApiToken.objects.filter(pk=others.pk).exists()
    client.post("/accounts/tokens/", {"revoke": token.pk})
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    assert Client().get(PATIENTS, **auth(key)).status_code == 401


@pytest.mark.parametrize("days", ["0", "abc", "99999"])
def test_the_profile_page_refuses_a_bad_expiry(client, clinician, days):
    client.force_login(clinician)
    response = client.post("/accounts/tokens/", {"name": "x", "expires_days": days})
    assert "Expiry" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_profile_page_requires_login(client):
    assert client.get("/accounts/tokens/").status_code == 302


def test_administrators_revoke_tokens_in_the_admin_and_it_is_audited(client, administrator):
    service = UserFactory(username="svc-admin")
    token, key = make(service)
    client.force_login(administrator)
    listing = client.get("/admin/accounts/apitoken/")
    assert listing.status_code == 200 and "gateway" in listing.content.decode()
    response = client.post(f"/admin/accounts/apitoken/{token.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ApiToken.objects.exists()
    assert AuditEvent.objects.filter(object_type="accounts.apitoken", action="delete").exists()
    assert Client().get(PATIENTS, **auth(key)).status_code == 401


def test_the_token_admin_is_closed_to_other_staff(client, clinician):
    clinician.is_staff = True
    clinician.save()
    client.force_login(clinician)
    assert client.get("/admin/accounts/apitoken/").status_code == 403


def test_a_department_change_in_the_request_is_seen_by_its_next_scope_check(
    clinician, department, other_department
):
    """The departments read with the token are forgotten when they change (a signal)."""
    from accounts import permissions
    from accounts.tokens import token_with_access

    _token, key = make(clinician)
    user = token_with_access(hash_key(key)).user
    assert permissions.user_department_ids(user) == [department.pk]
    User.objects.get(pk=clinician.pk).departments.add(other_department)
    assert permissions.user_department_ids(user) == sorted([department.pk, other_department.pk])
