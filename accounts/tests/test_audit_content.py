"""What the audit records: viewing windows, lists, role/permission/department changes."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from accounts.audit import VIEWING_WINDOW, Actor, audit_list, audit_view
from accounts.models import AuditEvent, Department
from accounts.tests.factories import DepartmentFactory, UserFactory

pytestmark = pytest.mark.django_db


def _age_all_events(by):
    """Move every event back in time (tests only: the audit itself cannot be updated)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        table = AuditEvent._meta.db_table
        for pk, time in AuditEvent.objects.values_list("pk", "time"):
            cursor.execute(f"UPDATE {table} SET time = %s WHERE id = %s", [time - by, pk])


def test_one_view_event_per_user_object_and_action_per_window(clinician, department):
    actor = Actor(user=clinician)
    assert audit_view(actor=actor, obj=department) is not None
    assert audit_view(actor=actor, obj=department) is None  # a reload, a frame, a thumbnail
    assert audit_view(actor=actor, obj=department, action="view_report") is not None
    other = DepartmentFactory()
    assert audit_view(actor=actor, obj=other) is not None
    assert AuditEvent.objects.filter(object_type="accounts.department").count() == 3


def test_another_user_has_their_own_window(clinician, radiologist, department):
    audit_view(actor=Actor(user=clinician), obj=department)
    assert audit_view(actor=Actor(user=radiologist), obj=department) is not None


def test_a_new_window_opens_after_fifteen_minutes(clinician, department):
    actor = Actor(user=clinician)
    audit_view(actor=actor, obj=department)
    _age_all_events(VIEWING_WINDOW + dt.timedelta(seconds=1))
    assert audit_view(actor=actor, obj=department) is not None


def test_lists_are_always_their_own_event(clinician):
    actor = Actor(user=clinician)
    for _ in range(2):
        audit_list(actor=actor, object_type="patients.patient", query={}, patient_ids=[1, 2])
    events = AuditEvent.objects.filter(action="list")
    assert events.count() == 2 and events[0].details["patient_ids"] == [1, 2]


def test_role_changes_are_audited_with_who_did_them(client, superuser, clinician):
    client.force_login(superuser)
    url = reverse("admin:accounts_user_change", args=[clinician.pk])
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
    data.update(
        {
            "groups": [Group.objects.get(name="Radiologist").pk],
            "departments": [d.pk for d in clinician.departments.all()],
            "user_permissions": [],
            "date_joined_0": clinician.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": clinician.date_joined.strftime("%H:%M:%S"),
            "last_login_0": "",
            "last_login_1": "",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    changes = AuditEvent.objects.filter(action="role_change", object_id=str(clinician.pk))
    by_admin = changes.filter(username="root")
    assert {tuple(e.details.items())[0][0] for e in by_admin} == {"added", "removed"}
    assert by_admin.filter(details__added=["Radiologist"]).exists()
    assert by_admin.filter(details__removed=["Clinician"]).exists()


def test_department_and_permission_changes_are_audited(clinician, other_department):
    clinician.departments.add(other_department)
    clinician.user_permissions.add(Permission.objects.get(codename="view_department"))
    assert AuditEvent.objects.get(action="department_change", details__added=["ENT"])
    assert AuditEvent.objects.filter(action="permission_change", object_id=str(clinician.pk))


def test_adding_users_to_a_group_from_the_group_side_is_audited(clinician):
    Group.objects.get(name="Registrar").user_set.add(clinician)
    event = AuditEvent.objects.get(action="role_change", details__added=["Registrar"])
    assert event.object_id == str(clinician.pk)


def test_flag_changes_are_audited(clinician):
    clinician.is_staff = True
    clinician.save()
    event = AuditEvent.objects.get(action="permission_change", details__has_key="changes")
    assert event.details["changes"] == {"is_staff": [False, True]}


def test_user_creation_is_audited():
    UserFactory(username="newbie")
    assert AuditEvent.objects.filter(action="create", object_type="accounts.user").exists()


def test_departments_are_reference_data_for_administrators(administrator):
    from accounts.permissions import restrict

    DepartmentFactory.create_batch(2)
    assert (
        restrict(Department.objects.all(), administrator, "accounts.view_department").count() == 3
    )
