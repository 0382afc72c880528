"""The Celery application. Queues: ``celery`` (default), ``inference`` (models), ``health``."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mis.settings")

app = Celery("mis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("celery"), Queue("inference"), Queue("health"))
app.autodiscover_tasks()


@app.task(name="mis.health.ping", ignore_result=False)
def ping() -> str:
    """Answer the health check's round trip: every worker consumes the ``health`` queue."""
    return "pong"
