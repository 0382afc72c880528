"""Writes on studies other than ingest: editing fields, removing images, keeping the record."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import UPDATE, Actor, audit_record
from accounts.permissions import can
from studies.models import DerivedImage, Instance, Series, Study

REMOVE_IMAGES = "remove_images"


def _instances_of(target: Study | Series | Instance):
    if isinstance(target, Study):
        return Instance.objects.filter(series__study=target)
    if isinstance(target, Series):
        return Instance.objects.filter(series=target)
    return Instance.objects.filter(pk=target.pk)


def _study_of(target: Study | Series | Instance) -> Study:
    if isinstance(target, Study):
        return target
    if isinstance(target, Series):
        return target.study
    return target.series.study


@transaction.atomic
def images_remove(*, actor: Actor, target: Study | Series | Instance, reason: str) -> int:
    """Remove the image files of a study, series or instance; the record and report stay.

    The rows keep their metadata and sha256; their ``file`` is emptied and the study shows
    "images removed" with who, when and why. Files leave the storage only after the
    transaction commits, so a failure removes nothing. Returns the number of files removed.
    """
    if not can(actor.user, "studies.remove_images"):
        raise PermissionDenied(_("You do not have permission to do this."))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Give the reason for removing the images.")})
    study = Study.objects.select_for_update().get(pk=_study_of(target).pk)
    instances = list(_instances_of(target).exclude(file=""))
    derived = list(DerivedImage.objects.filter(instance__in=instances))
    names = [i.file.name for i in instances] + [d.file.name for d in derived]
    DerivedImage.objects.filter(pk__in=[d.pk for d in derived]).delete()
    Instance.objects.filter(pk__in=[i.pk for i in instances]).update(file="")
    study.images_removed_at = timezone.now()
    study.images_removed_by = actor.user if actor.user_id else None
    study.images_removed_reason = reason
    study.save(update_fields=["images_removed_at", "images_removed_by", "images_removed_reason"])
    audit_record(
        actor=actor,
        action=REMOVE_IMAGES,
        obj=target,
        patient_id=study.patient_id,
        reason=reason,
        details={"instances": [i.pk for i in instances], "files": len(names)},
    )
    transaction.on_commit(lambda: _delete_files(names))
    return len(instances)


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            pass  # storage_check reports anything left behind


STUDY_EDITABLE_FIELDS = ("category", "body_part", "view_position", "clinical_question", "urgency")


@transaction.atomic
def study_update(*, actor: Actor, study: Study, data: dict) -> Study:
    """Change a study's editable fields; the audit row names each change (old → new)."""
    locked = Study.objects.select_for_update().get(pk=study.pk)
    changes = {}
    for name in STUDY_EDITABLE_FIELDS:
        if name in data and getattr(locked, name) != data[name]:
            changes[name] = [getattr(locked, name), data[name]]
            setattr(locked, name, data[name])
    if changes:
        locked.full_clean(exclude=["patient", "department", "study_uid"])
        locked.save(update_fields=list(changes))
        audit_record(actor=actor, action=UPDATE, obj=locked, details={"changes": changes})
    for name in STUDY_EDITABLE_FIELDS:
        setattr(study, name, getattr(locked, name))
    return study
