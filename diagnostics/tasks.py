"""Celery tasks of the diagnostics app: thin, they take an id and call a service.

``analyse`` runs on the ``inference`` queue with ``acks_late`` and
``reject_on_worker_lost``: a worker killed mid-inference leaves the message to be delivered
again, and the run's lease (swept by ``sweep``) guarantees it is finished by someone.
Retries are only for :class:`~diagnostics.services.TransientError` and bounded.
"""

from celery import shared_task
from celery.signals import worker_init, worker_process_init


@shared_task(
    name="diagnostics.analyse",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=3,
    default_retry_delay=5,
)
def analyse(self, run_id: int) -> str:
    from diagnostics.services import TransientError, run_execute

    try:
        return run_execute(run_id).status
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=5 * (self.request.retries + 1)) from exc


@shared_task(name="diagnostics.sweep", ignore_result=True)
def sweep() -> dict:
    from diagnostics.services import runs_sweep

    return runs_sweep()


@worker_init.connect
def _import_torch_before_forking(**_kwargs):
    """Import torch once in the worker's main process, so each forked child starts ready; the
    registry is re-checked against ml_weights/ (sha256) at every worker start."""
    try:
        import torch  # noqa: F401
    except ImportError:  # a web-only image (WITH_ML=0) runs no inference
        return
    import django

    django.setup()
    from diagnostics.registry import registry_sync

    try:
        registry_sync()
    except Exception:  # the database may not be migrated yet; the admin re-checks too
        import logging

        logging.getLogger(__name__).exception("Model registry not synchronised at start")
    finally:
        from django.db import connections

        connections.close_all()  # never share a connection with the forked children


@worker_process_init.connect
def _load_active_models(**_kwargs):
    """Each worker process loads the active models once, before its first task."""
    try:
        from diagnostics import inference
        from diagnostics.models import AIModel
    except ImportError:
        return
    try:
        for model in AIModel.objects.filter(active=True, state=AIModel.State.AVAILABLE):
            inference.loaded_model(folder=model.folder, sha256=model.weights_sha256, key=model.key)
    except Exception:  # a bad model fails its own runs with the reason; the others still load
        import logging

        logging.getLogger(__name__).exception("Preloading models failed")
    finally:
        from django.db import connections

        connections.close_all()
