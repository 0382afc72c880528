"""A real Celery worker process and Redis: upload → findings on the page and in the API; a
worker killed mid-inference; the broker down at upload. Redis is the test's own redis-server on
a spare port unless CELERY_BROKER_URL names a Redis (CI: the machine's, its own db number)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from django.urls import reverse

from diagnostics import services
from diagnostics.models import AnalysisRun

from .conftest import chest_dicom
from .processes import RedisServer, Worker, broker, wait_for

pytestmark = pytest.mark.integration

STARTUP = 120  # a cold worker imports torch; the machine may be busy


@pytest.fixture(scope="module")
def redis_url():
    configured = os.environ.get("CELERY_BROKER_URL", "")
    if configured.startswith("redis://"):
        yield configured
        return
    server = RedisServer().start()
    yield server.url
    server.stop()


@pytest.fixture
def start_worker(redis_url, media, weights_root, tmp_path):
    workers = []
    log_path = tmp_path / "worker.log"

    def _start(lease: int = 30) -> Worker:
        log = open(log_path, "ab")
        worker = Worker(
            broker_url=redis_url,
            media_root=media,
            weights_dir=weights_root,
            var_dir=tmp_path / "var",
            lease=lease,
            log=log,
        ).start()
        workers.append(worker)
        return worker

    yield _start
    for worker in workers:
        worker.stop()
    if log_path.exists():
        print(log_path.read_text(errors="replace")[-4000:])


def _finished(run_id):
    def check():
        run = AnalysisRun.objects.get(pk=run_id)
        return run if run.status in ("succeeded", "failed") else None

    return check


@pytest.mark.django_db(transaction=True)
def test_upload_to_findings_on_the_page_and_in_the_api(
    ai_model, redis_url, start_worker, client, api_client, registrar, radiologist, settings
):
    start_worker()
    with broker(redis_url):
        api_client.force_authenticate(registrar)
        response = api_client.post(
            "/api/v1/instances/",
            {"file": [_upload(chest_dicom(lesion=True))]},
            format="multipart",
        )
        assert response.status_code == 200, response.content
        (result,) = response.json()["results"]
        run = AnalysisRun.objects.get(instance_id=result["instance"])
        assert run.enqueued_at is not None
        run = wait_for(_finished(run.pk), timeout=STARTUP, what="the worker's result")
    assert run.status == "succeeded", run.error
    assert run.worker and run.attempts == 1
    client.force_login(radiologist)
    html = client.get(reverse("studies:detail", args=[result["study"]])).content.decode()
    assert "ai-bar-fill positive" in html and "decision support, not a diagnosis" in html
    api_client.force_authenticate(radiologist)
    body = api_client.get(f"/api/v1/analysis-runs/{run.pk}/").json()
    assert body["status"] == "succeeded" and body["findings"][0]["positive"] is True


def _upload(data: bytes, name: str = "chest.dcm"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/dicom")


def _big_chest(seed: int) -> bytes:
    """A large film (slow enough to be caught mid-inference)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 4000, (3000, 3000), dtype=np.uint16)
    from studies.tests.dicom_samples import DX_IMAGE_STORAGE, make_dataset, to_bytes

    ds = make_dataset(
        pixels,
        SOPClassUID=DX_IMAGE_STORAGE,
        Modality="DX",
        BodyPartExamined="CHEST",
        ViewPosition="PA",
        PatientBirthDate="20200101",
        PatientID=f"BIG-{seed}",
    )
    return to_bytes(ds)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_inference_still_completes_the_run_within_two_leases(
    ai_model, redis_url, start_worker, ingest, radiologist
):
    lease = 5
    start_worker(lease=lease)
    with broker(redis_url):
        run = None
        for attempt in range(3):  # catch it running; a fast machine may finish first
            if run is None:
                result = ingest(_big_chest(attempt))
                run = AnalysisRun.objects.get(instance_id=result.instance_id)
            else:
                study = run.instance.series.study
                (run,) = services.runs_request(actor=_actor(radiologist), study=study)
            running = wait_for(
                lambda run_id=run.pk: AnalysisRun.objects.filter(
                    pk=run_id, status__in=["running", "succeeded", "failed"]
                ).first(),
                timeout=STARTUP,
                interval=0.005,
                what="the run to start",
            )
            if running.status == "running":
                break
        else:
            pytest.fail("the run was never caught running")
        pid = int(running.worker.rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        done = wait_for(_finished(run.pk), timeout=4 * lease + 30, what="the run to finish")
        elapsed = time.monotonic() - killed_at
    assert done.status == "succeeded", done.error
    assert done.attempts == 2 and done.worker != running.worker
    assert elapsed <= 2 * lease, f"finished {elapsed:.1f}s after the kill (lease {lease}s)"


def _actor(user):
    from accounts.audit import Actor

    return Actor(user=user)


@pytest.mark.django_db
def test_broker_down_at_upload_the_upload_succeeds_and_the_run_is_sent_later(
    ai_model, ingest, django_capture_on_commit_callbacks
):
    server = RedisServer()  # its own, on a spare port, not started yet: the broker is down
    with broker(server.url):
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True):
            result = ingest(chest_dicom())
        took = time.monotonic() - started
        run = AnalysisRun.objects.get(instance_id=result.instance_id)
        print(f"upload with the broker down took {took:.2f}s")
        assert result.status == "imported" and took < 5, f"upload took {took:.1f}s"
        assert run.status == "queued" and run.enqueued_at is None
        server.start()
        try:
            swept = services.runs_sweep()  # what beat runs every DIAGNOSTICS_SWEEP_SECONDS
            assert swept["resent"] == 1
            run.refresh_from_db()
            assert run.enqueued_at is not None
            assert server.llen("inference") == 1
        finally:
            server.stop()
