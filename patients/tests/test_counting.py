"""The per-department counts of listed patients that PostgreSQL's triggers keep
(``patients.counting``): after every kind of write they equal a real count."""

import io

import pytest
from django.db import connection
from django.utils import timezone

from accounts.audit import Actor
from accounts.tests.factories import DepartmentFactory
from patients import counting
from patients.merge import patient_merge
from patients.models import Patient
from patients.services import patient_restore, patient_soft_delete
from patients.tests.factories import PatientFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the counts are kept on PostgreSQL only"
    ),
]


def _real(department) -> int:
    return Patient.objects.filter(
        department=department, deleted_at__isnull=True, merged_into__isnull=True
    ).count()


@pytest.fixture
def departments():
    return DepartmentFactory(code="ent", name="ENT"), DepartmentFactory(code="lung", name="Lung")


def _assert_kept(*departments):
    for department in departments:
        assert counting.listed_in([department.pk]) == _real(department), department.code
    assert counting.listed_in([d.pk for d in departments]) == sum(_real(d) for d in departments)


def test_the_counts_follow_every_kind_of_write(departments, registrar, administrator):
    ent, lung = departments
    actor = Actor(user=registrar)
    first = PatientFactory(department=ent)
    Patient.objects.bulk_create(
        [Patient(mrn=f"BULK{n}", last_name="Пакет", department=lung) for n in range(7)]
        + [Patient(mrn="NODEPT", last_name="Без отделения", department=None)]
    )
    _assert_kept(ent, lung)
    assert counting.listed_in([lung.pk]) == 7

    Patient.objects.filter(mrn__in=["BULK0", "BULK1"]).update(department=ent)  # moved
    _assert_kept(ent, lung)
    patient_soft_delete(actor=actor, patient=first, reason="registered twice")
    _assert_kept(ent, lung)
    patient_restore(actor=Actor(user=administrator), patient=Patient.objects.get(pk=first.pk))
    _assert_kept(ent, lung)

    survivor, duplicate = Patient.objects.get(mrn="BULK2"), Patient.objects.get(mrn="BULK3")
    patient_merge(actor=actor, survivor=survivor, duplicate=duplicate, reason="same person")
    assert counting.listed_in([lung.pk]) == 4
    _assert_kept(ent, lung)

    Patient.objects.filter(mrn="NODEPT").update(department=lung, deleted_at=timezone.now())
    Patient.objects.filter(mrn="BULK4").update(last_name="Переименована")  # no change to count
    _assert_kept(ent, lung)
    Patient.objects.filter(mrn="BULK5").delete()
    _assert_kept(ent, lung)


def test_a_truncated_patient_table_counts_nothing(departments):
    ent, _lung = departments
    PatientFactory(department=ent)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no checks pending from the insert
        cursor.execute(f"TRUNCATE {Patient._meta.db_table} CASCADE")
    assert counting.listed_in([ent.pk]) == 0


def test_the_command_finds_and_repairs_counts_that_were_tampered_with(departments):
    from django.core.management import CommandError, call_command

    ent, lung = departments
    PatientFactory(department=ent)
    PatientFactory(department=lung, mrn="L1")
    out = io.StringIO()
    call_command("patient_counts", stdout=out)
    assert "right" in out.getvalue()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {counting.TABLE} SET listed = listed + 100 WHERE department_id = %s", [ent.pk]
        )
    assert counting.listed_in([ent.pk]) == 101
    with pytest.raises(CommandError, match="1 department count"):
        call_command("patient_counts", stdout=io.StringIO())
    out = io.StringIO()
    call_command("patient_counts", "--repair", stdout=out)
    assert f"department {ent.pk}: kept 101, real 1" in out.getvalue()
    _assert_kept(ent, lung)
    assert counting.differences() == {}


def test_the_api_count_is_the_kept_one(api_client, clinician, department):
    """The unfiltered list's count comes from the kept counts (a tampered count shows), a
    filtered one from the rows."""
    PatientFactory(department=department, last_name="Ёлкина")
    PatientFactory(department=department, mrn="SECOND")
    api_client.force_authenticate(clinician)
    assert api_client.get("/api/v1/patients/").json()["count"] == 2
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {counting.TABLE} SET listed = listed + 40")
    assert api_client.get("/api/v1/patients/").json()["count"] == 42
    assert api_client.get("/api/v1/patients/", {"q": "елкина"}).json()["count"] == 1
