"""Fixtures of the diagnostics tests: a small real model trained here (no fake probabilities),
registered from its own weights folder, and chest X-rays of a child with or without a lesion."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from django.core.management import call_command

from .ml_fixtures import make_class_folders

MODEL = "lesion"


def _disc_image(size: int, lesion: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = rng.normal(90, 20, (size, size))
    if lesion:
        cy, cx = size // 2, size // 3
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2] += 110
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def trained_weights(tmp_path_factory):
    """``lesion@1.0.0`` trained by train_model on synthetic films: chest X-ray, PA/AP,
    children aged 0–10 (like the shipped pneumonia model). Returns the weights root."""
    root = tmp_path_factory.mktemp("diag-ml")
    data = make_class_folders(root / "data", per_class=40)
    weights = root / "weights"
    with open(root / "train.log", "w") as log:
        call_command(
            "train_model",
            MODEL,
            "--data",
            str(data),
            "--weights-dir",
            str(weights),
            "--work-dir",
            str(root / "work"),
            "--classes",
            "normal,lesion",
            "--category",
            "chest_xray",
            "--view",
            "PA",
            "--view",
            "AP",
            "--age-min",
            "0",
            "--age-max",
            "10",
            "--size",
            "32x32",
            "--epochs",
            "15",
            "--threads",
            "1",
            "--seed",
            "3",
            stdout=log,
            stderr=log,
        )
    return weights


@pytest.fixture
def weights_root(trained_weights, tmp_path, settings):
    """A private copy of the trained weights (tests may alter it) as ML_WEIGHTS_DIR."""
    root = tmp_path / "ml_weights"
    shutil.copytree(trained_weights, root)
    settings.ML_WEIGHTS_DIR = root
    from diagnostics import inference

    inference.forget_models()
    yield root
    inference.forget_models()


@pytest.fixture
def ai_model(db, weights_root):
    from diagnostics.registry import registry_sync

    report = registry_sync(root=weights_root)
    (model,) = report.models
    assert model.active and model.is_available, model.problem
    return model


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    return settings.MEDIA_ROOT


def chest_dicom(
    *,
    lesion: bool = True,
    size: int = 48,
    birth: str = "20200101",
    view: str = "PA",
    study_uid: str | None = None,
    seed: int = 1,
    **elements,
) -> bytes:
    from studies.tests.dicom_samples import DX_IMAGE_STORAGE, make_dataset, to_bytes

    fields = {
        "SOPClassUID": DX_IMAGE_STORAGE,
        "Modality": "DX",
        "BodyPartExamined": "CHEST",
        "ViewPosition": view,
        "PatientBirthDate": birth,
        "StudyDate": "20261122",
        **({"StudyInstanceUID": study_uid} if study_uid else {}),
        **elements,
    }
    ds = make_dataset(_disc_image(size, lesion, seed), **fields)
    return to_bytes(ds)


def chest_png(*, lesion: bool = True, size: int = 48, seed: int = 1) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_disc_image(size, lesion, seed)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def child_patient(department):
    from patients.tests.factories import PatientFactory

    return PatientFactory(mrn="C-001", department=department, birth_date="2020-01-01")


@pytest.fixture
def ingest(registrar, media):
    """Import bytes as the registrar; returns the IngestResult."""
    from accounts.audit import Actor
    from studies.ingest import StudyFields, ingest_file

    def _ingest(data: bytes, name: str = "chest.dcm", **fields):
        result = ingest_file(
            actor=Actor(user=registrar), data=data, name=name, fields=StudyFields(**fields)
        )
        assert result.status == "imported", result.message
        return result

    return _ingest
