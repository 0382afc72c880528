"""Analysis runs: creation (ingest, page, API), enqueueing, claiming, results, sweeping; feedback.

A run moves ``queued → running → succeeded | failed``; a model that does not apply to an image
leaves a ``not_applicable`` run with its reason. A worker claims a run with a conditional update
that sets a lease and a fresh claim token; the results are written in one short transaction only
while that token still holds the run; no transaction is open during inference.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import CREATE, UPDATE, Actor, audit_record
from accounts.permissions import can
from diagnostics.models import AIModel, AnalysisRun, Feedback, Finding
from diagnostics.registry import model_card, model_mark_invalid
from studies.models import DerivedImage, FindingCode, Instance, Study

logger = logging.getLogger(__name__)

RUN_PERM = "diagnostics.add_analysisrun"
FEEDBACK_PERM = "diagnostics.add_feedback"
SEVERITY_PRIORITY = {"low": 1, "moderate": 2, "high": 3}


class TransientError(Exception):
    """Worth another try later (storage or database briefly unreachable)."""


# -- applicability -----------------------------------------------------------------------------
def age_years(birth_date: dt.date | None, on: dt.date | None) -> float | None:
    if birth_date is None:
        return None
    on = on or timezone.localdate()
    years = on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
    return float(max(years, 0))


def not_applicable_reason(model: AIModel, study: Study) -> str | None:
    """Why ``model`` must not run on the study's images (category, view, age), or None."""
    when = timezone.localdate(study.study_datetime) if study.study_datetime else None
    return model_card(model).not_applicable_reason(
        category=study.category,
        view_position=study.view_position,
        age_years=age_years(study.patient.birth_date, when),
    )


# -- creating and sending runs -----------------------------------------------------------------
def _new_run(*, instance, study, model, trigger, actor) -> AnalysisRun:
    run = AnalysisRun(instance=instance, model=model, trigger=trigger)
    run.requested_by = actor.user if actor.user_id else None
    reason = not_applicable_reason(model, study) if trigger == AnalysisRun.Trigger.INGEST else None
    if not instance.is_image:
        reason = _("not an image")
    if reason:
        run.status, run.reason = AnalysisRun.Status.NOT_APPLICABLE, reason
    elif not model.is_available:
        run.status = AnalysisRun.Status.FAILED
        run.error = model.problem or _("The model is unavailable.")
        run.finished_at = timezone.now()
    elif not instance.file:
        run.status = AnalysisRun.Status.FAILED
        run.error = _("The image file was removed.")
        run.finished_at = timezone.now()
    run.save()
    if run.status == AnalysisRun.Status.QUEUED:
        transaction.on_commit(partial(run_enqueue, run.pk))
    return run


def runs_for_new_instance(
    *, instance: Instance, study: Study, actor: Actor, batch: dict | None = None
) -> list[AnalysisRun]:
    """One run per active model for a newly imported image (called inside the ingest
    transaction by the ``instance_imported`` signal; the runs are sent when it commits).
    ``batch`` (the signal's per-transaction dict) keeps the active models looked up once for
    all the images of one upload."""
    if not instance.is_image:
        return []
    if batch is None:
        batch = {}
    if "diagnostics.active_models" not in batch:
        batch["diagnostics.active_models"] = list(AIModel.objects.filter(active=True))
    return [
        _new_run(
            instance=instance,
            study=study,
            model=model,
            trigger=AnalysisRun.Trigger.INGEST,
            actor=actor,
        )
        for model in batch["diagnostics.active_models"]
    ]


@transaction.atomic
def runs_request(
    *, actor: Actor, study: Study, model: AIModel | None = None, trigger: str = "page"
) -> list[AnalysisRun]:
    """On demand: every active model that applies (or the one given, applicable or not: the
    radiologist chose it, the reason is kept as a warning) on every image of the study.
    A run of the same model version already pending is reused rather than doubled."""
    if not can(actor.user, RUN_PERM):
        raise PermissionDenied
    if model is not None and not model.is_available:
        raise ValidationError(
            _("The model %(model)s is unavailable: %(problem)s")
            % {"model": model.key, "problem": model.problem or _("no weights installed")}
        )
    instances = list(
        Instance.objects.filter(series__study=study, document_kind="").exclude(file="")
    )
    if not instances:
        raise ValidationError(_("This study has no images to analyse."))
    candidates = [model] if model else list(AIModel.objects.filter(active=True))
    if not model:
        candidates = [m for m in candidates if not_applicable_reason(m, study) is None]
        if not candidates:
            raise ValidationError(_("No active model applies to this study."))
    runs = []
    for instance in instances:
        for candidate in candidates:
            pending = AnalysisRun.objects.filter(
                instance=instance, model=candidate, status__in=AnalysisRun.PENDING
            ).first()
            if pending is not None:
                runs.append(pending)
                continue
            run = _new_run(
                instance=instance, study=study, model=candidate, trigger=trigger, actor=actor
            )
            if model is not None:
                warning = not_applicable_reason(model, study)
                if warning:
                    run.reason = _("run on request although: %(reason)s") % {"reason": warning}
                    run.save(update_fields=["reason"])
            runs.append(run)
    audit_record(
        actor=actor,
        action=CREATE,
        obj=study,
        object_type="diagnostics.analysisrun",
        object_id=study.pk,
        details={"runs": [r.pk for r in runs], "model": model.key if model else "active"},
    )
    return runs


def run_enqueue(run_id: int, *, force: bool = False) -> bool:
    """Send a queued run to the ``inference`` queue (after commit). A broker that is down must
    not hang or fail the upload: the run stays queued and the sweeper sends it later."""
    from diagnostics.tasks import analyse
    from mis.broker import send_quietly

    what = f"Analysis run {run_id} (the sweeper resends it)"
    if not send_quietly(analyse, [run_id], what=what, force=force):
        return False
    AnalysisRun.objects.filter(pk=run_id, status=AnalysisRun.Status.QUEUED).update(
        enqueued_at=timezone.now()
    )
    return True


# -- the worker's side ---------------------------------------------------------------------
def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def run_claim(run_id: int) -> tuple[AnalysisRun, uuid.UUID] | None:
    """Take a queued run (or one whose lease expired) with a conditional update; ``None`` when
    another worker holds it or it is finished. Attempts are bounded: a run claimed
    ``DIAGNOSTICS_MAX_ATTEMPTS`` times without finishing fails."""
    now = timezone.now()
    claimable = Q(status=AnalysisRun.Status.QUEUED) | Q(
        status=AnalysisRun.Status.RUNNING, lease_until__lt=now
    )
    exhausted = AnalysisRun.objects.filter(
        claimable, pk=run_id, attempts__gte=settings.DIAGNOSTICS_MAX_ATTEMPTS
    ).update(
        status=AnalysisRun.Status.FAILED,
        error=_("Gave up after %(n)d attempts: the worker stopped before finishing each time.")
        % {"n": settings.DIAGNOSTICS_MAX_ATTEMPTS},
        finished_at=now,
        claim_token=None,
        lease_until=None,
    )
    if exhausted:
        return None
    token = uuid.uuid4()
    claimed = AnalysisRun.objects.filter(claimable, pk=run_id).update(
        status=AnalysisRun.Status.RUNNING,
        claim_token=token,
        lease_until=now + dt.timedelta(seconds=settings.DIAGNOSTICS_LEASE_SECONDS),
        attempts=F("attempts") + 1,
        started_at=now,
        worker=worker_name(),
        error="",
    )
    if not claimed:
        return None
    run = AnalysisRun.objects.select_related("model", "instance__series__study").get(pk=run_id)
    return run, token


def _under_token(run: AnalysisRun, token: uuid.UUID):
    return AnalysisRun.objects.filter(
        pk=run.pk, claim_token=token, status=AnalysisRun.Status.RUNNING
    )


def run_fail(run: AnalysisRun, token: uuid.UUID, error: str) -> bool:
    return bool(
        _under_token(run, token).update(
            status=AnalysisRun.Status.FAILED,
            error=error[:4000],
            finished_at=timezone.now(),
            claim_token=None,
            lease_until=None,
        )
    )


def run_release(run: AnalysisRun, token: uuid.UUID, error: str) -> bool:
    """A transient failure: back to the queue (the task's bounded retry sends it again)."""
    return bool(
        _under_token(run, token).update(
            status=AnalysisRun.Status.QUEUED,
            error=error[:4000],
            claim_token=None,
            lease_until=None,
        )
    )


@dataclass
class Outcome:
    run_id: int
    status: str
    detail: str = ""


def run_execute(run_id: int) -> Outcome:
    """The task's body: claim, read the image, infer (no transaction open), write under the
    token. Permanent problems (a corrupt image, altered weights) fail the run with a readable
    error; storage hiccups raise :class:`TransientError` for a bounded retry."""
    from diagnostics.ml.errors import CardError, ImageReadError, WeightsError

    started = time.perf_counter()
    claimed = run_claim(run_id)
    if claimed is None:
        return Outcome(run_id, "not-claimed")
    run, token = claimed
    instance = run.instance
    if not instance.file:
        run_fail(run, token, _("The image file was removed."))
        return Outcome(run_id, "failed", "removed")
    try:
        with default_storage.open(instance.file.name, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        run_release(run, token, f"Cannot read the image file yet: {exc}")
        raise TransientError(str(exc)) from exc
    try:
        from diagnostics import inference

        model = inference.loaded_model(
            folder=run.model.folder, sha256=run.model.weights_sha256, key=run.model.key
        )
        analysis = inference.analyse(model, data)
    except (WeightsError, CardError) as exc:
        model_mark_invalid(model=run.model, problem=str(exc))
        run_fail(run, token, _("The model cannot be used: %(error)s") % {"error": exc})
        return Outcome(run_id, "failed", str(exc))
    except ImageReadError as exc:
        run_fail(run, token, _("The image cannot be analysed: %(error)s") % {"error": exc})
        return Outcome(run_id, "failed", str(exc))
    except Exception as exc:  # a defect: the run says so instead of staying "running"
        logger.exception("Analysis run %s failed", run_id)
        run_fail(run, token, _("Unexpected error during analysis: %(error)s") % {"error": exc})
        return Outcome(run_id, "failed", repr(exc))
    written = run_write_results(run, token, analysis, started=started)
    return Outcome(run_id, "succeeded" if written else "lost-claim")


def _save_heatmaps(run: AnalysisRun, analysis) -> dict[str, str]:
    """Store the heatmap PNGs before the transaction (files are not transactional); the
    caller deletes them when the claim was lost."""
    names = {}
    for result in analysis.labels:
        if result.heatmap_png:
            name = default_storage.save(
                f"derived/{run.instance.sop_instance_uid}/heatmap-{run.model.name}-"
                f"{run.model.version}-{FindingCode.code_for_label(result.label)}.png",
                ContentFile(result.heatmap_png),
            )
            names[result.label] = name
    return names


def run_write_results(run: AnalysisRun, token: uuid.UUID, analysis, *, started: float) -> bool:
    """Findings, heatmaps, the study's AI priority and the superseding, in one short
    transaction, only while ``token`` still holds the run."""
    names = _save_heatmaps(run, analysis)
    replaced: list[str] = []
    instance = run.instance
    frame = (instance.frames // 2) if instance.frames > 1 else 0
    with transaction.atomic():
        locked = _under_token(run, token).select_for_update().first()
        if locked is None:
            for name in names.values():
                default_storage.delete(name)
            return False
        priority = 0
        for result in analysis.labels:
            heatmap = None
            if result.label in names:
                heatmap, _created = DerivedImage.objects.get_or_create(
                    instance=instance,
                    frame=frame,
                    kind=DerivedImage.Kind.HEATMAP,
                    source=run.model.key,
                    label=result.label,
                    defaults={"file": names[result.label]},
                )
                if not _created:
                    replaced.append(heatmap.file.name)
                    heatmap.file.name = names[result.label]
                width, height = result.heatmap_size
                heatmap.width, heatmap.height = width, height
                heatmap.save()
            Finding.objects.create(
                run=run,
                label=result.label,
                code=FindingCode.code_for_label(result.label),
                probability=result.probability,
                threshold=result.threshold,
                positive=result.positive,
                severity=result.severity,
                regions=result.regions,
                heatmap=heatmap,
            )
            if result.positive:
                priority = max(priority, SEVERITY_PRIORITY.get(result.severity, 1))
        _under_token(run, token).update(
            status=AnalysisRun.Status.SUCCEEDED,
            finished_at=timezone.now(),
            claim_token=None,
            lease_until=None,
            error="",
            inference_ms=analysis.inference_ms,
            processing_ms=round((time.perf_counter() - started) * 1000),
        )
        AnalysisRun.objects.filter(
            instance=instance, model__name=run.model.name, superseded_by__isnull=True
        ).exclude(pk=run.pk).exclude(status__in=AnalysisRun.PENDING).update(superseded_by=run)
        if priority:
            study_raise_priority(study_id=instance.series.study_id, priority=priority)
        for name in replaced:
            transaction.on_commit(partial(default_storage.delete, name))
    return True


def study_raise_priority(*, study_id: int, priority: int) -> bool:
    """AI raises a study's priority within its clinical urgency, never lowers it."""
    return bool(
        Study.objects.filter(pk=study_id, ai_priority__lt=priority).update(ai_priority=priority)
    )


def runs_sweep() -> dict[str, int]:
    """The beat sweeper: expired leases back to the queue and re-sent; runs queued but never
    sent (broker down at upload) or sent long ago re-sent."""
    now = timezone.now()
    expired = list(
        AnalysisRun.objects.filter(
            status=AnalysisRun.Status.RUNNING, lease_until__lt=now
        ).values_list("pk", flat=True)
    )
    reclaimed = AnalysisRun.objects.filter(
        pk__in=expired, status=AnalysisRun.Status.RUNNING, lease_until__lt=now
    ).update(status=AnalysisRun.Status.QUEUED, claim_token=None, lease_until=None, enqueued_at=None)
    stale = now - dt.timedelta(seconds=settings.DIAGNOSTICS_RESEND_SECONDS)
    unsent = list(
        AnalysisRun.objects.filter(status=AnalysisRun.Status.QUEUED)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        .values_list("pk", flat=True)[:500]
    )
    sent = sum(run_enqueue(pk, force=True) for pk in unsent)  # the sweeper always tries
    return {"reclaimed": reclaimed, "resent": sent, "unsent": len(unsent) - sent}


# -- feedback ----------------------------------------------------------------------------------
@transaction.atomic
def feedback_give(*, actor: Actor, finding: Finding, agrees: bool, comment: str = "") -> Feedback:
    """A radiologist's agree / disagree on a finding (one per radiologist; giving it again
    changes it). Stored for training and the per-model monitoring."""
    if not can(actor.user, FEEDBACK_PERM):
        raise PermissionDenied
    comment = (comment or "").strip()
    if len(comment) > 2000:
        raise ValidationError({"comment": _("At most 2000 characters.")})
    feedback, created = Feedback.objects.update_or_create(
        finding=finding, user=actor.user, defaults={"agrees": agrees, "comment": comment}
    )
    audit_record(
        actor=actor,
        action=CREATE if created else UPDATE,
        obj=feedback,
        patient_id=finding.audit_patient_id,
        details={"finding": finding.pk, "agrees": agrees},
    )
    return feedback
