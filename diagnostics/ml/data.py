"""Labelled image sets for training and evaluation: class folders or a CSV, split by patient.

A data set is a list of :class:`Sample` (path, label index, patient key). The patient key comes
from the file name where the data set encodes it (the Kermany pneumonia set: ``person123_…``,
``IM-0115-0001``, ``NORMAL2-IM-0383-0001``); otherwise every file is its own patient.
"""

from __future__ import annotations

import csv
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, ImageReadError
from .images import read_image
from .preprocess import Preprocessing

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".dcm", ".dicom", ""}

# Patient keys encoded in file names of known public sets; first match wins.
PATIENT_PATTERNS = (
    re.compile(r"^(person\d+)_", re.IGNORECASE),  # Kermany pneumonia: person1000_bacteria_2931
    re.compile(r"^((?:NORMAL2-)?IM-\d+)-\d+$", re.IGNORECASE),  # IM-0115-0001, NORMAL2-IM-…
)


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    patient: str


def patient_key(path: Path, patterns: Iterable[re.Pattern] = PATIENT_PATTERNS) -> str:
    """The patient a file belongs to, from its name; the file itself when nothing matches."""
    stem = path.stem
    for pattern in patterns:
        match = pattern.search(stem)
        if match:
            return match.group(1).lower()
    return f"file:{path.parent.name}/{stem}".lower()


def from_class_folders(
    root: Path, class_names: Sequence[str] | None = None
) -> tuple[list[Sample], list[str]]:
    """Samples from ``root/<class>/<image>``; classes in the given order or sorted by name.

    Folder names are matched case-insensitively, so ``NORMAL`` serves for ``normal``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder.")
    folders = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    names = [n.lower() for n in class_names] if class_names else sorted(folders)
    missing = [n for n in names if n not in folders]
    if missing:
        found = ", ".join(sorted(folders)) or "none"
        raise DataError(f"Class folders {missing} not found in {root} (found: {found}).")
    samples = []
    for index, name in enumerate(names):
        for path in sorted(folders[name].iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(Sample(path, index, patient_key(path)))
    if not samples:
        raise DataError(f"No images found under {root}.")
    return samples, names


def from_csv(
    csv_path: Path, class_names: Sequence[str], image_column="image", label_column="label"
) -> list[Sample]:
    """Samples from a CSV with an image path (relative to the CSV) and a class name per row.

    An optional ``patient_id`` column gives the patient; otherwise it comes from the file name.
    """
    csv_path = Path(csv_path)
    index = {name.lower(): i for i, name in enumerate(class_names)}
    samples = []
    with csv_path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                label = index[row[label_column].strip().lower()]
            except KeyError:
                raise DataError(
                    f"{csv_path}:{line}: label {row.get(label_column)!r} is not one of "
                    f"{list(class_names)}."
                ) from None
            path = (csv_path.parent / row[image_column]).resolve()
            patient = (row.get("patient_id") or "").strip() or patient_key(path)
            samples.append(Sample(path, label, patient))
    if not samples:
        raise DataError(f"{csv_path} lists no images.")
    return samples


def split_by_patient(
    samples: Sequence[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Split into (train, validation) with no patient on both sides, stratified by label."""
    by_patient: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_patient[sample.patient].append(sample)
    rng = random.Random(seed)
    train: list[Sample] = []
    validation: list[Sample] = []
    by_label: dict[int, list[str]] = defaultdict(list)
    for patient, items in sorted(by_patient.items()):
        by_label[max(s.label for s in items)].append(patient)
    for _label, patients in sorted(by_label.items()):
        rng.shuffle(patients)
        cut = round(len(patients) * fraction)
        for position, patient in enumerate(patients):
            (validation if position < cut else train).extend(by_patient[patient])
    return train, validation


def folds_by_patient(samples: Sequence[Sample], k: int, seed: int) -> list[list[Sample]]:
    """``k`` stratified folds with no patient in two folds."""
    by_patient: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_patient[sample.patient].append(sample)
    rng = random.Random(seed)
    folds: list[list[Sample]] = [[] for _ in range(k)]
    by_label: dict[int, list[str]] = defaultdict(list)
    for patient, items in sorted(by_patient.items()):
        by_label[max(s.label for s in items)].append(patient)
    offset = 0
    for _label, patients in sorted(by_label.items()):
        rng.shuffle(patients)
        for position, patient in enumerate(patients):
            folds[(position + offset) % k].extend(by_patient[patient])
        offset += len(patients)
    return folds


def load_arrays(
    samples: Sequence[Sample], preprocessing: Preprocessing, progress=None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read and resize every sample: (N×H×W float32 in [0, 1], labels, skipped-file messages).

    float32, exactly as ``predict()`` sees an image, so the card's figures are reproducible.

    Unreadable files are skipped and reported, not fatal: one bad file must not stop training.
    """
    height, width = preprocessing.size
    images = np.zeros((len(samples), height, width), dtype=np.float32)
    labels = np.zeros(len(samples), dtype=np.int64)
    keep = np.ones(len(samples), dtype=bool)
    skipped = []
    for i, sample in enumerate(samples):
        try:
            images[i] = preprocessing.resize(read_image(sample.path).pixels)
        except (ImageReadError, OSError) as exc:
            keep[i] = False
            skipped.append(f"{sample.path}: {exc}")
        labels[i] = sample.label
        if progress is not None:
            progress.update(1)
    return images[keep], labels[keep], skipped
