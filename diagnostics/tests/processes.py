"""Real processes for the worker tests: a redis-server of the test's own, and Celery workers
started like the compose file starts them (no mocks of our own components)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import require

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server on a spare port, never the shared one; it can be stopped and restarted."""

    def __init__(self, port: int | None = None):
        require(shutil.which("redis-server") is not None, "redis-server is not installed")
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def llen(self, key: str) -> int:
        import redis

        return redis.Redis(port=self.port).llen(key)


@contextlib.contextmanager
def broker(url: str):
    """Point this process's Celery app at ``url`` (and back afterwards). Celery reads the
    ``CELERY_BROKER_URL`` environment variable before its configuration, so both change."""
    from mis.celery import app

    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    saved_env = os.environ.get("CELERY_BROKER_URL")

    def reset():
        # Drop the references only: kombu keeps pools per URL and hands them out again.
        app._pool = None
        app.amqp._producer_pool = None

    reset()
    os.environ["CELERY_BROKER_URL"] = url
    app.conf.broker_url = url
    from django.conf import settings

    app.conf.broker_transport_options = {
        **settings.REDIS_BROKER_TRANSPORT_OPTIONS,
        "socket_connect_timeout": 1,
        "socket_timeout": 2,
    }
    app.conf.task_always_eager = False
    try:
        yield app
    finally:
        reset()
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env
        app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = saved


def database_url() -> str:
    """The test database as a URL for another process."""
    from django.db import connection

    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    user = settings["USER"] or "postgres"
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


class Worker:
    """``celery -A mis worker -B`` on the inference (and default) queue, one process child."""

    def __init__(self, *, broker_url: str, media_root, weights_dir, var_dir, lease: int, log):
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_RESULT_BACKEND": broker_url,
            "MEDIA_ROOT": str(media_root),
            "ML_WEIGHTS_DIR": str(weights_dir),
            "MIS_VAR_DIR": str(var_dir),
            "DIAGNOSTICS_LEASE_SECONDS": str(lease),
            "DIAGNOSTICS_SWEEP_SECONDS": "1",
            "DIAGNOSTICS_RESEND_SECONDS": "600",
            "ML_THREADS": "1",
            "LANGUAGE_CODE": "en",
        }
        self.env.pop("TEST_SQLITE_NAME", None)
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mis",
                "worker",
                "-B",
                "-Q",
                "inference,celery",
                "--concurrency",
                "1",
                "-n",
                f"diag-test-{os.getpid()}-{time.monotonic_ns()}@%h",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
