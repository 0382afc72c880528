"""Compare the database with the storage: orphaned, missing and corrupted files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.files.storage import default_storage

from studies.hashing import sha256_stream
from studies.models import DerivedImage, Instance

STORED_ROOTS = ("dicom", "derived")


@dataclass
class StorageReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupted or self.orphaned)


def walk(storage, root: str) -> Iterator[str]:
    try:
        folders, files = storage.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in files:
        if not name.startswith(".upload-"):  # an upload being written right now
            yield f"{root}/{name}"
    for folder in folders:
        yield from walk(storage, f"{root}/{folder}")


def stored_sha256(storage, name: str) -> str:
    with storage.open(name, "rb") as handle:
        return sha256_stream(handle)


def storage_check(*, verify_hashes: bool = True, progress=None) -> StorageReport:
    storage = default_storage
    report = StorageReport()
    known: set[str] = set()
    for instance in Instance.objects.exclude(file="").only("pk", "file", "sha256").iterator():
        name = instance.file.name
        known.add(name)
        report.checked += 1
        if not storage.exists(name):
            report.missing.append(f"instance {instance.pk}: {name}")
        elif verify_hashes and stored_sha256(storage, name) != instance.sha256:
            report.corrupted.append(f"instance {instance.pk}: {name}")
        if progress is not None:
            progress.update(1)
    for derived in DerivedImage.objects.only("pk", "file").iterator():
        known.add(derived.file.name)
        if not storage.exists(derived.file.name):
            report.missing.append(f"derived image {derived.pk}: {derived.file.name}")
    for root in STORED_ROOTS:
        for name in walk(storage, root):
            if name not in known:
                report.orphaned.append(name)
    return report
