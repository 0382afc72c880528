import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from conftest import require

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_live_answers_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_checks_the_database(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["database"]["ok"] is True


@pytest.mark.django_db
def test_ready_is_503_when_the_database_is_down(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise RuntimeError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert "connection refused" in response.json()["database"]["error"]


def _broker_reachable() -> bool:
    from mis.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def health_worker():
    """A real Celery worker on the health queue, started like the compose file starts one."""
    require(_broker_reachable(), "the Celery broker is not reachable")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mis",
            "worker",
            "-Q",
            "health",
            "--pool",
            "solo",
            "-n",
            f"health-test-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.integration
@pytest.mark.django_db
def test_full_report_is_200_after_a_real_round_trip_through_a_worker(client, health_worker):
    deadline = time.monotonic() + 60
    while True:
        response = client.get("/health/")
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "worker"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.integration
@pytest.mark.django_db
def test_full_report_is_503_and_says_why_when_no_worker_answers(client, settings):
    require(_broker_reachable(), "the Celery broker is not reachable")
    from mis.celery import ping

    # A queue no worker consumes stands in for "all workers are down".
    original = ping.apply_async

    def to_nowhere(*args, **kwargs):
        kwargs["queue"] = "health-nobody-listens"
        return original(*args, **kwargs)

    settings.HEALTH_CELERY_TIMEOUT = 1
    ping.apply_async = to_nowhere
    try:
        response = client.get("/health/")
    finally:
        ping.apply_async = original
    assert response.status_code == 503
    worker = response.json()["checks"]["worker"]
    assert worker["ok"] is False and "no worker answered" in worker["error"]
