"""Training from the hospital's own studies: signed reports and radiologists' feedback label the
images; train_model --from-studies trains on them, disjoint by patient, audited as an export."""

import csv

import pytest
from django.core.management import CommandError, call_command

from accounts.audit import Actor
from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from diagnostics import services, training_set
from diagnostics.models import AnalysisRun, Feedback
from studies.models import FindingCode, Study
from studies.reporting.services import report_amend, report_draft_create, report_sign

from .conftest import chest_dicom

pytestmark = pytest.mark.django_db


@pytest.fixture
def lesion_code(db):
    return FindingCode.objects.create(code="lesion", name_en="Lesion", name_ru="Очаг")


@pytest.fixture
def reader(department):
    return UserFactory(username="reader", role="Radiologist", departments=[department])


def _sign(reader, study, codes, conclusion="Conclusion."):
    actor = Actor(user=reader)
    report = report_draft_create(
        actor=actor, study=study, conclusion=conclusion, finding_codes=codes
    )
    return report_sign(actor=actor, report=report)


def _studies(ingest, count):
    results = [
        ingest(chest_dicom(PatientID=f"T-{i}", lesion=i % 2 == 0, seed=i)) for i in range(count)
    ]
    return results, [Study.objects.get(pk=r.study_id) for r in results]


def test_signed_reports_label_images_and_feedback_labels_the_unreported(
    ai_model, ingest, reader, lesion_code
):
    results, studies = _studies(ingest, 6)
    _sign(reader, studies[0], ["lesion"])  # positive by report
    _sign(reader, studies[1], ["normal"])  # negative by report: the code is not named
    first = _sign(reader, studies[2], ["lesion"])
    amended = report_amend(actor=Actor(user=reader), report=first, reason="Second look")
    from studies.reporting.services import report_draft_update

    report_draft_update(actor=Actor(user=reader), report=amended, finding_codes=["normal"])
    report_sign(actor=Actor(user=reader), report=amended)  # the latest signed version wins
    for result in results[3:5]:
        services.run_execute(AnalysisRun.objects.get(instance_id=result.instance_id).pk)
    finding3 = AnalysisRun.objects.get(instance_id=results[3].instance_id).findings.get()
    finding4 = AnalysisRun.objects.get(instance_id=results[4].instance_id).findings.get()
    Feedback.objects.create(finding=finding3, user=reader, agrees=True)
    Feedback.objects.create(finding=finding4, user=reader, agrees=False)
    # study 5: neither a signed report nor feedback — left out

    images = training_set.labelled_images("lesion", categories=["chest_xray"])
    got = {i.instance_id: (i.positive, i.source) for i in images}
    assert got == {
        results[0].instance_id: (True, "report"),
        results[1].instance_id: (False, "report"),
        results[2].instance_id: (False, "report"),
        results[3].instance_id: (finding3.positive, "feedback"),
        results[4].instance_id: (not finding4.positive, "feedback"),
    }
    assert training_set.labelled_images("lesion", categories=["spine_xray"]) == []


def test_the_training_set_is_written_with_patients_and_audited_as_an_export(
    ai_model, ingest, reader, lesion_code, tmp_path
):
    results, studies = _studies(ingest, 2)
    _sign(reader, studies[0], ["lesion"])
    _sign(reader, studies[1], [])
    images = training_set.labelled_images("lesion", categories=["chest_xray"])
    csv_path = training_set.write_training_set(
        images,
        tmp_path / "set",
        class_names=("normal", "lesion"),
        code="lesion",
        actor=Actor.system("train_model"),
    )
    rows = list(csv.DictReader(csv_path.open()))
    assert sorted((r["label"], r["patient_id"]) for r in rows) == [
        ("lesion", f"patient-{studies[0].patient_id}"),
        ("normal", f"patient-{studies[1].patient_id}"),
    ]
    for row in rows:
        assert (csv_path.parent / row["image"]).read_bytes()[128:132] == b"DICM"
    exports = AuditEvent.objects.filter(action="export", details__purpose="model training")
    assert sorted(exports.values_list("patient_id", flat=True)) == sorted(
        s.patient_id for s in studies
    )


def test_train_model_from_studies_refuses_too_few_labelled_images(
    ai_model, ingest, reader, lesion_code, tmp_path
):
    _results, studies = _studies(ingest, 2)
    _sign(reader, studies[0], ["lesion"])
    with pytest.raises(CommandError, match="Too few labelled images for 'lesion': 1 positive"):
        call_command(
            "train_model",
            "lesion",
            "--from-studies",
            "lesion",
            "--classes",
            "normal,lesion",
            "--category",
            "chest_xray",
            "--weights-dir",
            str(tmp_path / "w"),
            "--work-dir",
            str(tmp_path / "work"),
        )


def test_train_model_from_studies_trains_a_model_on_them(ai_model, ingest, reader, tmp_path):
    FindingCode.objects.create(code="nodule-x", name_en="Nodule X", name_ru="Узел X")
    results = [
        ingest(chest_dicom(PatientID=f"N-{i}", lesion=i % 2 == 0, seed=100 + i)) for i in range(16)
    ]
    for i, result in enumerate(results):
        _sign(reader, Study.objects.get(pk=result.study_id), ["nodule-x"] if i % 2 == 0 else [])
    call_command(
        "train_model",
        "nodule-x",
        "--from-studies",
        "nodule-x",
        "--min-per-class",
        "8",
        "--classes",
        "normal,nodule-x",
        "--category",
        "chest_xray",
        "--size",
        "32x32",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--weights-dir",
        str(tmp_path / "w"),
        "--work-dir",
        str(tmp_path / "work"),
        stdout=open(tmp_path / "log", "w"),
        stderr=open(tmp_path / "err", "w"),
    )
    import json

    card = json.loads((tmp_path / "w" / "nodule-x" / "1.0.0" / "card.json").read_text())
    assert card["labels"] == ["nodule-x"]
    assert card["applies_to"]["categories"] == ["chest_xray"]
    rows = list(csv.DictReader((tmp_path / "work" / "dataset" / "training.csv").open()))
    assert len(rows) == 16 and {r["label"] for r in rows} == {"normal", "nodule-x"}
