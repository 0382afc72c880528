"""Token authentication's one statement (PostgreSQL) and what it primes for ``restrict()``:
the same permissions, departments, shares and emergency grants as asking one by one, and a
token user's scope built from them.

Here rather than in accounts/tests: the scope is shown on patients and studies."""

import pytest

from accounts.audit import Actor
from accounts.models import User
from accounts.tests.factories import DepartmentFactory, UserFactory
from accounts.tests.test_tokens import PATIENTS, auth, make
from accounts.tokens import hash_key

pytestmark = pytest.mark.django_db


def _access_as_asked_one_by_one(user):
    """What restrict() and has_perm() find asking the database for each thing separately."""
    from django.contrib.auth.backends import ModelBackend

    from accounts import permissions
    from patients.models import Patient
    from studies.models import Study

    fresh = User.objects.get(pk=user.pk)
    return (
        ModelBackend().get_all_permissions(fresh),
        permissions.user_department_ids(fresh),
        permissions._extras(fresh, [Patient, Study]),
    )


def test_a_token_reads_its_users_access_with_it_in_one_query(
    clinician, administrator, department, other_department, django_assert_num_queries
):
    """On PostgreSQL the token's statement also reads the user's permissions, departments,
    shares (direct and by group) and emergency grants: the same answers as asking for each."""
    from django.contrib.auth.models import Group
    from django.db import connection

    from accounts import permissions
    from accounts.emergency import emergency_grant
    from accounts.sharing import share_grant
    from accounts.tokens import token_with_access
    from patients.tests.factories import PatientFactory

    if connection.vendor != "postgresql":
        pytest.skip("one statement on PostgreSQL; SQLite asks as before")
    clinician.departments.add(other_department)
    token, key = make(clinician)
    plain = token_with_access(hash_key(key))
    theirs = PatientFactory(mrn="THEIRS", department=DepartmentFactory(code="far", name="Far"))
    share_grant(actor=Actor(user=administrator), obj=theirs, user=clinician)
    emergency_grant(
        actor=Actor(user=clinician),
        obj=PatientFactory(mrn="ER", department=None),
        reason="Unconscious in ER",
    )
    with django_assert_num_queries(1):
        primed = token_with_access(hash_key(key))
    assert primed.pk == token.pk and primed.user.pk == clinician.pk
    expected_perms, expected_departments, expected_extras = _access_as_asked_one_by_one(clinician)
    assert expected_extras == {("share", "patients.patient"), ("emergency", "patients.patient")}
    assert plain.user._scope_extras[2] == set()  # before the share and the grant
    with django_assert_num_queries(0):
        assert primed.user.get_all_permissions() == expected_perms
        assert primed.user.has_perm("patients.view_patient")
        assert not primed.user.has_perm("patients.merge_patient")
        assert permissions.user_department_ids(primed.user) == expected_departments
        assert expected_departments == sorted([department.pk, other_department.pk])
        assert permissions._extras(primed.user, [theirs.__class__]) == expected_extras
    # A share through a group.
    group = Group.objects.create(name="Consultants")
    user = UserFactory(username="consultant", role="Clinician")
    user.groups.add(group)
    from guardian.shortcuts import assign_perm

    assign_perm("patients.view_patient", group, theirs)
    _token, other_key = make(user)
    primed = token_with_access(hash_key(other_key))
    assert primed.user._scope_extras[2] == _access_as_asked_one_by_one(user)[2]
    assert ("share", "patients.patient") in primed.user._scope_extras[2]


def test_a_token_sees_what_is_shared_and_granted_to_its_user(
    client, clinician, administrator, department
):
    from accounts.emergency import emergency_grant
    from accounts.sharing import share_grant
    from patients.tests.factories import PatientFactory

    far = DepartmentFactory(code="far", name="Far")
    shared = PatientFactory(mrn="SHARED", department=far)
    granted = PatientFactory(mrn="GRANTED", department=far)
    hidden = PatientFactory(mrn="HIDDEN", department=far)
    own = PatientFactory(mrn="OWN", department=department)
    _token, key = make(clinician)
    assert {p["mrn"] for p in client.get(PATIENTS, **auth(key)).json()["results"]} == {"OWN"}
    share_grant(actor=Actor(user=administrator), obj=shared, user=clinician)
    emergency_grant(actor=Actor(user=clinician), obj=granted, reason="unconscious")
    body = client.get(PATIENTS, **auth(key)).json()
    assert {p["mrn"] for p in body["results"]} == {"OWN", "SHARED", "GRANTED"}
    assert body["count"] == 3
    assert client.get(f"{PATIENTS}{hidden.pk}/", **auth(key)).status_code == 404
    assert client.get(f"{PATIENTS}{own.pk}/", **auth(key)).status_code == 200


def test_a_token_user_of_no_department_sees_only_what_is_shared_with_it(client, administrator):
    from accounts.sharing import share_grant
    from patients.tests.factories import PatientFactory
    from studies.models import Study

    far = DepartmentFactory(code="far", name="Far")
    shared = PatientFactory(mrn="SHARED", department=far)
    other = PatientFactory(mrn="OTHER", department=far)
    Study.objects.create(study_uid="1.2.3.4", patient=other, department=far)
    consultant = UserFactory(username="consultant", role="Clinician")
    share_grant(actor=Actor(user=administrator), obj=shared, user=consultant)
    _token, key = make(consultant)
    body = client.get(PATIENTS, **auth(key)).json()
    assert [p["mrn"] for p in body["results"]] == ["SHARED"] and body["count"] == 1
    assert client.get("/api/v1/studies/", **auth(key)).json()["count"] == 0
