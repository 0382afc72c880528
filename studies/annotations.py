"""Annotations on images: reads (selectors) and writes (services) in one small module.

Radiologists draw; everyone who may see the study sees the annotations; only the author
changes or deletes one. Every write is audited in its own transaction.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from accounts.audit import CREATE, DELETE, UPDATE, Actor, audit_record
from accounts.permissions import restrict
from studies.models import Annotation, FindingCode, Instance

VIEW = "studies.view_annotation"
ADD = "studies.add_annotation"
CHANGE = "studies.change_annotation"
DELETE_PERM = "studies.delete_annotation"
GEOMETRY = ("x", "y", "width", "height", "angle")
EDITABLE = ("shape", "frame", *GEOMETRY, "label", "comment")


def annotation_queryset(*, user, perm: str = VIEW) -> QuerySet:
    return restrict(
        Annotation.objects.select_related("label", "author", "instance__series__study"),
        user,
        perm,
    )


def _clean(*, instance: Instance, values: dict) -> dict:
    """Rules beyond the serializer's shapes: frame exists, centre on the image, label active."""
    errors = {}
    frame = values.get("frame", 0)
    if not 0 <= frame < max(instance.frames, 1):
        errors["frame"] = _("This instance has %(count)d frame(s), numbered from 0.") % {
            "count": instance.frames
        }
    if values.get("width", 1) <= 0 or values.get("height", 1) <= 0:
        errors["width"] = _("An annotation needs a positive width and height.")
    columns, rows = instance.columns or 0, instance.rows or 0
    if (
        columns
        and rows
        and not (0 <= values.get("x", 0) <= columns and 0 <= values.get("y", 0) <= rows)
    ):
        errors["x"] = _("The annotation's centre lies outside the image (%(c)d×%(r)d pixels).") % {
            "c": columns,
            "r": rows,
        }
    label = values.get("label")
    if isinstance(label, FindingCode) and not label.active:
        errors["label"] = _("This label is retired; choose an active one from the list.")
    if errors:
        raise ValidationError(errors)
    if "angle" in values:  # one representation per rotation: (-180, 180]
        angle = float(values["angle"]) % 360.0
        values["angle"] = angle - 360.0 if angle > 180.0 else angle
    return values


def _details(annotation: Annotation) -> dict:
    return {
        "instance": annotation.instance_id,
        "frame": annotation.frame,
        "shape": annotation.shape,
        "label": annotation.label.code,
    }


@transaction.atomic
def annotation_create(*, actor: Actor, instance: Instance, **values) -> Annotation:
    if not instance.is_image:
        raise ValidationError({"instance": _("This instance is a document; it has no image.")})
    values = _clean(instance=instance, values=values)
    annotation = Annotation.objects.create(instance=instance, author=actor.user, **values)
    audit_record(actor=actor, action=CREATE, obj=annotation, details=_details(annotation))
    return annotation


def _require_author(actor: Actor, annotation: Annotation) -> None:
    if annotation.author_id != actor.user_id:
        raise PermissionDenied(_("Only the author may change or delete an annotation."))


@transaction.atomic
def annotation_update(*, actor: Actor, annotation: Annotation, **values) -> Annotation:
    _require_author(actor, annotation)
    changes = {k: v for k, v in values.items() if k in EDITABLE}
    merged = {k: getattr(annotation, k) for k in EDITABLE} | changes
    cleaned = _clean(instance=annotation.instance, values=merged)
    before = {k: getattr(annotation, k) for k in changes}
    for key in changes:
        setattr(annotation, key, cleaned[key])
    annotation.save()
    audit_record(
        actor=actor,
        action=UPDATE,
        obj=annotation,
        details={
            **_details(annotation),
            "changed": sorted(k for k in changes if before[k] != getattr(annotation, k)),
        },
    )
    return annotation


@transaction.atomic
def annotation_delete(*, actor: Actor, annotation: Annotation) -> None:
    _require_author(actor, annotation)
    details = _details(annotation)
    audit_record(actor=actor, action=DELETE, obj=annotation, details=details)
    annotation.delete()
