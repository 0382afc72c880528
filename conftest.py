"""Fixtures shared by every app's tests: users named by role, and the CI rule for missing parts.

Under ``CI=true`` a missing dependency (Chromium, gettext, a broker) FAILS the test instead of
skipping it, so a green CI run always means the whole suite ran.
"""

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) when something a test needs is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a dependency is missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _audit_writer_closed():
    """The audit writer keeps one connection per process (PostgreSQL, ``accounts.audit``);
    requests served outside the test's transaction (live servers, transactional tests) open
    it. Closed after each test, so that the test database can be dropped at the end."""
    yield
    from accounts import audit

    audit._read_writer._close()


@pytest.fixture
def department(db):
    from accounts.tests.factories import DepartmentFactory

    return DepartmentFactory(code="radiology", name="Radiology")


@pytest.fixture
def other_department(db):
    from accounts.tests.factories import DepartmentFactory

    return DepartmentFactory(code="ent", name="ENT")


def _role_user(role, username, department):
    from accounts.tests.factories import UserFactory

    return UserFactory(username=username, role=role, departments=[department])


@pytest.fixture
def administrator(department):
    return _role_user("Administrator", "administrator", department)


@pytest.fixture
def radiologist(department):
    return _role_user("Radiologist", "radiologist", department)


@pytest.fixture
def clinician(department):
    return _role_user("Clinician", "clinician", department)


@pytest.fixture
def registrar(department):
    return _role_user("Registrar", "registrar", department)


@pytest.fixture
def researcher(department):
    return _role_user("Researcher", "researcher", department)


@pytest.fixture
def outsider(other_department):
    """A clinician of another department: department scope arrives with the accounts issue."""
    return _role_user("Clinician", "outsider", other_department)


@pytest.fixture
def superuser(department):
    """Scoped like everyone: a superuser sees the patients of its departments only."""
    from accounts.tests.factories import UserFactory

    return UserFactory(username="root", is_superuser=True, is_staff=True, departments=[department])


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture(autouse=True)
def broker_not_marked_down():
    """A test that found the broker down must not make the next test's publishes skip it
    (mis.broker remembers an outage per process)."""
    from mis import broker

    broker._down_until = 0.0
    yield
    broker._down_until = 0.0


@pytest.fixture(autouse=True)
def english_by_default(settings):
    """Messages are asserted in English unless a test asks for Russian (Accept-Language: ru,
    or translation.override("ru")); the product's own default stays Russian."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield
