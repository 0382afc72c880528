"""Studies made directly (no DICOM import) for the reading and reporting tests."""

import datetime as dt
import itertools

from django.db import connection
from django.utils import timezone

from accounts.audit import Actor
from studies.models import Study
from studies.reporting import services

_uids = itertools.count(1)

PG_ONLY = "PostgreSQL only (row locks, triggers, full-text configurations)"


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def make_study(patient, department, **fields) -> Study:
    fields.setdefault("study_datetime", timezone.now() - dt.timedelta(hours=5))
    fields.setdefault("category", "chest_xray")
    return Study.objects.create(
        study_uid=f"1.2.826.0.1.{next(_uids)}", patient=patient, department=department, **fields
    )


def signed_report(study, author, conclusion="Пневмония нижней доли справа.", **kwargs):
    actor = Actor(user=author)
    report = services.report_draft_create(actor=actor, study=study, conclusion=conclusion)
    return services.report_sign(actor=actor, report=report, **kwargs)
