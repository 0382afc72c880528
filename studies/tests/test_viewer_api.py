"""The viewer's server side: raw full-depth frames (values, metadata, cache, downsampling,
scope, audit), overlays, and /api/v1/annotations/ (role matrix, authors only, filters, audit)."""

import json

import numpy as np
import pytest

from accounts.audit import Actor
from accounts.models import AuditEvent
from studies import frames
from studies.models import Annotation, DerivedImage, FindingCode, Instance

from .conftest import dicom_bytes
from .dicom_samples import make_dataset, to_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frame_cache(settings, tmp_path):
    settings.FRAME_CACHE_DIR = tmp_path / "frame-cache"
    return settings.FRAME_CACHE_DIR


def _ct(patient_study_uid="1.2.9", frames_=None, **elements):
    pixels = frames_ if frames_ is not None else np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    return to_bytes(
        make_dataset(
            pixels,
            StudyInstanceUID=patient_study_uid,
            RescaleSlope="1",
            RescaleIntercept="-1024",
            WindowCenter="40",
            WindowWidth="400",
            PixelSpacing=["0.5", "0.25"],
            **elements,
        )
    )


@pytest.fixture
def ct(patient, import_file):
    result = import_file(_ct())
    return Instance.objects.get(pk=result.instance_id)


def _meta(response):
    return json.loads(response["X-Frame-Metadata"])


def _body(response):
    return b"".join(response.streaming_content)


# --- raw frames ---------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["radiologist", "clinician", "registrar"])
def test_raw_frame_is_hu_at_full_depth_with_its_metadata(api_client, request, role, ct):
    api_client.force_authenticate(request.getfixturevalue(role))
    response = api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    meta = _meta(response)
    assert (meta["rows"], meta["columns"], meta["scale"]) == (64, 48, 1)
    assert meta["dtype"] == "int16" and meta["signed"] is True
    assert (meta["rescale_slope"], meta["rescale_intercept"]) == (1.0, -1024.0)
    assert meta["window"] == [40.0, 400.0] and meta["pixel_spacing"] == [0.5, 0.25]
    assert meta["photometric"] == "MONOCHROME2" and meta["rescale_type"] == "HU"
    values = np.frombuffer(_body(response), dtype="<i2").reshape(64, 48)
    expected = np.arange(64 * 48).reshape(64, 48) - 1024
    assert np.array_equal(values, expected)
    assert (meta["min"], meta["max"]) == (-1024.0, 64 * 48 - 1 - 1024.0)


def test_raw_frame_is_read_inside_the_study_viewing_window(api_client, clinician, ct):
    api_client.force_authenticate(clinician)
    api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw")
    api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw")
    events = AuditEvent.objects.filter(user_id=clinician.pk, action="view")
    assert events.count() == 1
    event = events.get()
    assert event.object_type == "studies.study"
    assert event.patient_id == ct.series.study.patient_id
    assert event.details["raw"] is True


def test_raw_frame_is_decoded_once_then_served_from_the_cache(api_client, clinician, ct):
    api_client.force_authenticate(clinician)
    first = _body(api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw"))
    path = frames.cache_path(ct, 0, None)
    assert path.exists() and ct.sha256 in path.name
    # Prove the second read is the cache's: mark the cached entry's metadata.
    handle, meta = frames.frame_data(ct, frame=0)
    handle.close()
    meta["cached"] = True
    frames._store(path, first, meta)
    second = api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw")
    assert _meta(second)["cached"] is True and _body(second) == first


def test_a_damaged_cache_entry_is_decoded_again(api_client, clinician, ct):
    api_client.force_authenticate(clinician)
    path = frames.cache_path(ct, 0, None)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xff\xff\x7fnot json")
    response = api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw")
    assert response.status_code == 200 and _meta(response)["rows"] == 64


def test_the_cache_is_pruned_oldest_first(clinician, ct, frame_cache):
    frames.frame_data(ct, frame=0)[0].close()
    frames.frame_data(ct, frame=0, max_size=64)[0].close()
    assert len(list(frame_cache.glob("*/*.frame"))) == 2
    assert frames.cache_prune(max_bytes=0) == 2
    assert not list(frame_cache.glob("*/*.frame"))


def test_large_images_are_downsampled_on_request(api_client, clinician, import_file):
    pixels = np.full((300, 200), 7, dtype=np.uint16)
    pixels[:100, :100] = 1000
    result = import_file(to_bytes(make_dataset(pixels, PixelSpacing=["0.1", "0.1"])))
    api_client.force_authenticate(clinician)
    response = api_client.get(f"/api/v1/instances/{result.instance_id}/frames/0.raw?max_size=100")
    meta = _meta(response)
    assert (meta["rows"], meta["columns"], meta["scale"]) == (100, 67, 3)
    assert (meta["original_rows"], meta["original_columns"]) == (300, 200)
    assert meta["pixel_spacing"] == [0.1, 0.1]  # of the original pixels; scale says the rest
    values = np.frombuffer(_body(response), dtype="<f4").reshape(100, 67)
    assert values[0, 0] == 1000 and values[99, 66] == 7


def test_a_bad_max_size_is_a_400(api_client, clinician, ct):
    api_client.force_authenticate(clinician)
    response = api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw?max_size=3")
    assert response.status_code == 400 and response.json()["status"] == "error"


def test_multi_frame_frames_and_a_missing_frame(api_client, clinician, import_file):
    stack = np.stack([np.full((8, 8), n * 100, dtype=np.int16) for n in range(5)])
    result = import_file(to_bytes(make_dataset(stack)))
    api_client.force_authenticate(clinician)
    response = api_client.get(f"/api/v1/instances/{result.instance_id}/frames/3.raw")
    assert _meta(response)["frames"] == 5
    assert set(np.frombuffer(_body(response), dtype="<i2")) == {300}
    missing = api_client.get(f"/api/v1/instances/{result.instance_id}/frames/5.raw")
    assert missing.status_code == 404
    assert "5 frame(s)" in missing.json()["error"]["message"]


def test_raw_frame_outside_scope_is_404_and_anonymous_401(api_client, outsider, ct):
    assert api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw").status_code == 401
    api_client.force_authenticate(outsider)
    assert api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw").status_code == 404
    assert not AuditEvent.objects.filter(action="view").exists()


def test_researcher_without_study_access_gets_403(api_client, researcher, ct):
    api_client.force_authenticate(researcher)
    assert api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw").status_code == 403


# --- overlays -------------------------------------------------------------------------------------
def test_overlays_list_derived_images_but_not_thumbnails(api_client, clinician, ct):
    from django.core.files.base import ContentFile

    heatmap = DerivedImage(instance=ct, kind=DerivedImage.Kind.HEATMAP, source="m@1", label="x")
    heatmap.file.save("h.png", ContentFile(b"\x89PNG fake"), save=True)
    thumb = DerivedImage(instance=ct, kind=DerivedImage.Kind.THUMBNAIL, source="render")
    thumb.file.save("t.png", ContentFile(b"\x89PNG"), save=True)
    api_client.force_authenticate(clinician)
    body = api_client.get(f"/api/v1/instances/{ct.pk}/overlays/").json()
    assert [row["id"] for row in body["results"]] == [heatmap.pk]
    image = api_client.get(body["results"][0]["url"])
    assert image.status_code == 200 and b"".join(image.streaming_content) == b"\x89PNG fake"


# --- annotations ----------------------------------------------------------------------------------
def _payload(instance, **over):
    return {
        "instance": instance.pk,
        "frame": 0,
        "shape": "rect",
        "x": 20,
        "y": 30,
        "width": 10,
        "height": 8,
        "angle": 30,
        "label": "pneumonia",
        "comment": "Очаг в нижней доле",
    } | over


def test_radiologist_annotates_and_the_write_is_audited(api_client, radiologist, ct):
    api_client.force_authenticate(radiologist)
    response = api_client.post("/api/v1/annotations/", _payload(ct), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["author"] == radiologist.pk and body["can_edit"] is True
    assert body["label"] == "pneumonia" and body["study"] == ct.series.study_id
    annotation = Annotation.objects.get()
    assert annotation.angle == 30 and annotation.comment == "Очаг в нижней доле"
    event = AuditEvent.objects.get(action="create", object_type="studies.annotation")
    assert event.patient_id == ct.series.study.patient_id


def test_angles_are_kept_in_one_turn(api_client, radiologist, ct):
    api_client.force_authenticate(radiologist)
    body = api_client.post("/api/v1/annotations/", _payload(ct, angle=270), format="json").json()
    assert body["angle"] == -90


@pytest.mark.parametrize(
    "over, field",
    [
        ({"frame": 1}, "frame"),
        ({"width": 0}, "width"),
        ({"x": 500}, "x"),
        ({"label": "no-such-code"}, "label"),
        ({"shape": "star"}, "shape"),
    ],
)
def test_bad_annotations_are_refused_with_the_field(api_client, radiologist, ct, over, field):
    api_client.force_authenticate(radiologist)
    response = api_client.post("/api/v1/annotations/", _payload(ct, **over), format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not Annotation.objects.exists()


def test_a_retired_label_is_refused(api_client, radiologist, ct):
    FindingCode.objects.filter(code="pneumonia").update(active=False)
    api_client.force_authenticate(radiologist)
    response = api_client.post("/api/v1/annotations/", _payload(ct), format="json")
    assert response.status_code == 400 and "label" in response.json()["error"]["details"]


@pytest.fixture
def annotation(radiologist, ct):
    from studies.annotations import annotation_create

    return annotation_create(
        actor=Actor(user=radiologist),
        instance=ct,
        frame=0,
        shape="ellipse",
        x=10,
        y=10,
        width=6,
        height=4,
        angle=0,
        label=FindingCode.objects.get(code="pneumonia"),
        comment="",
    )


@pytest.mark.parametrize("role", ["radiologist", "clinician", "registrar"])
def test_everyone_with_access_reads_annotations_and_the_list_is_audited(
    api_client, request, role, annotation
):
    api_client.force_authenticate(request.getfixturevalue(role))
    body = api_client.get("/api/v1/annotations/", {"study": annotation.instance.series.study_id})
    assert [row["id"] for row in body.json()["results"]] == [annotation.pk]
    event = AuditEvent.objects.get(action="list", object_type="studies.annotation")
    assert event.details["patient_ids"] == [annotation.instance.series.study.patient_id]


def test_clinician_cannot_annotate(api_client, clinician, ct):
    api_client.force_authenticate(clinician)
    response = api_client.post("/api/v1/annotations/", _payload(ct), format="json")
    assert response.status_code == 403 and not Annotation.objects.exists()


def test_outsider_sees_no_annotation_and_cannot_annotate_out_of_scope(
    api_client, outsider, annotation, ct
):
    from accounts import roles

    outsider.groups.clear()
    from django.contrib.auth.models import Group

    outsider.groups.add(Group.objects.get(name=roles.RADIOLOGIST))
    api_client.force_authenticate(outsider)
    assert api_client.get("/api/v1/annotations/").json()["results"] == []
    assert api_client.get(f"/api/v1/annotations/{annotation.pk}/").status_code == 404
    response = api_client.post("/api/v1/annotations/", _payload(ct), format="json")
    assert response.status_code == 400 and "instance" in response.json()["error"]["details"]


def test_the_author_edits_and_deletes_others_cannot(
    api_client, radiologist, department, annotation
):
    from conftest import _role_user

    colleague = _role_user("Radiologist", "colleague", department)
    api_client.force_authenticate(colleague)
    url = f"/api/v1/annotations/{annotation.pk}/"
    assert api_client.get(url).json()["can_edit"] is False
    assert api_client.patch(url, {"comment": "mine now"}, format="json").status_code == 403
    assert api_client.delete(url).status_code == 403
    api_client.force_authenticate(radiologist)
    response = api_client.patch(url, {"comment": "уточнено", "angle": 15}, format="json")
    assert response.status_code == 200
    annotation.refresh_from_db()
    assert (annotation.comment, annotation.angle) == ("уточнено", 15)
    update = AuditEvent.objects.get(action="update", object_type="studies.annotation")
    assert update.details["changed"] == ["angle", "comment"]
    assert api_client.delete(url).status_code == 204
    assert not Annotation.objects.exists()
    assert AuditEvent.objects.filter(action="delete", object_type="studies.annotation").exists()


def test_filters_by_instance_frame_label_and_mine(api_client, radiologist, annotation, ct):
    api_client.force_authenticate(radiologist)

    def ids(**query):
        return [r["id"] for r in api_client.get("/api/v1/annotations/", query).json()["results"]]

    assert ids(instance=ct.pk, frame=0) == [annotation.pk]
    assert ids(frame=1) == []
    assert ids(label="pneumonia") == [annotation.pk]
    assert ids(label="normal") == []
    assert ids(mine="true") == [annotation.pk]
    assert ids(mine="false") == []


def test_annotations_follow_a_patient_merge(registrar, annotation, department):
    from patients.merge import patient_merge
    from patients.tests.factories import PatientFactory

    survivor = PatientFactory(department=department)
    duplicate = annotation.instance.series.study.patient
    patient_merge(
        actor=Actor(user=registrar), survivor=survivor, duplicate=duplicate, reason="same person"
    )
    annotation.refresh_from_db()
    assert annotation.instance.series.study.patient_id == survivor.pk
    assert annotation.audit_patient_id == survivor.pk


# --- pages ----------------------------------------------------------------------------------------
def test_viewer_and_compare_pages(client, clinician, ct, import_file, patient):
    prior = Instance.objects.get(
        pk=import_file(dicom_bytes(StudyInstanceUID="1.2.10")).instance_id
    ).series.study
    study = ct.series.study
    client.force_login(clinician)
    page = client.get(f"/studies/{study.pk}/")
    assert b'class="mis-viewer' in page.content and b"js/viewer.js" in page.content
    assert client.get(f"/studies/{study.pk}/viewer/").status_code == 200
    compare = client.get(f"/studies/{study.pk}/compare/{prior.pk}/")
    assert compare.status_code == 200 and compare.content.count(b'class="mis-viewer') == 2
    assert AuditEvent.objects.filter(action="view", object_id=str(prior.pk)).exists()


def test_compare_refuses_another_patients_study(client, clinician, ct, import_file):
    other = import_file(dicom_bytes(StudyInstanceUID="1.2.11", PatientID="P-999"))
    other_study = Instance.objects.get(pk=other.instance_id).series.study
    assert other_study.patient_id != ct.series.study.patient_id
    client.force_login(clinician)
    study = ct.series.study
    assert client.get(f"/studies/{study.pk}/compare/{other_study.pk}/").status_code == 404
    assert client.get(f"/studies/{study.pk}/compare/{study.pk}/").status_code == 404


def test_viewer_page_outside_scope_is_404(client, outsider, ct):
    client.force_login(outsider)
    assert client.get(f"/studies/{ct.series.study_id}/viewer/").status_code == 404


def test_a_stored_file_gone_missing_is_a_clear_404_not_a_500(api_client, clinician, ct):
    from django.core.files.storage import default_storage

    default_storage.delete(ct.file.name)
    api_client.force_authenticate(clinician)
    response = api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw")
    assert response.status_code == 404
    assert "cannot be read" in response.json()["error"]["message"]
