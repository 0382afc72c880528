"""/api/v1/patients/{id}/merge|merge-preview|unmerge|history|identify/ and the duplicate queue."""

import datetime as dt

import pytest

from accounts.audit import Actor
from accounts.models import AuditEvent
from patients.merge import patient_merge
from patients.models import DuplicateCandidate, PatientMerge
from patients.tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

MERGERS = ["registrar", "administrator"]
NON_MERGERS = ["clinician", "radiologist", "researcher"]


def url(pk, action):
    return f"/api/v1/patients/{pk}/{action}/"


@pytest.fixture
def survivor():
    return PatientFactory(mrn="S1", last_name="Соколова", first_name="Ольга", phone="")


@pytest.fixture
def duplicate():
    return PatientFactory(mrn="D1", last_name="Соколова", first_name="Олга", phone="+7 123")


@pytest.mark.parametrize("role", MERGERS)
def test_merge_via_the_api(api_client, request, role, survivor, duplicate):
    api_client.force_authenticate(request.getfixturevalue(role))
    response = api_client.post(
        url(survivor.pk, "merge"),
        {"duplicate": duplicate.pk, "reason": "twice", "choices": {"first_name": "duplicate"}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["duplicate"] == duplicate.pk and body["is_active"] is True
    assert body["choices"]["first_name"] == "duplicate" and body["choices"]["phone"] == "duplicate"
    survivor.refresh_from_db()
    assert (survivor.first_name, survivor.phone) == ("Олга", "+7 123")


@pytest.mark.parametrize("role", NON_MERGERS)
def test_merge_is_forbidden_to_other_roles(api_client, request, role, survivor, duplicate):
    api_client.force_authenticate(request.getfixturevalue(role))
    response = api_client.post(
        url(survivor.pk, "merge"), {"duplicate": duplicate.pk, "reason": "x"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not PatientMerge.objects.exists()


def test_merge_requires_authentication(api_client, survivor, duplicate):
    response = api_client.post(url(survivor.pk, "merge"), {"duplicate": duplicate.pk})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"duplicate": "", "reason": "x"}, "duplicate"),
        ({"duplicate": 0, "reason": "x"}, "duplicate"),
        ({"duplicate": "DUP", "reason": "x"}, "duplicate"),
        ({"duplicate": None, "reason": "x"}, "duplicate"),
        ({"reason": ""}, "reason"),
        ({"reason": "x", "choices": {"mrn": "duplicate"}}, "choices"),
        ({"reason": "x", "choices": {"phone": "mine"}}, "choices"),
    ],
)
def test_bad_merge_payloads_are_field_errors(
    api_client, registrar, survivor, duplicate, payload, field
):
    api_client.force_authenticate(registrar)
    payload = {"duplicate": duplicate.pk, **payload}
    response = api_client.post(url(survivor.pk, "merge"), payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["error"]["code"] == "invalid"
    assert field in body["error"]["details"]
    assert not PatientMerge.objects.exists()


def test_merging_twice_is_a_clear_400(api_client, registrar, survivor, duplicate):
    api_client.force_authenticate(registrar)
    payload = {"duplicate": duplicate.pk, "reason": "twice"}
    assert api_client.post(url(survivor.pk, "merge"), payload, format="json").status_code == 200
    again = api_client.post(url(survivor.pk, "merge"), payload, format="json")
    assert again.status_code == 400
    assert "already been merged" in again.json()["error"]["message"]


def test_merge_of_an_unknown_survivor_is_404(api_client, registrar, duplicate):
    api_client.force_authenticate(registrar)
    response = api_client.post(url(99999, "merge"), {"duplicate": duplicate.pk, "reason": "x"})
    assert response.status_code == 404


def test_merge_preview(api_client, registrar, survivor, duplicate):
    api_client.force_authenticate(registrar)
    response = api_client.get(url(survivor.pk, "merge-preview"), {"duplicate": duplicate.pk})
    assert response.status_code == 200
    body = response.json()
    phone = next(f for f in body["fields"] if f["field"] == "phone")
    assert phone == {
        "field": "phone",
        "label": "phone",
        "survivor": "",
        "duplicate": "+7 123",
        "default": "duplicate",
    }
    assert {"model": "patient identifiers", "count": 0} in body["moves"]
    assert api_client.get(url(survivor.pk, "merge-preview")).status_code == 400


def test_unmerge_via_the_api(api_client, registrar, clinician, survivor, duplicate):
    merge = patient_merge(
        actor=Actor(user=registrar), survivor=survivor, duplicate=duplicate, reason="x"
    )
    api_client.force_authenticate(clinician)
    payload = {"merge": merge.pk, "reason": "different"}
    assert api_client.post(url(survivor.pk, "unmerge"), payload).status_code == 403
    api_client.force_authenticate(registrar)
    assert api_client.post(url(duplicate.pk, "unmerge"), payload).status_code == 404
    response = api_client.post(url(survivor.pk, "unmerge"), payload)
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert response.json()["unmerge_reason"] == "different"
    again = api_client.post(url(survivor.pk, "unmerge"), payload)
    assert again.status_code == 400 and "already been undone" in again.json()["error"]["message"]


def test_history_via_the_api_is_audited(api_client, clinician, registrar, survivor, duplicate):
    patient_merge(actor=Actor(user=registrar), survivor=survivor, duplicate=duplicate, reason="x")
    api_client.force_authenticate(clinician)
    response = api_client.get(url(survivor.pk, "history"))
    assert response.status_code == 200
    body = response.json()
    assert ("merge", "merged_from") in {(h["event"], h["field"]) for h in body["history"]}
    assert body["merges"][0]["duplicate_mrn"] == "D1"
    assert AuditEvent.objects.filter(action="view", patient_id=survivor.pk).exists()


def test_history_is_404_without_access(api_client, researcher, survivor):
    api_client.force_authenticate(researcher)
    assert api_client.get(url(survivor.pk, "history")).status_code == 403


def test_a_merged_patient_url_redirects_in_the_api(
    api_client, clinician, registrar, survivor, duplicate
):
    patient_merge(actor=Actor(user=registrar), survivor=survivor, duplicate=duplicate, reason="x")
    api_client.force_authenticate(clinician)
    response = api_client.get(f"/api/v1/patients/{duplicate.pk}/")
    assert response.status_code == 302
    assert response["Location"] == f"/api/v1/patients/{survivor.pk}/"
    assert response.json() == {"id": duplicate.pk, "merged_into": survivor.pk}
    listed = api_client.get("/api/v1/patients/").json()["results"]
    assert [row["mrn"] for row in listed] == ["S1"]


def test_identify_via_the_api(api_client, registrar, clinician):
    unknown = PatientFactory(
        mrn="T1", last_name="", first_name="", birth_date=None, identity_status="unknown"
    )
    api_client.force_authenticate(clinician)
    assert api_client.post(url(unknown.pk, "identify"), {}).status_code == 403
    api_client.force_authenticate(registrar)
    missing = api_client.post(url(unknown.pk, "identify"), {"last_name": "Орлов"}, format="json")
    assert missing.status_code == 400
    assert set(missing.json()["error"]["details"]) == {"first_name", "birth_date"}
    response = api_client.post(
        url(unknown.pk, "identify"),
        {"last_name": "Орлов", "first_name": "Глеб", "birth_date": "1990-03-04", "reason": "ID"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["identity_status"] == "verified"
    queue = api_client.get("/api/v1/patients/", {"identity_status": "unknown"}).json()
    assert queue["count"] == 0


# --- duplicates queue -------------------------------------------------------------------------
@pytest.fixture
def pair(survivor, duplicate):
    return DuplicateCandidate.objects.create(
        patient_a=survivor, patient_b=duplicate, score=0.9, reasons=["name"]
    )


@pytest.mark.parametrize("role", MERGERS)
def test_the_duplicate_queue_via_the_api(api_client, request, role, pair):
    api_client.force_authenticate(request.getfixturevalue(role))
    response = api_client.get("/api/v1/patient-duplicates/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert body["results"][0]["patient_a"]["mrn"] == "S1"
    assert body["results"][0]["suggested_survivor"] == pair.patient_a_id
    event = AuditEvent.objects.get(action="list")
    assert event.details["patient_ids"] == [pair.patient_a_id, pair.patient_b_id]


@pytest.mark.parametrize("role", NON_MERGERS)
def test_the_duplicate_queue_is_forbidden_to_other_roles(api_client, request, role, pair):
    api_client.force_authenticate(request.getfixturevalue(role))
    assert api_client.get("/api/v1/patient-duplicates/").status_code == 403
    assert api_client.post(f"/api/v1/patient-duplicates/{pair.pk}/dismiss/").status_code == 403


def test_dismiss_via_the_api(api_client, registrar, pair):
    api_client.force_authenticate(registrar)
    dismiss = f"/api/v1/patient-duplicates/{pair.pk}/dismiss/"
    assert api_client.post(dismiss, {"reason": "twins"}).status_code == 204
    assert api_client.post(dismiss, {"reason": "twins"}).status_code == 404
    assert api_client.get("/api/v1/patient-duplicates/").json()["count"] == 0
    pair.refresh_from_db()
    assert pair.status == "dismissed" and pair.decision_reason == "twins"


def test_the_duplicate_queue_orders_by_score(api_client, registrar, pair):
    other = DuplicateCandidate.objects.create(
        patient_a=PatientFactory(mrn="X1"),
        patient_b=PatientFactory(mrn="X2", birth_date=dt.date(1980, 5, 17)),
        score=0.7,
        reasons=["name"],
    )
    api_client.force_authenticate(registrar)
    ids = [
        r["id"]
        for r in api_client.get("/api/v1/patient-duplicates/", {"ordering": "score"}).json()[
            "results"
        ]
    ]
    assert ids == [other.pk, pair.pk]


def test_the_duplicate_queue_query_count_does_not_grow_with_rows(
    api_client, registrar, django_assert_max_num_queries
):
    for n in range(20):
        DuplicateCandidate.objects.create(
            patient_a=PatientFactory(mrn=f"QA{n}"),
            patient_b=PatientFactory(mrn=f"QB{n}"),
            score=0.8,
            reasons=["name"],
        )
    api_client.force_authenticate(registrar)
    with django_assert_max_num_queries(12):
        response = api_client.get("/api/v1/patient-duplicates/")
    assert response.json()["count"] == 20
