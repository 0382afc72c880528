"""Merge and unmerge: exactly the registered rows move and move back; nothing else changes."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.audit import Actor, audit_record
from accounts.models import AuditEvent
from accounts.tests.factories import DepartmentFactory
from patients import selectors
from patients.linked import linked_models, register_patient_linked
from patients.merge import merge_preview, patient_merge, patient_unmerge
from patients.models import Patient, PatientHistory, PatientIdentifier, PatientMerge
from patients.services import IdentifierInput, patient_update
from patients.tests.factories import PatientFactory, PatientIdentifierFactory, identifier_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(linked_record_model):
    survivor = PatientFactory(mrn="S1", last_name="Фёдоров", first_name="Пётр", phone="")
    duplicate = PatientFactory(
        mrn="D1",
        last_name="Федоров",
        first_name="Петр",
        birth_date=dt.date(1980, 5, 17),
        phone="+7 900 000-00-00",
        sex="U",
    )
    PatientIdentifierFactory(patient=survivor, type=identifier_type("snils"), value="11223344595")
    PatientIdentifierFactory(
        patient=duplicate, type=identifier_type("oms"), value="1234567890123456"
    )
    linked = {
        "survivor": [linked_record_model.objects.create(patient=survivor, label="s").pk],
        "duplicate": [
            linked_record_model.objects.create(patient=duplicate, label=f"d{n}").pk
            for n in range(3)
        ],
    }
    return survivor, duplicate, linked


def _merge(registrar, survivor, duplicate, **kwargs):
    kwargs.setdefault("reason", "Registered twice at admission")
    return patient_merge(
        actor=Actor(user=registrar), survivor=survivor, duplicate=duplicate, **kwargs
    )


def test_the_registry_holds_identifiers_and_the_test_model(linked_record_model):
    labels = [entry.label for entry in linked_models()]
    # Other apps (studies) register their own linked models beside these.
    assert {"patients.linkedrecord", "patients.patientidentifier"} <= set(labels)


def test_registering_a_field_that_is_not_a_patient_key_is_refused():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="must be a ForeignKey to patients.Patient"):
        register_patient_linked(PatientIdentifier, field="type")


def test_merge_moves_every_registered_row_and_records_the_ids(registrar, pair, linked_record_model):
    survivor, duplicate, linked = pair
    dup_identifier = duplicate.identifiers.get().pk
    merge = _merge(registrar, survivor, duplicate)

    assert merge.moved == {
        "patients.linkedrecord": sorted(linked["duplicate"]),
        "patients.patientidentifier": [dup_identifier],
    }
    assert set(
        linked_record_model.objects.filter(patient=survivor).values_list("pk", flat=True)
    ) == set(linked["survivor"] + linked["duplicate"])
    assert not linked_record_model.objects.filter(patient=duplicate).exists()
    assert survivor.identifiers.count() == 2
    duplicate.refresh_from_db()
    assert duplicate.merged_into == survivor
    assert merge.merged_by == registrar and merge.reason == "Registered twice at admission"


def test_merge_takes_empty_fields_from_the_duplicate_and_honours_choices(registrar, pair):
    survivor, duplicate, _linked = pair
    _merge(registrar, survivor, duplicate, choices={"last_name": "duplicate"})
    survivor.refresh_from_db()
    assert survivor.last_name == "Федоров"  # chosen
    assert survivor.first_name == "Пётр"  # survivor's by default
    assert survivor.phone == "+7 900 000-00-00"  # survivor's was empty
    assert survivor.sex == "M"  # the duplicate's "unknown" does not win


def test_merge_never_moves_audit_rows(registrar, pair):
    survivor, duplicate, _linked = pair
    event = audit_record(actor=Actor(user=registrar), action="view", obj=duplicate)
    _merge(registrar, survivor, duplicate)
    event.refresh_from_db()
    assert event.patient_id == duplicate.pk
    merges = AuditEvent.objects.filter(action="merge")
    assert sorted(merges.values_list("patient_id", flat=True)) == sorted(
        [survivor.pk, duplicate.pk]
    )
    assert merges.first().reason == "Registered twice at admission"


def test_a_merged_patient_is_hidden_from_lists_and_resolves_to_the_survivor(registrar, pair):
    survivor, duplicate, _linked = pair
    _merge(registrar, survivor, duplicate)
    assert list(selectors.patient_list(user=registrar)) == [survivor]
    assert selectors.patient_resolve(mrn="d1") == survivor
    assert selectors.patient_resolve(identifier="1234567890123456") == survivor
    assert selectors.patient_resolve(mrn="nothing") is None


def test_resolve_follows_a_chain_of_merges(registrar, pair):
    survivor, duplicate, _linked = pair
    third = PatientFactory(mrn="C1", last_name="Фёдоров")
    _merge(registrar, survivor, duplicate)
    _merge(registrar, third, survivor)
    assert selectors.patient_resolve(mrn="D1") == third
    assert selectors.patient_resolve(mrn="D1", user=registrar) == third


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reason": "  "}, "Give a reason"),
        ({"choices": {"mrn": "duplicate"}}, "wrong: mrn"),
        ({"choices": {"last_name": "both"}}, "wrong: last_name"),
    ],
)
def test_bad_merge_input_is_refused_and_nothing_moves(registrar, pair, kwargs, message):
    survivor, duplicate, _linked = pair
    with pytest.raises(ValidationError, match=message):
        _merge(registrar, survivor, duplicate, **kwargs)
    assert not PatientMerge.objects.exists()
    assert duplicate.identifiers.count() == 1


def test_a_patient_cannot_be_merged_into_itself_or_twice(registrar, pair):
    survivor, duplicate, _linked = pair
    with pytest.raises(ValidationError, match="into itself"):
        _merge(registrar, survivor, survivor)
    _merge(registrar, survivor, duplicate)
    with pytest.raises(ValidationError, match="already been merged"):
        _merge(registrar, survivor, duplicate)
    assert PatientMerge.objects.count() == 1


def test_a_deleted_patient_cannot_be_merged(registrar, pair):
    survivor, duplicate, _linked = pair
    Patient.objects.filter(pk=duplicate.pk).update(
        deleted_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )
    with pytest.raises(ValidationError, match="is deleted"):
        _merge(registrar, survivor, duplicate)


@pytest.mark.parametrize("role", ["clinician", "radiologist", "researcher"])
def test_only_registrars_and_administrators_merge(request, role, pair):
    survivor, duplicate, _linked = pair
    with pytest.raises(PermissionDenied):
        _merge(request.getfixturevalue(role), survivor, duplicate)


def test_an_administrator_may_merge(administrator, pair):
    survivor, duplicate, _linked = pair
    assert _merge(administrator, survivor, duplicate).merged_by == administrator


def test_preview_counts_the_rows_that_would_move_and_the_default_winners(registrar, pair):
    survivor, duplicate, _linked = pair
    preview = merge_preview(survivor=survivor, duplicate=duplicate)
    moves = [move for move in preview.moves if move[1]]  # other apps' linked models move none
    assert moves == [("linked test records", 3), ("patient identifiers", 1)]
    assert preview.default_choices["phone"] == "duplicate"
    assert preview.default_choices["last_name"] == "survivor"
    assert {row[0] for row in preview.differing} >= {"last_name", "first_name", "phone", "sex"}


# --- unmerge ----------------------------------------------------------------------------------
def test_unmerge_moves_exactly_the_merged_rows_back_and_restores_fields(
    registrar, pair, linked_record_model
):
    survivor, duplicate, linked = pair
    merge = _merge(registrar, survivor, duplicate, choices={"last_name": "duplicate"})
    later = linked_record_model.objects.create(patient=survivor, label="after the merge")

    patient_unmerge(actor=Actor(user=registrar), merge=merge, reason="Different people")

    assert set(
        linked_record_model.objects.filter(patient=duplicate).values_list("pk", flat=True)
    ) == set(linked["duplicate"])
    assert set(
        linked_record_model.objects.filter(patient=survivor).values_list("pk", flat=True)
    ) == {*linked["survivor"], later.pk}
    assert list(duplicate.identifiers.values_list("value", flat=True)) == ["1234567890123456"]
    assert list(survivor.identifiers.values_list("value", flat=True)) == ["11223344595"]
    survivor.refresh_from_db()
    duplicate.refresh_from_db()
    assert (survivor.last_name, survivor.phone) == ("Фёдоров", "")
    assert duplicate.merged_into is None
    merge.refresh_from_db()
    assert merge.unmerged_by == registrar and merge.unmerge_reason == "Different people"
    assert merge.unmerge_report == {}
    assert AuditEvent.objects.filter(action="unmerge").count() == 2
    assert survivor in selectors.patient_list(user=registrar)
    assert duplicate in selectors.patient_list(user=registrar)


def test_unmerge_keeps_fields_edited_since_and_reports_rows_gone(
    registrar, pair, linked_record_model
):
    survivor, duplicate, linked = pair
    merge = _merge(registrar, survivor, duplicate)
    patient_update(actor=Actor(user=registrar), patient=survivor, data={"phone": "+7 111"})
    linked_record_model.objects.filter(pk=linked["duplicate"][0]).delete()

    merge = patient_unmerge(actor=Actor(user=registrar), merge=merge, reason="Mistake")

    survivor.refresh_from_db()
    assert survivor.phone == "+7 111"
    assert merge.unmerge_report == {
        "rows_not_moved_back": {"patients.linkedrecord": [linked["duplicate"][0]]},
        "fields_kept": ["phone"],
    }


def test_unmerge_restores_a_birth_date_and_a_department(registrar, linked_record_model):
    other = DepartmentFactory(code="surgery", name="Surgery")
    survivor = PatientFactory(mrn="S2", birth_date=None, department=None)
    duplicate = PatientFactory(mrn="D2", birth_date=dt.date(1990, 2, 3), department=other)
    merge = _merge(registrar, survivor, duplicate)
    survivor.refresh_from_db()
    assert (survivor.birth_date, survivor.department) == (dt.date(1990, 2, 3), other)
    patient_unmerge(actor=Actor(user=registrar), merge=merge, reason="Mistake")
    survivor.refresh_from_db()
    assert (survivor.birth_date, survivor.department) == (None, None)


def test_unmerge_twice_or_out_of_order_is_refused(registrar, pair):
    survivor, duplicate, _linked = pair
    third = PatientFactory(mrn="C1")
    merge = _merge(registrar, survivor, duplicate)
    _merge(registrar, third, survivor)
    with pytest.raises(ValidationError, match="undo that merge first"):
        patient_unmerge(actor=Actor(user=registrar), merge=merge, reason="x")
    later = PatientMerge.objects.get(duplicate=survivor)
    patient_unmerge(actor=Actor(user=registrar), merge=later, reason="x")
    patient_unmerge(actor=Actor(user=registrar), merge=merge, reason="x")
    with pytest.raises(ValidationError, match="already been undone"):
        patient_unmerge(actor=Actor(user=registrar), merge=merge, reason="x")


def test_unmerge_requires_a_reason_and_the_permission(registrar, clinician, pair):
    survivor, duplicate, _linked = pair
    merge = _merge(registrar, survivor, duplicate)
    with pytest.raises(ValidationError, match="Give a reason"):
        patient_unmerge(actor=Actor(user=registrar), merge=merge, reason="")
    with pytest.raises(PermissionDenied):
        patient_unmerge(actor=Actor(user=clinician), merge=merge, reason="x")
    duplicate.refresh_from_db()
    assert duplicate.merged_into == survivor


def test_merge_and_unmerge_are_kept_in_both_histories(registrar, pair):
    survivor, duplicate, _linked = pair
    merge = _merge(registrar, survivor, duplicate, choices={"last_name": "duplicate"})
    patient_unmerge(actor=Actor(user=registrar), merge=merge, reason="Mistake")
    survivor_rows = list(
        PatientHistory.objects.filter(patient=survivor).values_list(
            "event", "field", "before", "after"
        )
    )
    assert ("merge", "last_name", "Фёдоров", "Федоров") in survivor_rows
    assert ("unmerge", "last_name", "Федоров", "Фёдоров") in survivor_rows
    assert ("merge", "identifier", "", "oms:1234567890123456") in survivor_rows
    assert ("unmerge", "identifier", "oms:1234567890123456", "") in survivor_rows
    dup_events = set(PatientHistory.objects.filter(patient=duplicate).values_list("event", "field"))
    assert {("merge", "merged_into"), ("unmerge", "unmerged_from")} <= dup_events


def test_identifier_replacement_keeps_the_rows_that_stay(registrar, pair):
    """An unmerge moves rows back by id, so editing identifiers must not recreate them."""
    survivor, _duplicate, _linked = pair
    kept = survivor.identifiers.get()
    patient_update(
        actor=Actor(user=registrar),
        patient=survivor,
        data={},
        identifiers=[
            IdentifierInput(type=kept.type, value=kept.value),
            IdentifierInput(type=identifier_type("oms"), value="6543210987654321"),
        ],
    )
    assert survivor.identifiers.filter(pk=kept.pk).exists()
    assert survivor.identifiers.count() == 2


def test_a_merged_record_cannot_be_edited(registrar, pair):
    survivor, duplicate, _linked = pair
    _merge(registrar, survivor, duplicate)
    with pytest.raises(ValidationError, match="merged into MRN S1; change that record instead"):
        patient_update(actor=Actor(user=registrar), patient=duplicate, data={"phone": "1"})


def test_who_accessed_this_record_follows_merges(client, registrar, department):
    from accounts.templatetags.audit_tags import access_log

    survivor = PatientFactory(department=department)
    duplicate = PatientFactory(department=department)
    read = audit_record(actor=Actor(user=registrar), action="view", obj=duplicate)
    patient_merge(
        actor=Actor(user=registrar), survivor=survivor, duplicate=duplicate, reason="same person"
    )
    survivor.refresh_from_db()
    assert survivor.audit_patient_ids == sorted([survivor.pk, duplicate.pk])
    assert read in list(access_log(survivor)["events"])
