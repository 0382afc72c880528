"""/api/v1/analysis-runs/, /api/v1/findings/<id>/feedback/ and POST /api/v1/predict."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import AuditEvent
from diagnostics import services
from diagnostics.models import AnalysisRun, Feedback

from .conftest import chest_dicom, chest_png

pytestmark = pytest.mark.django_db


@pytest.fixture
def analysed(ai_model, ingest):
    result = ingest(chest_dicom(lesion=True))
    run = AnalysisRun.objects.get(instance_id=result.instance_id)
    services.run_execute(run.pk)
    return AnalysisRun.objects.get(pk=run.pk)


# -- analysis runs -----------------------------------------------------------------------------
def test_list_is_scoped_filtered_and_audited(api_client, clinician, outsider, analysed):
    api_client.force_authenticate(clinician)
    body = api_client.get("/api/v1/analysis-runs/", {"status": "succeeded"}).json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["model"] == "lesion" and row["model_version"] == "1.0.0"
    assert row["positive"] == ["lesion"] and row["study"] == analysed.instance.series.study_id
    assert api_client.get("/api/v1/analysis-runs/", {"status": "failed"}).json()["count"] == 0
    assert api_client.get("/api/v1/analysis-runs/", {"positive": "false"}).json()["count"] == 0
    event = AuditEvent.objects.filter(action="list", object_type="diagnostics.analysisrun").last()
    assert event.details["patient_ids"] == [analysed.audit_patient_id]
    api_client.force_authenticate(outsider)
    assert api_client.get("/api/v1/analysis-runs/").json()["count"] == 0
    assert api_client.get(f"/api/v1/analysis-runs/{analysed.pk}/").status_code == 404


def test_detail_has_findings_and_is_audited_as_a_read_of_the_study(api_client, clinician, analysed):
    api_client.force_authenticate(clinician)
    body = api_client.get(f"/api/v1/analysis-runs/{analysed.pk}/").json()
    (finding,) = body["findings"]
    assert finding["label"] == "lesion" and finding["positive"] is True
    assert 0 <= finding["probability"] <= 1 and finding["severity"] in ("low", "moderate", "high")
    assert finding["heatmap"].endswith(f"/diagnostics/findings/{finding['id']}/heatmap.png")
    assert all(len(box) == 4 for box in finding["regions"])
    assert body["disclaimer"] == "AI result — decision support, not a diagnosis"
    assert AuditEvent.objects.filter(
        user_id=clinician.pk,
        action="view",
        object_type="studies.study",
        object_id=str(analysed.instance.series.study_id),
    ).exists()


def test_a_radiologist_requests_a_run_and_a_clinician_may_not(
    api_client, radiologist, clinician, analysed
):
    study = analysed.instance.series.study_id
    api_client.force_authenticate(clinician)
    response = api_client.post("/api/v1/analysis-runs/", {"study": study})
    assert response.status_code == 403 and response.json()["status"] == "error"
    api_client.force_authenticate(radiologist)
    response = api_client.post("/api/v1/analysis-runs/", {"study": study, "model": "lesion@1.0.0"})
    assert response.status_code == 202
    (run,) = response.json()
    assert run["status"] == "queued" and run["trigger"] == "api"
    response = api_client.post("/api/v1/analysis-runs/", {"study": study, "model": "nope"})
    assert response.status_code == 400 and response.json()["error"]["details"]["model"]
    assert api_client.post("/api/v1/analysis-runs/", {"study": 999999}).status_code == 404


def test_anonymous_requests_get_401(api_client, analysed):
    assert api_client.get("/api/v1/analysis-runs/").status_code == 401


def test_feedback_api(api_client, radiologist, clinician, outsider, analysed):
    finding = analysed.findings.get()
    url = f"/api/v1/findings/{finding.pk}/feedback/"
    api_client.force_authenticate(clinician)
    assert api_client.post(url, {"agrees": True}).status_code == 403
    api_client.force_authenticate(radiologist)
    response = api_client.post(url, {"agrees": False, "comment": "artefact"})
    assert response.status_code == 200
    assert response.json()["agrees"] is False and response.json()["comment"] == "artefact"
    assert Feedback.objects.get().comment == "artefact"
    assert api_client.post(url, {"comment": "x"}).status_code == 400
    assert AuditEvent.objects.filter(object_type="diagnostics.feedback").count() == 1
    from django.contrib.auth.models import Group

    outsider.groups.set([Group.objects.get(name="Radiologist")])
    api_client.force_authenticate(outsider)
    assert api_client.post(url, {"agrees": True}).status_code == 404


# -- predict -----------------------------------------------------------------------------------
@pytest.fixture
def predictor(api_client, radiologist, ai_model, settings):
    settings.PREDICT_DEFAULT_MODEL = "lesion"
    api_client.force_authenticate(radiologist)
    return api_client


def _post(client, data: bytes, name="chest.dcm", url="/api/v1/predict", **fields):
    return client.post(url, {"image": SimpleUploadedFile(name, data), **fields}, format="multipart")


@pytest.mark.parametrize("url", ["/api/v1/predict", "/api/v1/predict/"])
def test_predict_answers_in_the_documented_shape(predictor, url):
    response = _post(predictor, chest_dicom(lesion=True), url=url)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "success"
    assert set(body["prediction"]) == {"diagnoses", "confidence_score", "processing_time_ms"}
    (diagnosis,) = body["prediction"]["diagnoses"]
    assert set(diagnosis) == {"condition", "probability", "positive", "severity", "regions"}
    assert diagnosis["condition"] == "lesion" and diagnosis["positive"] is True
    assert diagnosis["severity"] in ("low", "moderate", "high")
    assert diagnosis["regions"] and all(len(box) == 4 for box in diagnosis["regions"])
    p = diagnosis["probability"]
    assert body["prediction"]["confidence_score"] == pytest.approx(max(p, 1 - p), abs=1e-4)
    assert isinstance(body["prediction"]["processing_time_ms"], int)
    meta = body["metadata"]
    assert (meta["model"], meta["model_version"]) == ("lesion", "1.0.0")
    assert meta["timestamp"] and meta["warnings"] == []
    event = AuditEvent.objects.filter(action="predict").last()
    assert event.object_id == "lesion@1.0.0" and len(event.details["image_sha256"]) == 64


def test_predict_on_a_png_warns_about_what_the_file_does_not_tell(predictor):
    body = _post(predictor, chest_png(lesion=False), name="x.png").json()
    (diagnosis,) = body["prediction"]["diagnoses"]
    assert diagnosis["positive"] is False and diagnosis["severity"] == "none"
    warnings = " ".join(body["metadata"]["warnings"])
    assert "category unknown" in warnings and "age unknown" in warnings


def test_the_default_model_refuses_an_image_it_was_not_made_for(predictor):
    response = _post(predictor, chest_dicom(birth="19700101"))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "not_applicable" and "age 56; model for 0–10 years" in error["message"]


def test_an_explicit_model_skips_the_gate_and_warns(predictor):
    body = _post(predictor, chest_dicom(birth="19700101"), model="lesion@1.0.0").json()
    assert body["status"] == "success"
    assert any("age 56" in w for w in body["metadata"]["warnings"])


def test_predict_errors_are_4xx_in_the_foundation_shape(predictor, settings):
    from diagnostics.models import AIModel

    response = _post(predictor, b"not an image at all", name="x.png")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_image"
    response = _post(predictor, chest_dicom(), model="nothing")
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_model"
    AIModel.objects.create(
        name="chest-pathologies", version="1.0.0", state="unavailable", folder="/x"
    )
    response = _post(predictor, chest_dicom(), model="chest-pathologies")
    assert response.status_code == 409
    assert "unavailable: no weights are installed" in response.json()["error"]["message"]
    response = predictor.post("/api/v1/predict", {}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["details"]["image"]
    settings.PREDICT_MAX_BYTES = 10
    assert _post(predictor, chest_dicom()).status_code == 413


def test_predict_needs_login_and_the_permission(api_client, registrar, ai_model):
    assert _post(api_client, chest_dicom()).status_code == 401
    api_client.force_authenticate(registrar)
    assert _post(api_client, chest_dicom()).status_code == 403


def test_the_api_docs_define_severity_and_confidence_score(api_client, administrator):
    api_client.force_authenticate(administrator)
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/api/v1/predict" in schema and "/api/v1/analysis-runs/" in schema
    assert "max(p, 1 − p)" in schema or "max(p, 1 \\u2212 p)" in schema
    assert "at or above the high cut point" in schema


def test_the_models_list_says_plainly_which_are_unavailable(api_client, clinician, ai_model):
    from diagnostics.models import AIModel

    AIModel.objects.create(
        name="chest-pathologies",
        version="1.0.0",
        state="unavailable",
        problem="chest-pathologies@1.0.0: no weights are installed (use manage.py import_weights).",
        folder="/x",
    )
    api_client.force_authenticate(clinician)
    rows = {r["name"]: r for r in api_client.get("/api/v1/ai-models/").json()["results"]}
    assert rows["lesion"]["state"] == "available" and rows["lesion"]["labels"] == ["lesion"]
    assert rows["chest-pathologies"]["state"] == "unavailable"
    assert "no weights are installed" in rows["chest-pathologies"]["problem"]
