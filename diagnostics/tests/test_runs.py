"""Runs on ingest and on demand, the applicability gate, the worker's claim/lease/token, results,
priority, superseding, and the faults that must end as readable failures."""

import datetime as dt

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from accounts.audit import Actor
from diagnostics import services
from diagnostics.models import AIModel, AnalysisRun, Finding
from studies.models import DerivedImage, Study

from .conftest import chest_dicom

pytestmark = pytest.mark.django_db


def _run_of(result) -> AnalysisRun:
    return AnalysisRun.objects.get(instance_id=result.instance_id)


def test_ingest_creates_one_queued_run_and_sends_it_only_after_commit(
    ai_model, ingest, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = ingest(chest_dicom())
    run = _run_of(result)
    assert run.status == "queued" and run.model == ai_model and run.trigger == "ingest"
    assert run.enqueued_at is None
    sends = [c for c in callbacks if getattr(c, "func", None) is services.run_enqueue]
    assert [c.args for c in sends] == [(run.pk,)]


@pytest.mark.parametrize(
    ("dicom", "reason"),
    [
        (dict(birth="19700101"), "age 56; model for 0–10 years"),
        (dict(view="LL"), "view LL; model for PA, AP"),
        (dict(BodyPartExamined="SKULL"), "category"),
    ],
)
def test_a_model_that_does_not_apply_leaves_a_visible_reason(ai_model, ingest, dicom, reason):
    result = ingest(chest_dicom(**dicom))
    run = _run_of(result)
    assert run.status == "not_applicable"
    assert reason in run.reason
    assert not run.findings.exists()


def test_inactive_models_do_not_run_on_ingest(ai_model, ingest):
    AIModel.objects.update(active=False)
    result = ingest(chest_dicom())
    assert not AnalysisRun.objects.filter(instance_id=result.instance_id).exists()


def test_the_worker_writes_calibrated_findings_heatmap_regions_and_priority(ai_model, ingest):
    result = ingest(chest_dicom(lesion=True))
    run = _run_of(result)
    outcome = services.run_execute(run.pk)
    assert outcome.status == "succeeded"
    run.refresh_from_db()
    assert run.status == "succeeded" and run.attempts == 1 and run.claim_token is None
    assert run.processing_ms is not None and run.inference_ms is not None
    (finding,) = run.findings.all()
    assert finding.label == "lesion" and finding.code == "lesion"
    assert finding.positive and finding.probability >= finding.threshold
    assert finding.severity in ("low", "moderate", "high")
    heatmap = finding.heatmap
    assert heatmap.kind == DerivedImage.Kind.HEATMAP and heatmap.source == "lesion@1.0.0"
    assert (heatmap.width, heatmap.height) == (48, 48)
    assert default_storage.exists(heatmap.file.name)
    # regions: boxes in original pixels, inside the 48×48 image
    assert finding.regions and all(
        0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 48 for x1, y1, x2, y2 in finding.regions
    )
    study = Study.objects.get(pk=result.study_id)
    assert study.ai_priority == services.SEVERITY_PRIORITY[finding.severity]


def test_a_negative_image_gets_a_heatmap_of_its_top_label_and_no_priority(ai_model, ingest):
    run = _run_of(ingest(chest_dicom(lesion=False)))
    services.run_execute(run.pk)
    (finding,) = Finding.objects.filter(run=run)
    assert not finding.positive and finding.severity == "none"
    assert finding.heatmap is not None  # "or the top one"
    assert Study.objects.get(pk=run.instance.series.study_id).ai_priority == 0


def test_ai_never_lowers_a_priority(ai_model, ingest):
    result = ingest(chest_dicom(lesion=True))
    Study.objects.filter(pk=result.study_id).update(ai_priority=9)
    services.run_execute(_run_of(result).pk)
    assert Study.objects.get(pk=result.study_id).ai_priority == 9


def test_a_run_is_claimed_once_and_results_are_written_only_under_the_token(ai_model, ingest):
    run = _run_of(ingest(chest_dicom()))
    claimed = services.run_claim(run.pk)
    assert claimed is not None
    assert services.run_claim(run.pk) is None  # another worker: the lease holds it
    _run, token = claimed
    # The lease expires and the sweeper gives the run back: the old token no longer writes.
    AnalysisRun.objects.filter(pk=run.pk).update(lease_until=timezone.now() - dt.timedelta(1))
    sweep = services.runs_sweep()
    assert sweep["reclaimed"] == 1
    assert services.run_fail(run, token, "late") is False
    run.refresh_from_db()
    assert run.status == "queued" and run.error == ""
    assert services.run_execute(run.pk).status == "succeeded"
    run.refresh_from_db()
    assert run.attempts == 2


def test_a_lost_claim_writes_nothing_and_leaves_no_heatmap_file(ai_model, ingest):
    from diagnostics import inference

    run = _run_of(ingest(chest_dicom()))
    (run, token) = services.run_claim(run.pk)
    model = inference.loaded_model(
        folder=ai_model.folder, sha256=ai_model.weights_sha256, key=ai_model.key
    )
    with default_storage.open(run.instance.file.name) as handle:
        analysis = inference.analyse(model, handle.read())
    AnalysisRun.objects.filter(pk=run.pk).update(claim_token=None, status="queued")
    assert services.run_write_results(run, token, analysis, started=0) is False
    assert not Finding.objects.exists()
    assert not DerivedImage.objects.filter(kind="heatmap").exists()
    folder = f"derived/{run.instance.sop_instance_uid}"
    assert not default_storage.exists(folder) or not default_storage.listdir(folder)[1]


def test_attempts_are_bounded(ai_model, ingest, settings):
    settings.DIAGNOSTICS_MAX_ATTEMPTS = 2
    run = _run_of(ingest(chest_dicom()))
    AnalysisRun.objects.filter(pk=run.pk).update(attempts=2)
    assert services.run_execute(run.pk).status == "not-claimed"
    run.refresh_from_db()
    assert run.status == "failed" and "Gave up after 2 attempts" in run.error


def test_a_corrupt_image_fails_with_a_readable_error(ai_model, ingest):
    run = _run_of(ingest(chest_dicom()))
    path = default_storage.path(run.instance.file.name)
    with open(path, "r+b") as handle:  # the file rots on disk after ingest
        handle.seek(132)
        handle.write(b"\xff" * 64)
        handle.truncate(400)
    services.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith("The image cannot be analysed:")
    assert "DICOM" in run.error


def test_weights_altered_after_registration_fail_the_run_and_show_in_the_admin(
    ai_model, ingest, weights_root
):
    run = _run_of(ingest(chest_dicom()))
    weights = weights_root / "lesion" / "1.0.0" / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    services.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "The model cannot be used" in run.error and "sha256" in run.error
    ai_model.refresh_from_db()
    assert ai_model.state == "invalid" and not ai_model.active and "sha256" in ai_model.problem


def test_missing_weights_fail_the_run_with_a_clear_error(ai_model, ingest, weights_root):
    run = _run_of(ingest(chest_dicom()))
    (weights_root / "lesion" / "1.0.0" / "weights.pt").unlink()
    services.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "weights file" in run.error and "is missing" in run.error


def test_an_active_model_marked_invalid_fails_new_runs_at_once(ai_model, ingest):
    AIModel.objects.update(state="invalid", problem="lesion@1.0.0: weights file is missing.")
    run = _run_of(ingest(chest_dicom()))
    assert run.status == "failed" and "weights file is missing" in run.error


def test_run_on_demand_supersedes_the_earlier_run_when_it_succeeds(ai_model, ingest, radiologist):
    result = ingest(chest_dicom())
    first = _run_of(result)
    services.run_execute(first.pk)
    study = Study.objects.get(pk=result.study_id)
    (second,) = services.runs_request(actor=Actor(user=radiologist), study=study)
    assert second.trigger == "page" and second.status == "queued"
    # asking again while it is pending reuses it
    assert services.runs_request(actor=Actor(user=radiologist), study=study) == [second]
    services.run_execute(second.pk)
    first.refresh_from_db()
    assert first.superseded_by_id == second.pk
    # the heatmap row is reused for the same model version (one per instance/label/source)
    assert DerivedImage.objects.filter(kind="heatmap").count() == 1
    second.refresh_from_db()
    assert second.findings.get().heatmap_id is not None


def test_a_named_model_runs_even_where_it_does_not_apply_and_says_why(
    ai_model, ingest, radiologist
):
    result = ingest(chest_dicom(birth="19700101"))
    study = Study.objects.get(pk=result.study_id)
    (run,) = services.runs_request(actor=Actor(user=radiologist), study=study, model=ai_model)
    assert run.status == "queued"
    assert "run on request although: age 56" in run.reason


def test_runs_request_without_an_applicable_model_explains(ai_model, ingest, radiologist):
    from django.core.exceptions import ValidationError

    study = Study.objects.get(pk=ingest(chest_dicom(birth="19700101")).study_id)
    with pytest.raises(ValidationError, match="No active model applies"):
        services.runs_request(actor=Actor(user=radiologist), study=study)


def test_clinicians_may_not_request_runs(ai_model, ingest, clinician):
    from django.core.exceptions import PermissionDenied

    study = Study.objects.get(pk=ingest(chest_dicom()).study_id)
    with pytest.raises(PermissionDenied):
        services.runs_request(actor=Actor(user=clinician), study=study)


def test_the_sweeper_resends_runs_never_sent(ai_model, ingest, settings):
    """The broker was down at upload (enqueued_at empty): the sweeper sends them."""
    from mis.celery import app

    run = _run_of(ingest(chest_dicom()))
    assert run.enqueued_at is None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True  # the send runs the task here, in this process
    try:
        result = services.runs_sweep()
    finally:
        app.conf.task_always_eager = previous
    assert result["resent"] == 1
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_merge_moves_runs_with_their_study(ai_model, ingest, child_patient, registrar):
    """Runs are reached through instance → series → study; merging moves the study."""
    from patients.merge import patient_merge
    from patients.models import Patient

    result = ingest(chest_dicom(PatientID="DUP-1"))
    run = _run_of(result)
    duplicate = Study.objects.get(pk=result.study_id).patient
    assert duplicate.pk != child_patient.pk
    patient_merge(
        actor=Actor(user=registrar), survivor=child_patient, duplicate=duplicate, reason="same"
    )
    run.refresh_from_db()
    assert run.instance.series.study.patient_id == child_patient.pk
    assert Patient.objects.get(pk=duplicate.pk).merged_into_id == child_patient.pk
