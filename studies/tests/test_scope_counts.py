"""The patient list's count in parts (``restrict_parts``, ``patient_count``) and its pages by
keys (``mis.api.PagedRows``): the same rows and the same number as ``restrict()`` and the
filters, whatever made a patient visible (department, a study performed in the department,
a share, an emergency grant), hidden (deleted, merged) or filtered.

Here rather than in patients/tests: a patient seen through a study needs the studies app."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from accounts.audit import Actor
from accounts.emergency import emergency_grant
from accounts.permissions import restrict, restrict_parts
from accounts.sharing import share_grant
from accounts.tests.factories import UserFactory
from patients.models import Patient
from patients.selectors import patient_count, patient_list
from patients.tests.factories import PatientFactory
from studies.models import Study

pytestmark = pytest.mark.django_db

VIEW = "patients.view_patient"
LIST = "/api/v1/patients/"


@pytest.fixture
def registry(department, other_department, administrator, clinician):
    """Patients seen by the clinician (of ``department``) in every way, and some not seen."""
    ours = [
        PatientFactory(mrn=f"OURS{n}", last_name=f"Свой{n}", department=department)
        for n in range(5)
    ]
    theirs = [
        PatientFactory(mrn=f"THEIRS{n}", last_name=f"Чужой{n}", department=other_department)
        for n in range(4)
    ]
    homeless = PatientFactory(mrn="NODEPT", last_name="Бездомный", department=None)
    # Seen through a study performed in the clinician's department (two studies: counted once).
    for n, patient in enumerate([theirs[0], theirs[0], homeless]):
        Study.objects.create(study_uid=f"1.2.9.{n}", patient=patient, department=department)
    # A study of ours performed elsewhere: still ours once.
    Study.objects.create(study_uid="1.2.9.9", patient=ours[0], department=other_department)
    share_grant(actor=Actor(user=administrator), obj=theirs[1], user=clinician)
    emergency_grant(actor=Actor(user=clinician), obj=theirs[2], reason="Unconscious in ER")
    Patient.objects.filter(pk=ours[4].pk).update(deleted_at=timezone.now())
    Patient.objects.filter(pk=ours[3].pk).update(merged_into=ours[2])
    return {"ours": ours, "theirs": theirs, "homeless": homeless}


def _ids(qs):
    return sorted(qs.values_list("pk", flat=True))


def _fresh(user):
    """The user as a new request sees it (no per-request caches)."""
    return type(user).objects.get(pk=user.pk)


def test_the_parts_are_disjoint_and_make_up_the_scope(clinician, registry):
    parts = restrict_parts(Patient.objects.all(), _fresh(clinician), VIEW)
    ids = [_ids(part) for part in parts]
    flat = [pk for part in ids for pk in part]
    assert len(flat) == len(set(flat))  # disjoint
    whole = _ids(restrict(Patient.objects.all(), _fresh(clinician), VIEW))
    assert sorted(flat) == whole
    expected = {p.pk for p in registry["ours"]} | {
        registry["theirs"][0].pk,  # a study in the department
        registry["theirs"][1].pk,  # shared
        registry["theirs"][2].pk,  # emergency grant
        registry["homeless"].pk,  # no department, a study in ours
    }
    assert set(whole) == expected  # deleted and merged rows are hidden later, by the list


def test_the_count_is_the_list_count(clinician, registry):
    listed = patient_list(user=_fresh(clinician))
    assert patient_count(user=_fresh(clinician), data={}) == listed.count() == 7


@pytest.mark.parametrize(
    "data",
    [
        {"q": "Чужой"},
        {"q": "OURS1"},
        {"name": "свой"},
        {"department": "ours"},
        {"department": "theirs"},
        {"sex": "F"},
        {"ordering": "-birth_date"},
        {"q": "Нет-такого"},
    ],
)
def test_the_count_follows_the_filters(clinician, registry, data):
    if "department" in data:
        data = {"department": str(registry[data["department"]][0].department_id)}
    expected = patient_list(user=_fresh(clinician), filters=data).count()
    assert patient_count(user=_fresh(clinician), data=data) == expected


def test_an_invalid_filter_counts_nothing_as_it_lists_nothing(clinician, registry):
    data = {"birth_date": "not a date"}
    assert patient_list(user=_fresh(clinician), filters=data).count() == 0
    assert patient_count(user=_fresh(clinician), data=data) == 0


def test_deleted_patients_are_counted_for_restorers_only(administrator, clinician, registry):
    data = {"deleted": "true"}
    administrator.departments.add(registry["ours"][0].department)
    admin = _fresh(administrator)
    assert patient_count(user=admin, data=data) == 1
    assert patient_count(user=admin, data=data) == patient_list(user=admin, filters=data).count()
    assert patient_count(user=_fresh(clinician), data=data) == 0


def test_a_user_in_several_departments(clinician, other_department, registry):
    clinician.departments.add(other_department)
    user = _fresh(clinician)
    parts = restrict_parts(Patient.objects.all(), user, VIEW)
    assert sorted(pk for part in parts for pk in _ids(part)) == _ids(
        restrict(Patient.objects.all(), user, VIEW)
    )
    assert patient_count(user=user, data={}) == patient_list(user=user).count() == 8


@pytest.mark.parametrize("who", ["anonymous", "no_permission", "inactive", "no_department"])
def test_no_scope_counts_nothing(who, clinician, researcher, registry):
    user = {
        "anonymous": AnonymousUser(),
        "no_permission": UserFactory(username="nobody", role=None),
        "inactive": UserFactory(username="gone", role="Clinician", is_active=False),
        "no_department": UserFactory(username="root3", is_superuser=True, departments=[]),
    }[who]
    assert patient_count(user=user, data={}) == 0
    assert sum(part.count() for part in restrict_parts(Patient.objects.all(), user, VIEW)) == 0


def test_the_api_pages_are_the_list_in_order(api_client, clinician, registry):
    api_client.force_authenticate(clinician)
    expected = list(patient_list(user=_fresh(clinician)).values_list("pk", flat=True))
    seen, page = [], 1
    while True:
        body = api_client.get(LIST, {"page_size": 3, "page": page}).json()
        assert body["count"] == len(expected)
        seen += [row["id"] for row in body["results"]]
        if not body["next"]:
            break
        page += 1
    assert seen == expected


def test_an_api_page_past_the_end_is_404(api_client, clinician, registry):
    api_client.force_authenticate(clinician)
    assert api_client.get(LIST, {"page_size": 50, "page": 2}).status_code == 404


def test_the_api_count_follows_a_search(api_client, clinician, registry):
    api_client.force_authenticate(clinician)
    body = api_client.get(LIST, {"q": "Чужой"}).json()
    assert body["count"] == 3
    assert sorted(row["mrn"] for row in body["results"]) == ["THEIRS0", "THEIRS1", "THEIRS2"]


def test_the_parts_of_a_study_scope_with_two_direct_paths(clinician, registry):
    """A study has two direct paths (performing department, patient's department) and is
    opened by a share or emergency grant of its patient: the parts still make up the scope."""
    theirs = registry["theirs"]
    for n, patient in enumerate(theirs):  # elsewhere: seen through a share or grant, or not
        Study.objects.create(
            study_uid=f"1.2.8.{n}", patient=patient, department=theirs[3].department
        )
    user = _fresh(clinician)
    parts = restrict_parts(Study.objects.all(), user, "studies.view_study")
    flat = [pk for part in parts for pk in _ids(part)]
    assert len(flat) == len(set(flat))
    whole = _ids(restrict(Study.objects.all(), _fresh(clinician), "studies.view_study"))
    # The four performed in or for the department, and the shared and the emergency patient's.
    assert sorted(flat) == whole and len(whole) == 6
