"""Thumbnails: enqueued on commit of ingest, one per image instance, none for documents."""

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from accounts.audit import Actor
from studies.ingest import ingest_file
from studies.models import DerivedImage, Instance
from studies.tasks import make_thumbnail
from studies.thumbnails import thumbnail_make

from .conftest import dicom_bytes, pdf_dicom_bytes

pytestmark = pytest.mark.django_db


def test_ingest_enqueues_a_thumbnail_on_commit(
    registrar, patient, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = ingest_file(actor=Actor(user=registrar), data=dicom_bytes(), name="a.dcm")
    assert len(callbacks) == 1
    thumb = DerivedImage.objects.get(instance_id=result.instance_id)
    assert thumb.kind == DerivedImage.Kind.THUMBNAIL
    assert (thumb.width, thumb.height) == (32, 32)
    with default_storage.open(thumb.file.name) as handle:
        assert Image.open(handle).format == "PNG"


def test_a_document_gets_no_thumbnail(registrar, patient, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = ingest_file(actor=Actor(user=registrar), data=pdf_dicom_bytes(), name="r.dcm")
    assert result.status == "imported", result.message
    assert callbacks == []
    assert thumbnail_make(instance=Instance.objects.get(pk=result.instance_id)) is None
    assert not DerivedImage.objects.exists()


def test_a_rejected_file_enqueues_nothing(registrar, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ingest_file(actor=Actor(user=registrar), data=b"%PDF-1.4", name="x.dcm")
    assert callbacks == []


def test_making_it_twice_keeps_one(study):
    instance = Instance.objects.filter(document_kind="").first()
    first = thumbnail_make(instance=instance)
    second = thumbnail_make(instance=instance)
    assert first.pk == second.pk
    assert DerivedImage.objects.filter(instance=instance).count() == 1


def test_the_task_returns_quietly_when_the_instance_is_gone(db):
    assert make_thumbnail(999999) is False


def test_a_large_image_is_shrunk_to_256(registrar, patient, import_file):
    import numpy as np

    from .dicom_samples import make_dataset, to_bytes

    data = to_bytes(make_dataset(np.zeros((300, 600), dtype=np.uint16)))
    result = import_file(data)
    thumb = thumbnail_make(instance=Instance.objects.get(pk=result.instance_id))
    assert max(thumb.width, thumb.height) == 256


def test_the_publisher_thread_sends_every_id_in_jobs_of_bounded_size():
    import threading

    from studies.thumbnails import _Publisher

    sent, done = [], threading.Event()

    def send(ids):
        sent.append(list(ids))
        if sum(map(len, sent)) == 1203:
            done.set()

    publisher = _Publisher(send)
    publisher.submit([1, 2, 3])
    publisher.submit(range(4, 1204))
    assert done.wait(10)
    assert sorted(i for job in sent for i in job) == list(range(1, 1204))
    assert max(map(len, sent)) <= _Publisher.MAX_IDS
    assert publisher.thread.daemon and publisher.thread.name == "thumbnail-jobs"


def test_a_failed_send_does_not_stop_the_publisher():
    import threading

    from studies.thumbnails import _Publisher

    sent, done = [], threading.Event()

    def send(ids):
        if ids == [1]:
            raise RuntimeError("broker gone")
        sent.extend(ids)
        done.set()

    publisher = _Publisher(send)
    publisher.submit([1])
    publisher.thread.join(0.2)  # the first send fails (logged)
    publisher.submit([2])
    assert done.wait(10)
    assert sent == [2]
