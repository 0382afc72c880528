"""Export studies for the patient or another hospital: a ZIP laid out as a CD with a DICOMDIR."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.utils.translation import gettext as _

from accounts.audit import EXPORT, Actor, audit_record
from accounts.permissions import can
from studies.models import Instance, Study

EXPORT_PERM = "studies.export_study"


def _complete_for_dicomdir(path: Path, instance: Instance) -> None:
    """Fill the attributes a DICOMDIR record needs but the file lacks (in the export copy only).

    Type 1 keys of the PATIENT/STUDY/SERIES/IMAGE records (PS3.3 F.5): many real files omit
    Study ID or the series and instance numbers; the archived original is never changed.
    """
    import pydicom

    dataset = pydicom.dcmread(path)
    study = instance.series.study
    defaults = {
        "PatientID": study.patient.mrn,
        "StudyID": str(study.pk),
        "StudyDate": study.study_datetime.strftime("%Y%m%d") if study.study_datetime else "",
        "StudyTime": study.study_datetime.strftime("%H%M%S") if study.study_datetime else "",
        "SeriesNumber": instance.series.number or 1,
        "InstanceNumber": instance.number or 1,
        "Modality": instance.series.modality or "OT",
    }
    changed = False
    for keyword, value in defaults.items():
        if keyword not in dataset or dataset.get(keyword) in (None, ""):
            setattr(dataset, keyword, value)
            changed = True
    if changed:
        dataset.save_as(path, enforce_file_format=True)


def export_zip(*, actor: Actor, studies: list[Study], out: BinaryIO) -> dict:
    """Write ``studies`` as a ZIP with a DICOMDIR (pydicom's File-set) to ``out``.

    Instances a DICOMDIR cannot index are put under ``EXTRA/`` so nothing is left out; images
    that were removed are listed in ``README.TXT``. One export audit event per study.
    Returns counts for the caller.
    """
    from pydicom.fileset import FileSet

    if not can(actor.user, EXPORT_PERM):
        raise PermissionDenied(_("You do not have permission to do this."))
    instances = list(
        Instance.objects.filter(series__study__in=studies)
        .select_related("series__study__patient")
        .order_by("series__study_id", "series__number", "number", "pk")
    )
    counts = {"studies": len(studies), "instances": 0, "extra": 0, "removed": 0}
    with tempfile.TemporaryDirectory(prefix="mis-export-") as scratch:
        scratch_path = Path(scratch)
        sources, extra, removed = scratch_path / "in", [], []
        sources.mkdir()
        fileset = FileSet()
        fileset.ID = "MIS_EXPORT"
        for instance in instances:
            if not instance.file:
                removed.append(instance.sop_instance_uid)
                continue
            local = sources / f"{instance.pk}.dcm"
            with default_storage.open(instance.file.name, "rb") as src, local.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            try:
                _complete_for_dicomdir(local, instance)
                fileset.add(str(local))
            except (ValueError, KeyError, AttributeError, TypeError):
                extra.append(local)
        cd = scratch_path / "cd"
        cd.mkdir()
        if len(fileset):
            fileset.write(str(cd))
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(cd.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(cd).as_posix())
            for path in extra:
                archive.write(path, f"EXTRA/{path.name}")
            lines = [_("Exported by the hospital MIS."), ""]
            if removed:
                lines.append(_("Images removed from the archive before this export:"))
                lines.extend(removed)
            archive.writestr("README.TXT", "\r\n".join(lines) + "\r\n")
        counts.update(instances=len(fileset), extra=len(extra), removed=len(removed))
    for study in studies:
        audit_record(
            actor=actor,
            action=EXPORT,
            obj=study,
            details={"format": "zip-dicomdir", "instances": counts["instances"]},
        )
    return counts
