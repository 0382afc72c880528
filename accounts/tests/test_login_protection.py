"""Lockout (django-axes), inactivity expiry, forced password change, validators, headers."""

import time

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.middleware import LAST_ACTIVITY
from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _login(client, password, ip="10.0.0.1", username="clinician"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_five_failures_from_one_address_lock_the_pair(client, clinician, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "wrong").status_code == 200
    assert _login(client, "wrong").status_code == 429
    # Locked even with the right password, from that address...
    response = _login(client, PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # ...but not from another one.
    assert _login(client, PASSWORD, ip="10.0.0.2").status_code == 302
    assert AuditEvent.objects.filter(action="login_failed").count() >= settings.AXES_FAILURE_LIMIT


def test_a_success_resets_the_count(client, clinician, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 302
    client.post(reverse("logout"))
    assert _login(client, "wrong").status_code == 200


def test_many_addresses_lock_the_username_at_the_higher_threshold(client, clinician, settings):
    settings.LOGIN_USERNAME_FAILURE_LIMIT = 8
    for n in range(8):  # 2 per address: no pair reaches its own limit
        _login(client, "wrong", ip=f"10.0.1.{n // 2}")
    response = _login(client, PASSWORD, ip="10.9.9.9")
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_the_api_token_is_unaffected_by_page_lockout_of_others(client, clinician, registrar):
    for n in range(10):
        _login(client, "wrong", username="registrar", ip=f"10.0.2.{n}")
    assert _login(client, PASSWORD).status_code == 302  # clinician still signs in


def test_an_idle_session_is_signed_out(client, clinician, settings):
    client.force_login(clinician)
    assert client.get(reverse("patients:list")).status_code == 200
    session = client.session
    session[LAST_ACTIVITY] = time.time() - settings.SESSION_IDLE_TIMEOUT - 1
    session.save()
    response = client.get(reverse("patients:list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert client.get(reverse("patients:list")).status_code == 302
    assert AuditEvent.objects.filter(action="logout", username="clinician").exists()


def test_activity_keeps_the_session(client, clinician, settings):
    client.force_login(clinician)
    client.get(reverse("patients:list"))
    session = client.session
    session[LAST_ACTIVITY] = time.time() - settings.SESSION_IDLE_TIMEOUT + 60
    session.save()
    assert client.post(reverse("accounts:keepalive")).json()["authenticated"] is True
    assert client.session[LAST_ACTIVITY] > time.time() - 5
    assert client.get(reverse("patients:list")).status_code == 200


def test_the_page_carries_the_inactivity_warning(client, clinician, settings):
    client.force_login(clinician)
    body = client.get(reverse("patients:list")).content.decode()
    assert f'data-idle-timeout="{settings.SESSION_IDLE_TIMEOUT}"' in body
    assert 'id="idle-warning"' in body and "session-timeout.js" in body


def test_keepalive_needs_csrf_and_a_session(clinician):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    assert client.post(reverse("accounts:keepalive")).status_code == 403
    client.force_login(clinician)
    assert client.post(reverse("accounts:keepalive")).status_code == 403  # no CSRF token


def test_a_forced_password_change_blocks_everything_else(client, clinician):
    clinician.must_change_password = True
    clinician.save()
    assert AuditEvent.objects.filter(action="password_reset_required").exists()
    client.force_login(clinician)
    response = client.get(reverse("patients:list"))
    assert response.status_code == 302 and response["Location"] == reverse("password_change")
    api = client.get("/api/v1/patients/")
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "password_change_required"
    new = "a-new-Password-for-2026"
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    clinician.refresh_from_db()
    assert not clinician.must_change_password
    assert client.get(reverse("patients:list")).status_code == 200
    assert AuditEvent.objects.filter(action="password_change", username="clinician").exists()


def test_the_admin_action_forces_a_password_change(client, superuser, clinician):
    client.force_login(superuser)
    client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "require_password_change", "_selected_action": [clinician.pk]},
    )
    clinician.refresh_from_db()
    assert clinician.must_change_password
    event = AuditEvent.objects.get(action="password_reset_required")
    assert event.username == "root" and event.object_id == str(clinician.pk)


@pytest.mark.parametrize("password", ["short1", "password123", "1234567890123"])
def test_weak_passwords_are_refused(password):
    with pytest.raises(ValidationError):
        validate_password(password)


def test_security_headers(client, clinician):
    client.force_login(clinician)
    response = client.get(reverse("patients:list"))
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]
    assert "camera=()" in response["Permissions-Policy"]


def test_csrf_is_enforced_on_the_login_form():
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "x", "password": "y"})
    assert response.status_code == 403


def test_the_password_change_page_renders_for_a_clinician(client, clinician):
    client.force_login(clinician)
    response = client.get(reverse("password_change"))
    assert response.status_code == 200 and "new_password1" in response.content.decode()
