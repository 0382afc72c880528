"""Thumbnails: one ``DerivedImage(kind=thumbnail)`` per image instance, made after ingest commits
(a Celery task) and on demand when a page asks for one that is still missing."""

from __future__ import annotations

import io
import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from PIL import Image

from studies.dicom import render
from studies.dicom.errors import DicomError
from studies.models import DerivedImage, Instance

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
SOURCE = "render"


def thumbnail_make(*, instance: Instance, frame: int = 0) -> DerivedImage | None:
    """The instance's thumbnail, made now if missing; ``None`` for documents, removed images and
    files that cannot be rendered (the failure is logged, the page shows a placeholder)."""
    existing = DerivedImage.objects.filter(
        instance=instance, frame=frame, kind=DerivedImage.Kind.THUMBNAIL, source=SOURCE
    ).first()
    if existing is not None:
        return existing
    if not instance.is_image or not instance.file:
        return None
    try:
        with default_storage.open(instance.file.name, "rb") as handle:
            png = render.render_thumbnail(handle, size=THUMBNAIL_SIZE, frame=frame)
    except (DicomError, OSError) as exc:
        logger.warning("No thumbnail for instance %s: %s", instance.pk, exc)
        return None
    width, height = Image.open(io.BytesIO(png)).size
    derived = DerivedImage(
        instance=instance,
        frame=frame,
        kind=DerivedImage.Kind.THUMBNAIL,
        source=SOURCE,
        width=width,
        height=height,
    )
    derived.file.save("thumbnail.png", ContentFile(png), save=False)
    try:
        with transaction.atomic():
            derived.save()
    except IntegrityError:
        # Made meanwhile by the task or another request: keep theirs.
        default_storage.delete(derived.file.name)
        return DerivedImage.objects.filter(
            instance=instance, frame=frame, kind=DerivedImage.Kind.THUMBNAIL, source=SOURCE
        ).first()
    return derived


def thumbnail_make_by_id(instance_id: int) -> bool:
    """For the task: quietly nothing when the instance is gone."""
    instance = Instance.objects.filter(pk=instance_id).select_related("series__study").first()
    if instance is None:
        return False
    return thumbnail_make(instance=instance) is not None


def thumbnails_enqueue(instance_ids: list[int]) -> None:
    """Enqueue one thumbnail job for the images of one ingest transaction (called from
    ``transaction.on_commit``). A broker that cannot be reached must not fail the upload: the
    thumbnails are then made when a page asks."""
    from mis.broker import send_quietly
    from studies.tasks import make_thumbnails

    send_quietly(make_thumbnails, [list(instance_ids)], what=f"Thumbnails of {instance_ids}")
