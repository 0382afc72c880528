"""Thumbnails: one ``DerivedImage(kind=thumbnail)`` per image instance, made after ingest commits
(a Celery task) and on demand when a page asks for one that is still missing."""

from __future__ import annotations

import atexit
import io
import logging
import os
import threading

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
    """Enqueue the thumbnail job for the images of one ingest transaction (called from
    ``transaction.on_commit``). The upload does not wait for the broker: the ids go to this
    process's publisher thread, which sends them (those of uploads committed meanwhile in one
    job). A broker that cannot be reached, or a process that ends before the send, costs only
    the job: the thumbnails are then made when a page asks."""
    from mis.celery import app

    if app.conf.task_always_eager:  # tests, embedded one-off commands: run it here and now
        _send(list(instance_ids))
    else:
        _publisher.submit(instance_ids)


def _send(instance_ids: list[int]) -> None:
    from mis.broker import send_quietly
    from studies.tasks import make_thumbnails

    send_quietly(make_thumbnails, [instance_ids], what=f"Thumbnails of {instance_ids}")


class _Publisher:
    """One daemon thread per process sending thumbnail jobs, at most ``MAX_IDS`` ids each."""

    MAX_IDS = 500

    def __init__(self, send):
        self.send = send
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.pending: list[int] = []
        self.thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        # A forked child (a gunicorn worker) has none of its parent's threads: its own starts
        # with its first job; the parent's pending ids are the parent's to send.
        self.lock, self.wake, self.pending, self.thread = threading.Lock(), None, [], None

    def submit(self, instance_ids) -> None:
        with self.lock:
            self.pending.extend(instance_ids)
            if self.thread is None:
                self.wake = threading.Event()
                self.thread = threading.Thread(
                    target=self._run, args=(self.wake,), name="thumbnail-jobs", daemon=True
                )
                self.thread.start()
            self.wake.set()

    def flush(self) -> None:
        """Send what is pending now, in the caller's thread (at exit)."""
        while True:
            with self.lock:
                ids, self.pending = self.pending[: self.MAX_IDS], self.pending[self.MAX_IDS :]
            if not ids:
                return
            self.send(ids)

    def _run(self, wake: threading.Event) -> None:
        while True:
            wake.wait()
            wake.clear()
            try:
                self.flush()
            except Exception:  # never let the thread die: the next submit would wait forever
                logger.exception("Thumbnail jobs not sent")


_publisher = _Publisher(_send)
atexit.register(_publisher.flush)
