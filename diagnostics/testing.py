"""Test support for other apps' tests (the API's schemathesis run): a real model for /predict.

The shipped pneumonia model (``ml_weights/pneumonia``, small and fast on a CPU) is registered
from the repository's weights: /predict and the analysis-run endpoints then answer with real
calibrated probabilities, never made-up ones.
"""

from __future__ import annotations


def install_test_model():
    """Register the shipped models (sha256 checked) and return the predict default's row."""
    from django.conf import settings

    from diagnostics.models import AIModel
    from diagnostics.registry import registry_sync

    registry_sync()
    name = settings.PREDICT_DEFAULT_MODEL.split("@", 1)[0]
    return AIModel.objects.filter(name=name, active=True).order_by("-id").first()


def analysed_study(*, actor, study, model):
    """Run ``model`` on the study's images now, in this process (as the worker would), and
    return the finished runs: real findings and heatmaps for tests of the API around them."""
    from diagnostics import services

    runs = services.runs_request(actor=actor, study=study, model=model, trigger="api")
    for run in runs:
        services.run_execute(run.pk)
        run.refresh_from_db()
    return runs
