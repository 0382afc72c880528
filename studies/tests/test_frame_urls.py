"""Signed frame URLs (studies/frame_urls.py): granted by the scoped, audited viewer metadata
request; served before Django for the same user and credential only; everything else (forged,
expired, another user's credential, another instance, no credential) is never served by the
fast path and goes on to the ordinary endpoint."""

import io
import json
import time
from urllib.parse import parse_qsl, urlsplit
from wsgiref.util import setup_testing_defaults

import numpy as np
import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client

from accounts.audit import Actor
from accounts.models import AuditEvent
from accounts.tokens import token_create
from studies import frame_urls
from studies.dicom import native
from studies.models import Instance

from .dicom_samples import make_dataset, to_bytes

pytestmark = pytest.mark.django_db

PIXELS = (np.arange(64 * 48, dtype=np.uint16) % 4096).reshape(64, 48)


@pytest.fixture(autouse=True)
def frame_cache(settings, tmp_path):
    settings.FRAME_CACHE_DIR = tmp_path / "frame-cache"
    settings.AUDIT_READS = True
    return settings.FRAME_CACHE_DIR


def _ct(**elements):
    return to_bytes(
        make_dataset(
            PIXELS,
            RescaleSlope="1",
            RescaleIntercept="-1024",
            WindowCenter="40",
            WindowWidth="400",
            PixelSpacing=["0.5", "0.25"],
            BitsStored=12,
            HighBit=11,
            **elements,
        )
    )


@pytest.fixture
def ct(patient, import_file):
    return Instance.objects.get(pk=import_file(_ct()).instance_id)


@pytest.fixture
def other_ct(patient, import_file):
    return Instance.objects.get(pk=import_file(_ct(StudyInstanceUID="1.2.77.2")).instance_id)


class Recorder:
    """The ordinary Django application behind the fast path, counting what reaches it."""

    def __init__(self):
        self.django = WSGIHandler()
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.django(environ, start_response)


@pytest.fixture
def app():
    return frame_urls.FrameFastPath(Recorder())


def _get(app, url, *, cookie=None, authorization=None, file_wrapper=None):
    """One request through the WSGI application: (status, headers, body)."""
    parts = urlsplit(url)
    environ = {"PATH_INFO": parts.path, "QUERY_STRING": parts.query, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    environ["SERVER_NAME"] = "testserver"
    environ["HTTP_HOST"] = "testserver"
    environ["wsgi.input"] = io.BytesIO()
    if file_wrapper:
        environ["wsgi.file_wrapper"] = file_wrapper
    if cookie:
        environ["HTTP_COOKIE"] = f"{settings.SESSION_COOKIE_NAME}={cookie}"
    if authorization:
        environ["HTTP_AUTHORIZATION"] = authorization
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(headers)

    # As Django's test client does: the test's database connection outlives the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = app(environ, start_response)
        body = b"".join(result)
        if hasattr(result, "close"):
            result.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return captured["status"], captured["headers"], body


def _session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _grant(client, study_id, **extra) -> dict:
    response = client.get(f"/api/v1/studies/{study_id}/viewer/", **extra)
    assert response.status_code == 200, response.content
    return response.json()


def _url(grant, instance_id, frame=0, kind="raw"):
    return grant["urls"][kind].format(instance=instance_id, frame=frame)


def _cookie(client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _token(url) -> str:
    return dict(parse_qsl(urlsplit(url).query))["t"]


def _with_token(url, token) -> str:
    return url.split("?")[0] + "?t=" + token


# --- the grant: scoped and audited -------------------------------------------------------------
@pytest.mark.parametrize("role", ["radiologist", "clinician", "registrar"])
def test_the_viewer_metadata_lists_the_images_and_signs_their_frames(request, role, ct):
    client = _session(request.getfixturevalue(role))
    grant = _grant(client, ct.series.study_id)
    [series] = grant["series"]
    assert series["instances"] == [
        {"id": ct.pk, "number": ct.number, "frames": 1, "rows": 64, "columns": 48}
    ]
    assert grant["urls"]["raw"].startswith("/api/v1/instances/{instance}/frames/{frame}.raw?t=")
    assert grant["urls"]["png"].endswith("?t=" + grant["token"])
    assert time.time() < grant["expires"] <= time.time() + settings.FRAME_URL_TTL + 1


def test_the_metadata_request_is_audited_once_per_viewing_window(clinician, ct):
    client = _session(clinician)
    _grant(client, ct.series.study_id)
    _grant(client, ct.series.study_id)
    event = AuditEvent.objects.get(user_id=clinician.pk, action="view")
    assert (event.object_type, event.object_id) == ("studies.study", str(ct.series.study_id))


def test_outsiders_and_anonymous_users_get_no_grant(outsider, ct):
    url = f"/api/v1/studies/{ct.series.study_id}/viewer/"
    assert _session(outsider).get(url).status_code == 404
    assert Client().get(url).status_code in (401, 403)


def test_the_urls_expire_with_the_viewing_window_they_were_audited_in(clinician, ct):
    study = ct.series.study
    opened = time.time() - 14 * 60
    AuditEvent.objects.create(
        time=frame_urls._aware(opened),
        user_id=clinician.pk,
        username=clinician.username,
        action="view",
        object_type="studies.study",
        object_id=str(study.pk),
        patient_id=study.patient_id,
    )
    grant = _grant(_session(clinician), study.pk)
    assert grant["expires"] <= opened + 15 * 60  # not the full FRAME_URL_TTL away


# --- the fast path serves the grantee --------------------------------------------------------
def test_a_signed_raw_frame_is_the_files_stored_pixels_without_django(app, clinician, ct):
    client = _session(clinician)
    grant = _grant(client, ct.series.study_id)
    status, headers, body = _get(app, _url(grant, ct.pk), cookie=_cookie(client))
    assert status == 200 and app.app.calls == 0
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Cache-Control"] == "private, no-store"
    meta = json.loads(headers["X-Frame-Metadata"])
    assert meta["rescaled"] is False and meta["dtype"] == "uint16" and meta["bits_stored"] == 12
    stored = np.frombuffer(body, dtype="<u2").reshape(64, 48)
    assert np.array_equal(stored, PIXELS)
    # The same values as the ordinary endpoint's, once rescaled as the viewer does.
    ordinary = client.get(f"/api/v1/instances/{ct.pk}/frames/0.raw")
    ordinary_meta = json.loads(ordinary["X-Frame-Metadata"])
    values = np.frombuffer(b"".join(ordinary.streaming_content), dtype=ordinary_meta["dtype"])
    rescaled = stored.astype(np.int32) * meta["rescale_slope"] + meta["rescale_intercept"]
    assert np.array_equal(rescaled.ravel(), values)
    for key in ("window", "windows", "pixel_spacing", "rows", "columns", "rescale_type"):
        assert meta[key] == ordinary_meta[key], key


def test_a_frame_followed_by_others_is_not_sent_past_its_length(app, clinician, import_file):
    """wsgiref's file wrapper (runserver's) sends a file to its end whatever Content-Length
    says: only a frame that ends the file may be handed to it."""
    from wsgiref.util import FileWrapper

    stack = np.stack([PIXELS + n for n in range(3)]).astype(np.uint16)
    instance = Instance.objects.get(pk=import_file(to_bytes(make_dataset(stack))).instance_id)
    client = _session(clinician)
    grant = _grant(client, instance.series.study_id)
    for frame in range(3):
        url = _url(grant, instance.pk, frame=frame)
        status, headers, body = _get(app, url, cookie=_cookie(client), file_wrapper=FileWrapper)
        assert status == 200 and app.app.calls == 0
        assert int(headers["Content-Length"]) == len(body) == PIXELS.size * 2
        assert np.array_equal(np.frombuffer(body, dtype="<u2").reshape(64, 48), stack[frame])


# --- where the pixels lie: found at import, not per frame ---------------------------------------
def _served_pixels(app, client, instance) -> tuple[int, dict, np.ndarray]:
    grant = _grant(client, instance.series.study_id)
    status, headers, body = _get(app, _url(grant, instance.pk), cookie=_cookie(client))
    assert status == 200 and app.app.calls == 0
    meta = json.loads(headers["X-Frame-Metadata"])
    return status, meta, np.frombuffer(body, dtype="<u2").reshape(64, 48)


def _counting_walks(monkeypatch) -> list:
    walked = []
    real = native.locate_fd

    def locate_fd(fd):
        walked.append(fd)
        return real(fd)

    monkeypatch.setattr(native, "locate_fd", locate_fd)
    return walked


def test_the_import_keeps_where_the_pixels_lie(ct, import_file):
    assert native.NativeFrames.from_dict(ct.pixel_layout) == native.locate(ct.file.path)
    from .conftest import pdf_dicom_bytes

    document = Instance.objects.get(pk=import_file(pdf_dicom_bytes()).instance_id)
    assert document.pixel_layout is None


def test_a_signed_raw_frame_reads_no_header(app, clinician, ct, monkeypatch):
    walked = _counting_walks(monkeypatch)
    _status, meta, pixels = _served_pixels(app, _session(clinician), ct)
    assert walked == [] and np.array_equal(pixels, PIXELS)
    assert meta == native.locate(ct.file.path).frame_meta(0)


def test_a_file_not_the_size_it_was_imported_at_has_its_header_walked(
    app, clinician, ct, monkeypatch
):
    Instance.objects.filter(pk=ct.pk).update(size=ct.size + 1)
    walked = _counting_walks(monkeypatch)
    _status, _meta, pixels = _served_pixels(app, _session(clinician), ct)
    assert len(walked) == 1 and np.array_equal(pixels, PIXELS)


def test_images_imported_before_the_layout_was_kept_have_their_header_walked(
    app, clinician, ct, monkeypatch
):
    Instance.objects.filter(pk=ct.pk).update(pixel_layout=None)
    walked = _counting_walks(monkeypatch)
    _status, _meta, pixels = _served_pixels(app, _session(clinician), ct)
    assert len(walked) == 1 and np.array_equal(pixels, PIXELS)


def test_a_kept_layout_past_the_files_end_is_not_trusted(app, clinician, ct):
    Instance.objects.filter(pk=ct.pk).update(pixel_layout={**ct.pixel_layout, "offset": ct.size})
    client = _session(clinician)
    grant = _grant(client, ct.series.study_id)
    status, headers, body = _get(app, _url(grant, ct.pk), cookie=_cookie(client))
    assert status == 200 and app.app.calls == 0
    meta = json.loads(headers["X-Frame-Metadata"])
    assert meta["rescaled"] is True  # decoded the ordinary way, not bytes from a wrong place
    values = np.frombuffer(body, dtype=meta["dtype"]).reshape(64, 48)
    assert np.array_equal(values, PIXELS.astype(np.int32) - 1024)


def test_a_signed_png_is_the_ordinary_endpoints_png(app, clinician, ct):
    client = _session(clinician)
    grant = _grant(client, ct.series.study_id)
    status, headers, body = _get(app, _url(grant, ct.pk, kind="png"), cookie=_cookie(client))
    assert status == 200 and app.app.calls == 0 and headers["Content-Type"] == "image/png"
    assert body == client.get(f"/api/v1/instances/{ct.pk}/frames/0.png").content


def test_an_api_token_credential_is_bound_like_a_session(app, api_client, clinician, ct):
    _, key = token_create(actor=Actor.system("test"), user=clinician, name="viewer")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    grant = api_client.get(f"/api/v1/studies/{ct.series.study_id}/viewer/").json()
    url = _url(grant, ct.pk)
    assert _get(app, url, authorization=f"Token {key}")[0] == 200 and app.app.calls == 0
    # The same user's session is another credential: the ordinary endpoint answers it.
    _refused(app, url, cookie=_cookie(_session(clinician)))


def test_downsampled_frames_come_from_the_frame_cache(app, clinician, import_file):
    pixels = np.full((300, 200), 7, dtype=np.uint16)
    instance = Instance.objects.get(pk=import_file(to_bytes(make_dataset(pixels))).instance_id)
    client = _session(clinician)
    grant = _grant(client, instance.series.study_id)
    url = _url(grant, instance.pk) + "&max_size=100"
    status, headers, body = _get(app, url, cookie=_cookie(client))
    assert status == 200 and app.app.calls == 0
    meta = json.loads(headers["X-Frame-Metadata"])
    assert (meta["rows"], meta["columns"], meta["scale"], meta["rescaled"]) == (100, 67, 3, True)
    assert len(body) == 100 * 67 * 4


# --- ... and nobody else -------------------------------------------------------------------------
def _refused(app, url, **credential):
    """The fast path did not answer: the request reached Django; its status."""
    before = app.app.calls
    status, headers, _ = _get(app, url, **credential)
    assert app.app.calls == before + 1, "the fast path served it"
    return status, headers


def test_a_leaked_url_without_the_credential_serves_nothing(app, clinician, ct):
    client = _session(clinician)
    url = _url(_grant(client, ct.series.study_id), ct.pk)
    assert _refused(app, url)[0] in (401, 403)


def test_another_users_credential_is_refused(app, clinician, outsider, radiologist, ct):
    url = _url(_grant(_session(clinician), ct.series.study_id), ct.pk)
    assert _refused(app, url, cookie=_cookie(_session(outsider)))[0] == 404  # out of scope
    # Someone allowed to see the study is answered by the ordinary endpoint (scoped, audited).
    status, headers = _refused(app, url, cookie=_cookie(_session(radiologist)))
    assert status == 200 and json.loads(headers["X-Frame-Metadata"])["rescaled"] is True
    assert AuditEvent.objects.filter(user_id=radiologist.pk, action="view").count() == 1


def test_a_forged_signature_is_refused(app, clinician, ct):
    client = _session(clinician)
    url = _url(_grant(client, ct.series.study_id), ct.pk)
    token = _token(url)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    _refused(app, _with_token(url, forged))
    _refused(app, _with_token(url, forged), cookie=_cookie(client))
    # Changing the user, the study or the expiry breaks the signature too.
    user_id, study_id, expires, digest, signature = token.split(".")
    for changed in (
        f"{int(user_id) + 1}.{study_id}.{expires}.{digest}.{signature}",
        f"{user_id}.{int(study_id) + 1}.{expires}.{digest}.{signature}",
        f"{user_id}.{study_id}.{int(expires) + 3600}.{digest}.{signature}",
        f"{user_id}.{study_id}.{expires}.{'0' * 32}.{signature}",
        "garbage",
    ):
        _refused(app, _with_token(url, changed), cookie=_cookie(client))


def test_an_expired_token_is_refused(app, clinician, ct):
    client = _session(clinician)
    url = _url(_grant(client, ct.series.study_id), ct.pk)
    user_id, study_id, _expires, digest, _ = _token(url).split(".")
    credential = frame_urls.credential_hash("session", _cookie(client))
    expired = frame_urls.sign(int(user_id), int(study_id), int(time.time()) - 1, digest, credential)
    valid = frame_urls.sign(int(user_id), int(study_id), int(time.time()) + 60, digest, credential)
    assert _get(app, _with_token(url, valid), cookie=_cookie(client))[0] == 200
    assert app.app.calls == 0
    _refused(app, _with_token(url, expired), cookie=_cookie(client))


def test_another_instance_is_refused(app, clinician, ct, other_ct):
    client = _session(clinician)
    grant = _grant(client, ct.series.study_id)  # a grant for ct's study only
    _refused(app, _url(grant, other_ct.pk), cookie=_cookie(client))
    _refused(app, _url(grant, ct.pk, frame=1), cookie=_cookie(client))  # no such frame


def test_unknown_parameters_and_a_removed_file_go_to_django(app, clinician, ct):
    client = _session(clinician)
    url = _url(_grant(client, ct.series.study_id), ct.pk, kind="png")
    _refused(app, url + "&window=40,400", cookie=_cookie(client))
    _refused(app, url + "&t=" + _token(url), cookie=_cookie(client))  # twice
    _refused(app, url.replace("?t=", "?xt="), cookie=_cookie(client))  # no token at all
    _refused(app, url + "&max_size=10", cookie=_cookie(client))  # out of range: Django says so
    assert _get(app, url, cookie=_cookie(client))[0] == 200  # now in the frame cache
    ct.file.storage.delete(ct.file.name)  # as removing the images does
    Instance.objects.filter(pk=ct.pk).update(file="")
    assert _refused(app, url, cookie=_cookie(client))[0] == 404
    assert _refused(app, url.replace(".png", ".raw"), cookie=_cookie(client))[0] == 404


def test_a_grant_written_by_another_worker_is_read_from_disk(app, clinician, ct, frame_cache):
    client = _session(clinician)
    url = _url(_grant(client, ct.series.study_id), ct.pk)
    frame_urls._grants.clear()
    assert _get(app, url, cookie=_cookie(client))[0] == 200 and app.app.calls == 0


def test_a_damaged_grant_is_not_trusted(app, clinician, ct, frame_cache):
    client = _session(clinician)
    url = _url(_grant(client, ct.series.study_id), ct.pk)
    [grant_file] = frame_cache.glob("grants/*/*.json")
    grant_file.write_text(json.dumps({"study": ct.series.study_id, "instances": {}}))
    frame_urls._grants.clear()  # as in another worker process, which reads it from disk
    _refused(app, url, cookie=_cookie(client))


# --- the ordinary PNG endpoint renders once -----------------------------------------------------
def test_the_ordinary_png_is_rendered_once_per_window(api_client, clinician, ct, frame_cache):
    api_client.force_authenticate(clinician)
    first = api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.png")
    assert first.status_code == 200
    [entry] = frame_cache.glob("*/*.png")
    entry.write_bytes(b"cached")  # prove the next answer is the cache's
    assert api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.png").content == b"cached"
    other = api_client.get(f"/api/v1/instances/{ct.pk}/frames/0.png?window=0,100")
    assert other.content.startswith(b"\x89PNG") and len(list(frame_cache.glob("*/*.png"))) == 2
