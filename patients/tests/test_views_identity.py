"""Identity pages against the role matrix: merge, unmerge, history, reconciliation, duplicates."""

import pytest
from django.urls import reverse

from accounts.audit import Actor
from accounts.models import AuditEvent
from patients.merge import patient_merge
from patients.models import DuplicateCandidate, Patient, PatientMerge
from patients.tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

MERGERS = ["registrar", "administrator"]
NON_MERGERS = ["clinician", "radiologist", "researcher"]


@pytest.fixture
def survivor():
    return PatientFactory(mrn="S1", last_name="Соколова", first_name="Ольга", phone="")


@pytest.fixture
def duplicate():
    return PatientFactory(mrn="D1", last_name="Соколова", first_name="Олга", phone="+7 123")


def _login(client, request, role):
    user = request.getfixturevalue(role)
    client.force_login(user)
    return user


def _merged(registrar, survivor, duplicate):
    return patient_merge(
        actor=Actor(user=registrar), survivor=survivor, duplicate=duplicate, reason="twice"
    )


# --- merge page -------------------------------------------------------------------------------
@pytest.mark.parametrize("role", MERGERS)
def test_the_merge_page_previews_moves_and_choices(client, request, role, survivor, duplicate):
    _login(client, request, role)
    url = reverse("patients:merge", args=[survivor.pk])
    response = client.get(url, {"mrn": "d1"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Patient identifiers: 0" in body
    assert 'name="choice_first_name"' in body and 'name="choice_phone"' in body
    assert 'name="choice_last_name"' not in body  # the same in both


@pytest.mark.parametrize("role", NON_MERGERS)
def test_the_merge_page_is_forbidden_to_other_roles(client, request, role, survivor, duplicate):
    _login(client, request, role)
    url = reverse("patients:merge", args=[survivor.pk])
    assert client.get(url, {"mrn": "D1"}).status_code == 403
    assert client.post(f"{url}?duplicate={duplicate.pk}", {"reason": "x"}).status_code == 403
    assert not PatientMerge.objects.exists()


def test_the_merge_page_requires_login(client, survivor):
    response = client.get(reverse("patients:merge", args=[survivor.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_merge_page_of_an_unknown_patient_is_404(client, registrar):
    client.force_login(registrar)
    assert client.get(reverse("patients:merge", args=[99999])).status_code == 404


def test_merging_on_the_page_applies_choices_and_redirects(client, registrar, survivor, duplicate):
    client.force_login(registrar)
    url = reverse("patients:merge", args=[survivor.pk]) + f"?duplicate={duplicate.pk}"
    response = client.post(
        url, {"reason": "Same person", "choice_first_name": "duplicate", "choice_phone": "survivor"}
    )
    assert response.status_code == 302 and response["Location"] == survivor.get_absolute_url()
    survivor.refresh_from_db()
    assert (survivor.first_name, survivor.phone) == ("Олга", "")
    assert PatientMerge.objects.get().merged_by == registrar


def test_merging_without_a_reason_shows_the_error(client, registrar, survivor, duplicate):
    client.force_login(registrar)
    url = reverse("patients:merge", args=[survivor.pk]) + f"?duplicate={duplicate.pk}"
    response = client.post(url, {"reason": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not PatientMerge.objects.exists()


def test_an_unknown_mrn_and_self_merge_are_explained(client, registrar, survivor):
    client.force_login(registrar)
    url = reverse("patients:merge", args=[survivor.pk])
    assert (
        "No such patient that you may merge: nope."
        in client.get(url, {"mrn": "nope"}).content.decode()
    )
    assert "cannot be merged into itself" in client.get(url, {"mrn": "S1"}).content.decode()


def test_a_second_merge_of_the_same_pair_gets_a_clear_message(
    client, registrar, survivor, duplicate
):
    client.force_login(registrar)
    url = reverse("patients:merge", args=[survivor.pk]) + f"?duplicate={duplicate.pk}"
    _merged(registrar, survivor, duplicate)
    response = client.post(url, {"reason": "again"})
    assert response.status_code == 200
    assert "has already been merged into another record; reload the page." in (
        response.content.decode()
    )
    assert PatientMerge.objects.count() == 1


# --- after a merge ----------------------------------------------------------------------------
def test_the_merged_record_url_redirects_to_the_survivor(
    client, clinician, registrar, survivor, duplicate
):
    _merged(registrar, survivor, duplicate)
    client.force_login(clinician)
    response = client.get(duplicate.get_absolute_url())
    assert response.status_code == 302 and response["Location"] == survivor.get_absolute_url()


def test_the_merged_record_url_is_404_without_access(
    client, researcher, registrar, survivor, duplicate
):
    _merged(registrar, survivor, duplicate)
    client.force_login(researcher)
    assert client.get(duplicate.get_absolute_url()).status_code == 404


def test_the_patient_page_shows_history_and_merges(
    client, clinician, registrar, survivor, duplicate
):
    _merged(registrar, survivor, duplicate)
    client.force_login(clinician)
    body = client.get(survivor.get_absolute_url()).content.decode()
    assert "Identity history" in body and "merged from" in body and "D1 Соколова Олга" in body
    assert "Merged records" in body
    assert (
        reverse("patients:unmerge", args=[survivor.pk, PatientMerge.objects.get().pk]) not in body
    )


def test_history_shows_choice_labels_not_codes(client, clinician, registrar, survivor):
    from patients.services import patient_update

    patient_update(actor=Actor(user=registrar), patient=survivor, data={"sex": "F"})
    client.force_login(clinician)
    body = client.get(survivor.get_absolute_url()).content.decode()
    assert "<td>male</td>\n      <td>female</td>" in body


def test_the_merged_away_record_is_not_listed(client, clinician, registrar, survivor, duplicate):
    _merged(registrar, survivor, duplicate)
    client.force_login(clinician)
    page = client.get(reverse("patients:list")).context["page"]
    assert list(page.object_list) == [survivor]


# --- unmerge ----------------------------------------------------------------------------------
def test_unmerge_from_the_survivors_page(client, registrar, survivor, duplicate):
    merge = _merged(registrar, survivor, duplicate)
    client.force_login(registrar)
    body = client.get(survivor.get_absolute_url()).content.decode()
    url = reverse("patients:unmerge", args=[survivor.pk, merge.pk])
    assert url in body
    assert client.get(url).status_code == 200
    response = client.post(url, {"reason": "Different people"})
    assert response.status_code == 302
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None
    assert AuditEvent.objects.filter(action="unmerge", reason="Different people").count() == 2


@pytest.mark.parametrize("role", NON_MERGERS)
def test_unmerge_is_forbidden_to_other_roles(client, request, role, registrar, survivor, duplicate):
    merge = _merged(registrar, survivor, duplicate)
    _login(client, request, role)
    url = reverse("patients:unmerge", args=[survivor.pk, merge.pk])
    assert client.post(url, {"reason": "x"}).status_code == 403
    duplicate.refresh_from_db()
    assert duplicate.merged_into == survivor


def test_unmerge_of_a_merge_of_another_patient_is_404(client, registrar, survivor, duplicate):
    merge = _merged(registrar, survivor, duplicate)
    other = PatientFactory(mrn="O1")
    client.force_login(registrar)
    assert client.get(reverse("patients:unmerge", args=[other.pk, merge.pk])).status_code == 404


# --- reconciliation ---------------------------------------------------------------------------
@pytest.fixture
def unknown():
    return PatientFactory(
        mrn="T-1", last_name="", first_name="", birth_date=None, identity_status="unknown"
    )


def test_reconciliation_lists_unknown_and_provisional_patients(
    client, registrar, unknown, survivor
):
    provisional = PatientFactory(mrn="PR1", identity_status="provisional")
    client.force_login(registrar)
    response = client.get(reverse("patients:reconciliation"))
    assert response.status_code == 200
    assert list(response.context["page"].object_list) == [unknown, provisional]
    assert AuditEvent.objects.get(action="list").details["patient_ids"] == [
        unknown.pk,
        provisional.pk,
    ]


@pytest.mark.parametrize("role", ["clinician", "radiologist", "researcher", "administrator"])
def test_reconciliation_is_for_registrars(client, request, role, unknown):
    _login(client, request, role)
    assert client.get(reverse("patients:reconciliation")).status_code == 403
    assert client.get(reverse("patients:identify", args=[unknown.pk])).status_code == 403


def test_identify_on_the_page(client, registrar, unknown):
    client.force_login(registrar)
    url = reverse("patients:identify", args=[unknown.pk])
    form = {
        "mrn": "T-1",
        "last_name": "Кузнецов",
        "first_name": "Олег",
        "middle_name": "",
        "birth_date": "1970-03-04",
        "sex": "M",
        "department": "",
        "phone": "",
        "email": "",
        "address": "",
        "notes": "",
        "ident-TOTAL_FORMS": "0",
        "ident-INITIAL_FORMS": "0",
    }
    missing = client.post(url, {**form, "first_name": ""})
    assert missing.status_code == 200 and "This field is required." in missing.content.decode()
    assert client.post(url, form).status_code == 302
    unknown.refresh_from_db()
    assert (unknown.identity_status, unknown.last_name) == ("verified", "Кузнецов")


def test_merge_into_a_verified_record_from_reconciliation(client, registrar, unknown, survivor):
    client.force_login(registrar)
    response = client.get(reverse("patients:merge-into", args=[unknown.pk]), {"mrn": "s1"})
    assert response.status_code == 302
    assert (
        response["Location"]
        == reverse("patients:merge", args=[survivor.pk]) + f"?duplicate={unknown.pk}"
    )
    nothing = client.get(reverse("patients:merge-into", args=[unknown.pk]), {"mrn": "T-1"})
    assert nothing["Location"] == reverse("patients:reconciliation")


# --- duplicates -------------------------------------------------------------------------------
@pytest.fixture
def pair(survivor, duplicate):
    return DuplicateCandidate.objects.create(
        patient_a=survivor, patient_b=duplicate, score=0.9, reasons=["name", "birth_date"]
    )


@pytest.mark.parametrize("role", MERGERS)
def test_the_duplicates_page_lists_open_pairs(client, request, role, pair):
    _login(client, request, role)
    response = client.get(reverse("patients:duplicates"))
    assert response.status_code == 200
    assert list(response.context["page"].object_list) == [pair]
    assert "same birth date" in response.content.decode()


@pytest.mark.parametrize("role", NON_MERGERS)
def test_the_duplicates_page_is_forbidden_to_other_roles(client, request, role, pair):
    _login(client, request, role)
    assert client.get(reverse("patients:duplicates")).status_code == 403
    assert client.post(reverse("patients:duplicate-dismiss", args=[pair.pk])).status_code == 403


def test_dismissing_a_pair_on_the_page(client, registrar, pair):
    client.force_login(registrar)
    url = reverse("patients:duplicate-dismiss", args=[pair.pk])
    assert client.post(url, {"reason": "twins"}).status_code == 302
    pair.refresh_from_db()
    assert (pair.status, pair.decided_by, pair.decision_reason) == ("dismissed", registrar, "twins")
    assert client.post(url).status_code == 404  # no longer in the open queue
    assert AuditEvent.objects.filter(action="dismiss_duplicate").count() == 1


def test_merging_a_pair_closes_it(registrar, pair, survivor, duplicate):
    _merged(registrar, survivor, duplicate)
    pair.refresh_from_db()
    assert pair.status == "merged"
    assert Patient.objects.get(pk=duplicate.pk).merged_into == survivor


def test_identity_pages_query_counts_do_not_grow_with_rows(
    client, registrar, django_assert_max_num_queries
):
    for n in range(20):
        DuplicateCandidate.objects.create(
            patient_a=PatientFactory(mrn=f"QA{n}", identity_status="unknown"),
            patient_b=PatientFactory(mrn=f"QB{n}"),
            score=0.8,
            reasons=["name"],
        )
    client.force_login(registrar)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("patients:duplicates")).status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get(reverse("patients:reconciliation")).status_code == 200
