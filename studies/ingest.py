"""One ingest service behind every door (upload page, API, import_dicom).

``ingest_file`` takes one uploaded or found file (``ingest_files`` the files of one request)
and returns an :class:`IngestResult`: ``imported``, ``duplicate`` (same SOP Instance UID,
same bytes: nothing changes) or ``rejected`` with a reason the user can act on. A rejected
file changes nothing stored; the stored file of an instance whose transaction fails is
removed again (no orphans).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from accounts.audit import CREATE, Actor, audit_event
from accounts.models import Department
from accounts.permissions import can
from patients.dicom_names import dicom_person_name, patient_name_matches
from patients.models import IdentifierType, IdentityStatus, Patient, PatientIdentifier
from patients.normalize import normalize_identifier, normalize_mrn
from patients.selectors import patient_resolve
from patients.services import IdentifierInput, patient_register
from studies.dicom import category as dicom_category
from studies.dicom import native, secondary_capture
from studies.dicom import parse as dicom_parse
from studies.dicom.errors import DicomError, ImageError
from studies.hashing import sha256_of
from studies.models import Category, Instance, Series, Study, Urgency
from studies.signals import instance_imported
from studies.thumbnails import thumbnails_enqueue

IMPORTED, DUPLICATE, REJECTED = "imported", "duplicate", "rejected"
ADD_PERM = "studies.add_study"
FOREIGN_PATIENT_ID = "dicom-patient-id"


@dataclass
class IngestResult:
    name: str
    status: str
    message: str = ""
    study_id: int | None = None
    instance_id: int | None = None
    patient_id: int | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "study": self.study_id,
            "instance": self.instance_id,
            "patient": self.patient_id,
            "warnings": self.warnings,
        }


@dataclass
class StudyFields:
    """What the uploader says about the study (the form or the API); blanks are derived."""

    department: Department | None = None
    patient: Patient | None = None
    study: Study | None = None  # an existing study to add a PNG/JPEG to
    category: str = ""
    body_part: str = ""
    view_position: str = ""
    clinical_question: str = ""
    urgency: str = ""
    description: str = ""


class Rejected(Exception):
    """A file refused with a message for the user."""


def ingest_file(
    *, actor: Actor, data: bytes | Path, name: str, fields: StudyFields | None = None
) -> IngestResult:
    """Import one file (DICOM, or PNG/JPEG wrapped into Secondary Capture).

    ``data`` is the file's bytes or its path; a path is parsed, hashed and copied in a
    streaming way, so a large multi-frame file is never held in memory.
    """
    fields = fields or StudyFields()
    return _guarded(name, lambda: _store(actor, _prepare(actor, data, name, fields), fields))


def ingest_files(
    *,
    actor: Actor,
    items: list[tuple[bytes | Path, str]],
    fields: StudyFields | None = None,
    digests: list[str | None] | None = None,
) -> list[IngestResult]:
    """Import several files of one request (``(data, name)`` pairs); one result per file, in
    their order, exactly as ``ingest_file`` one by one would give. ``digests``: the files'
    sha256 where already known (hashed while they were uploaded), else ``None``.

    The new instances are recorded in one transaction (one commit, one statement per table,
    one batch of audit rows, one thumbnail job) instead of one each; a request of one file
    takes this path too. Should anything go wrong inside it (a file that turns out to be
    refused there, a series UID already used by another study, a concurrent upload of the same
    instance, a lock conflict), nothing of the batch is kept and every file goes through
    ``ingest_file`` on its own: a bad file never spoils the others.
    """
    fields = fields or StudyFields()
    results: list[IngestResult | None] = [None] * len(items)
    prepared: list[tuple[int, _Prepared]] = []
    digests = digests or [None] * len(items)
    allowed = can(actor.user, ADD_PERM)  # once for the request's files, not per file
    for index, ((data, name), digest) in enumerate(zip(items, digests, strict=True)):
        outcome = _guarded(name, partial(_prepare, actor, data, name, fields, digest, allowed))
        if isinstance(outcome, IngestResult):
            results[index] = outcome
        else:
            prepared.append((index, outcome))
    uids = _stored_uids([p.header.sop_instance_uid for _i, p in prepared])
    stored_before = (
        {
            i.sop_instance_uid: i
            for i in Instance.objects.filter(sop_instance_uid__in=uids).select_related(
                "series__study"
            )
        }
        if uids
        else {}
    )
    batch, one_by_one, seen = [], [], set()
    for index, item in prepared:
        uid = item.header.sop_instance_uid
        if uid in stored_before:
            results[index] = _existing(item.name, stored_before[uid], item.digest)
        elif uid in seen:  # twice in one request: after the first is committed
            one_by_one.append((index, item))
        else:
            seen.add(uid)
            batch.append((index, item))
    if batch:
        recorded = _record_batch(actor, batch, fields)
        if recorded is None:
            one_by_one = sorted(batch + one_by_one, key=lambda pair: pair[0])
        else:
            for index, result in recorded.items():
                results[index] = result
    for index, item in one_by_one:
        results[index] = _guarded(item.name, partial(_store, actor, item, fields))
    return results


@dataclass
class _Prepared:
    """A file parsed and hashed, not yet stored."""

    data: bytes | Path
    name: str
    header: object
    source_format: str
    digest: str


def _guarded(name: str, step):
    """Run one file's step; a refusal becomes a ``rejected`` result with the reason."""
    try:
        return step()
    except PermissionDenied:
        return IngestResult(name, REJECTED, _("You may not upload studies."))
    except (Rejected, DicomError, ImageError) as exc:
        return IngestResult(name, REJECTED, str(exc))
    except ValidationError as exc:
        return IngestResult(name, REJECTED, " ".join(exc.messages))


def _prepare(
    actor: Actor,
    data: bytes | Path,
    name: str,
    fields: StudyFields,
    digest: str | None = None,
    allowed: bool | None = None,
) -> _Prepared:
    if not (can(actor.user, ADD_PERM) if allowed is None else allowed):
        raise PermissionDenied
    size = data.stat().st_size if isinstance(data, Path) else len(data)
    if size > settings.STUDIES_MAX_FILE_BYTES:
        raise Rejected(
            _("The file is larger than the limit of %(limit)d MB.")
            % {"limit": settings.STUDIES_MAX_FILE_BYTES // (1024 * 1024)}
        )
    if size == 0:
        raise Rejected(_("The file is empty."))
    head = _head(data)
    kind = dicom_parse.sniff_format(head)
    source_format = "dicom"
    if kind in ("png", "jpeg"):
        raw = data.read_bytes() if isinstance(data, Path) else data
        data, source_format, digest = _wrap(raw, fields), kind, None  # stored: the wrapped file
    elif kind not in ("dicom", "dicom-bare"):
        raise Rejected(
            _("Not a DICOM, PNG or JPEG file: %(what)s.")
            % {"what": dicom_parse.describe_non_dicom(head)}
        )
    header = dicom_parse.parse_instance(data, default_zone=settings.TIME_ZONE)
    return _Prepared(data, name, header, source_format, digest or sha256_of(data))


def _wrap(data: bytes, fields: StudyFields) -> bytes:
    missing = [
        label
        for label, value in (
            (_("patient"), fields.patient or (fields.study and fields.study.patient)),
            (_("category"), fields.category or (fields.study and fields.study.category)),
            (_("body part"), fields.body_part),
            (_("view position"), fields.view_position),
        )
        if not value
    ]
    if missing:
        raise Rejected(
            _("A PNG or JPEG needs these fields: %(fields)s.") % {"fields": ", ".join(missing)}
        )
    patient = fields.patient or fields.study.patient
    info = secondary_capture.CaptureInfo(
        patient_id=patient.mrn,
        patient_name=f"{patient.last_name}^{patient.first_name}^{patient.middle_name}".rstrip("^"),
        birth_date=patient.birth_date,
        sex=patient.sex if patient.sex in ("F", "M", "O") else "",
        study_instance_uid=fields.study.study_uid if fields.study else "",
        study_description=fields.description,
        body_part=fields.body_part,
        view_position=fields.view_position,
    )
    dataset = secondary_capture.wrap_image(data, info, max_pixels=settings.STUDIES_MAX_PIXELS)
    return secondary_capture.to_bytes(dataset)


def _head(data: bytes | Path) -> bytes:
    if isinstance(data, Path):
        with data.open("rb") as handle:
            return handle.read(512)
    return data[:512]


def _storage_name(header) -> str:
    # A name of this upload's own: if a concurrent upload of the same instance wins the race,
    # discarding ours can never touch the file the winner stored.
    return (
        f"dicom/{header.study_instance_uid}/{header.series_instance_uid}/"
        f"{header.sop_instance_uid}.{secrets.token_hex(4)}.dcm"
    )


def _store(actor, item: _Prepared, fields: StudyFields) -> IngestResult:
    header, name, digest = item.header, item.name, item.digest
    existing = Instance.objects.filter(sop_instance_uid=header.sop_instance_uid).first()
    if existing is not None:
        return _existing(name, existing, digest)
    department = _department(actor, fields)
    stored = store_bytes(_storage_name(header), item.data)
    try:
        with transaction.atomic():
            collected = _Collected()
            result = _record(actor, item, fields, department, stored, collected)
            collected.write()
    except IntegrityError:
        _discard(stored)
        # Another upload of the same instance won the race: report what it stored.
        existing = Instance.objects.filter(sop_instance_uid=header.sop_instance_uid).first()
        if existing is not None:
            return _existing(name, existing, digest)
        raise
    except BaseException:
        _discard(stored)
        raise
    return result


def _record_batch(actor, batch, fields: StudyFields) -> dict[int, IngestResult] | None:
    """Record ``(index, _Prepared)`` files in one transaction; ``None`` (nothing kept) when
    any of them fails there."""
    try:
        department = _department(actor, fields)
    except Rejected:
        return None  # each file then gets the message on its own
    # Rows are locked in one order (patient, study) by every batch: no deadlock between them.
    batch = sorted(
        batch,
        key=lambda pair: (
            pair[1].header.patient.patient_id or "",
            pair[1].header.study_instance_uid,
        ),
    )
    names = [_storage_name(item.header) for _i, item in batch]
    writes = None
    try:
        # The files are written (each fsync'd) while the rows are prepared and inserted, and
        # waited for before the transaction ends: a committed row never names a file that is
        # not durable, and the fsyncs no longer come before the database's work.
        writes = _Writes(list(zip(names, [item.data for _i, item in batch], strict=True)))
        with transaction.atomic():
            recorded = _BatchWriter(actor, fields, department).write(batch, names)
            writes.wait()
        return recorded
    except (Rejected, DicomError, ImageError, ValidationError, PermissionDenied, DatabaseError):
        if writes is not None:
            writes.discard()
        return None
    except BaseException:
        if writes is not None:
            writes.discard()
        raise


@dataclass
class _Planned:
    """One file of a batch on its way to the database."""

    index: int
    item: _Prepared
    stored: str
    study: Study
    created_study: bool
    warnings: list[str]
    series: Series | None = None
    instance: Instance | None = None


class _BatchWriter:
    """The rows of a batch's files, written with one statement per table instead of one per
    file: the studies looked up (and locked) at once, each PatientID resolved once, the new
    studies, series and instances bulk-inserted, the audit rows bulk-created. The outcome is
    what ``_record`` file by file gives; whatever it cannot tell cheaply (a series UID of a new
    study already used elsewhere, a concurrent upload of the same instance) fails the insert,
    and the caller sends the batch through the one-by-one path."""

    def __init__(self, actor, fields: StudyFields, department):
        self.actor, self.fields, self.department = actor, fields, department
        self.patients = _Patients(actor)

    def write(self, batch, stored: list[str]) -> dict[int, IngestResult]:
        collected = _Collected()
        collected.lock_studies({item.header.study_instance_uid for _i, item in batch})
        studies = collected.studies
        if self.fields.patient is None:
            self.patients.prefetch(
                item.header.patient.patient_id
                for _i, item in batch
                if studies.get(item.header.study_instance_uid) is None
            )
        planned: list[_Planned] = []
        new_studies: dict[str, Study] = {}
        for (index, item), name in zip(batch, stored, strict=True):
            header = item.header
            warnings = list(header.warnings)
            study = studies.get(header.study_instance_uid)
            created = study is None
            if created:
                patient = self.fields.patient or self.patients.match(header, warnings)
                study = _new_study(self.actor, header, self.fields, patient, self.department)
                study.warnings = list(warnings)
                studies[study.study_uid] = new_studies[study.study_uid] = study
            else:
                self.patients.check_same(study, header, warnings)
            planned.append(_Planned(index, item, name, study, created, warnings))
        changed = self._merge_into_studies(planned, new_studies)
        if new_studies:
            _insert(list(new_studies.values()))
        for study in changed:
            study.save(update_fields=["modalities", "warnings"])
        self._series(planned)
        self._instances(planned)
        return self._finish(planned, collected)

    @staticmethod
    def _merge_into_studies(planned: list[_Planned], new_studies: dict) -> list[Study]:
        """Each study's modalities and warnings with those of its files (as ``_record`` sets
        them file by file); the stored studies whose values change."""
        changed = []
        for study in {id(p.study): p.study for p in planned}.values():
            mine = [p for p in planned if p.study is study]
            modalities = set(filter(None, study.modalities.split("\\")))
            modalities |= {p.item.header.modality for p in mine}
            joined = "\\".join(sorted(m for m in modalities if m))[:64]
            warnings = set(study.warnings)
            for p in mine:
                warnings |= set(p.warnings)
            merged = sorted(warnings)
            if study.study_uid in new_studies:
                study.modalities, study.warnings = joined, merged
            elif joined != study.modalities or merged != study.warnings:
                study.modalities, study.warnings = joined, merged
                changed.append(study)
        return changed

    @staticmethod
    def _series(planned: list[_Planned]) -> None:
        # Only the series of studies stored before can exist already; a new study's series UID
        # used elsewhere makes the insert fail (and the batch go file by file).
        lookup = {p.item.header.series_instance_uid for p in planned if not p.created_study}
        known = (
            {s.series_uid: s for s in Series.objects.filter(series_uid__in=lookup)}
            if lookup
            else {}
        )
        new: list[Series] = []
        for p in planned:
            header = p.item.header
            series = known.get(header.series_instance_uid)
            if series is None:
                series = Series(
                    study=p.study,
                    series_uid=header.series_instance_uid,
                    modality=header.modality,
                    number=header.series_number,
                    description=header.series_description[:200],
                    body_part=header.body_part[:64],
                )
                known[series.series_uid] = series
                new.append(series)
            elif series.study_id != p.study.pk:
                raise Rejected(
                    _("This series already belongs to another study; the file is refused.")
                )
            p.series = series
        if new:
            for series in new:
                series.study_id = series.study.pk  # the study's key, now that it has one
            _insert(new)

    def _instances(self, planned: list[_Planned]) -> None:
        user = self.actor.user if self.actor.user_id else None
        for p in planned:
            header, data = p.item.header, p.item.data
            p.series.study = p.study
            p.instance = Instance(
                series=p.series,
                sop_instance_uid=header.sop_instance_uid,
                sop_class_uid=header.sop_class_uid,
                sop_class_name=header.sop_class_name[:120],
                number=header.instance_number,
                document_kind=header.document_kind,
                rows=header.rows,
                columns=header.columns,
                frames=max(header.frames, 1) if header.is_image else 0,
                transfer_syntax=header.transfer_syntax_uid,
                source_format=p.item.source_format,
                file=p.stored,
                size=data.stat().st_size if isinstance(data, Path) else len(data),
                sha256=p.item.digest,
                pixel_layout=_pixel_layout(header, data),
                created_by=user,
            )
        _insert([p.instance for p in planned])

    def _finish(self, planned: list[_Planned], collected: _Collected) -> dict[int, IngestResult]:
        results, audited = {}, set()
        for p in planned:
            study, instance = p.study, p.instance
            if p.created_study and study.pk not in audited:
                audited.add(study.pk)
                collected.audit.append(
                    audit_event(
                        actor=self.actor,
                        action=CREATE,
                        obj=study,
                        details={"uid": study.study_uid},
                    )
                )
            if instance.is_image:
                collected.thumbnails.append(instance.pk)
            instance_imported.send(
                sender=Instance,
                instance=instance,
                study=study,
                actor=self.actor,
                batch=collected.scratch,
            )
            collected.audit.append(
                audit_event(
                    actor=self.actor,
                    action=CREATE,
                    obj=instance,
                    patient_id=study.patient_id,
                    details={"study": study.pk, "file": p.item.name[:200], "sha256": p.item.digest},
                )
            )
            results[p.index] = IngestResult(
                p.item.name,
                IMPORTED,
                _("Imported."),
                study_id=study.pk,
                instance_id=instance.pk,
                patient_id=study.patient_id,
                warnings=p.warnings,
            )
        collected.write()
        return results


class _Collected:
    """What one ingest transaction writes in bulk at its end: the audit rows (same
    transaction as the rows they record) and one thumbnail job for its images."""

    def __init__(self):
        self.audit: list = []
        self.thumbnails: list[int] = []
        # A batch looks up (and locks) all its studies at once: study UID -> Study, or None
        # for one not stored yet. ``None`` here: look each up on its own.
        self.studies: dict[str, Study | None] | None = None
        # Shared with the ``instance_imported`` receivers of this transaction (``batch``).
        self.scratch: dict = {}

    def lock_studies(self, uids: set[str]) -> None:
        if connection.vendor == "postgresql":  # the same query without the ORM's compiling
            found = Study.objects.raw(
                f"SELECT * FROM {Study._meta.db_table} WHERE study_uid = ANY(%s) "
                "ORDER BY id FOR UPDATE",
                [sorted(uids)],
            )
        else:
            found = Study.objects.select_for_update().filter(study_uid__in=uids).order_by("pk")
        self.studies = dict.fromkeys(uids)
        self.studies.update({study.study_uid: study for study in found})

    def study(self, uid: str) -> Study | None:
        if self.studies is not None and uid in self.studies:
            return self.studies[uid]
        return Study.objects.select_for_update().filter(study_uid=uid).first()

    def write(self) -> None:
        if self.audit:
            _insert(self.audit)
        if self.thumbnails:
            transaction.on_commit(partial(thumbnails_enqueue, list(self.thumbnails)))


# The statements of every upload, written out on PostgreSQL: the ORM spends 1-2 ms of CPU
# compiling each (a round trip here costs ~0.15 ms), as much as the rest of a one-file upload's
# work in this module; the same queries, the same rows.


def _stored_uids(uids: list[str]) -> list[str]:
    """Those of these SOP Instance UIDs already stored (the common answer: none)."""
    if connection.vendor != "postgresql" or not uids:
        return uids
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT sop_instance_uid FROM {Instance._meta.db_table} "
            "WHERE sop_instance_uid = ANY(%s)",
            [uids],
        )
        return [row[0] for row in cursor.fetchall()]


def _active_departments(user) -> list[Department]:
    """``list(user.departments.filter(is_active=True)[:2])``."""
    if connection.vendor != "postgresql":
        return list(user.departments.filter(is_active=True)[:2])
    field = get_user_model()._meta.get_field("departments")  # user may be a lazy object
    through = field.remote_field.through._meta.db_table
    mine, theirs = field.m2m_column_name(), field.m2m_reverse_name()
    return list(
        Department.objects.raw(
            f"SELECT d.* FROM {Department._meta.db_table} d JOIN {through} m "
            f"ON m.{theirs} = d.id WHERE m.{mine} = %s AND d.is_active "
            "ORDER BY d.name LIMIT 2",
            [user.pk],
        )
    )


def _insert(objs: list) -> None:
    """``bulk_create`` of new rows of one model (no signals either), on PostgreSQL as one
    ``INSERT ... VALUES (...), ... RETURNING id``: for the few rows of an upload, Django's
    compiling (and, from two rows, its ``UNNEST`` of arrays quoted element by element in
    Python) costs more than the insert (one row 0.75 -> 0.5 ms, two 1.5 -> 0.75 ms; equal at
    twenty)."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs)
        return
    opts = model._meta
    fields = [f for f in opts.concrete_fields if not f.primary_key]
    params: list = []
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
        params += [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(opts.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES {', '.join([row] * len(objs))} RETURNING {quote(opts.pk.column)}",
            params,
        )
        ids = cursor.fetchall()
    for obj, (pk,) in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, connection.alias


def _existing(name: str, instance: Instance, digest: str) -> IngestResult:
    if instance.sha256 == digest:
        study = instance.series.study
        return IngestResult(
            name,
            DUPLICATE,
            _("Already stored; nothing changed."),
            study_id=study.pk,
            instance_id=instance.pk,
            patient_id=study.patient_id,
        )
    return IngestResult(
        name,
        REJECTED,
        _(
            "An instance with this SOP Instance UID is already stored with different content; "
            "the stored one is kept. Ask the sending system to assign a new UID."
        ),
    )


def _department(actor: Actor, fields: StudyFields) -> Department:
    if fields.study is not None:
        return fields.study.department
    if fields.department is not None:
        return fields.department
    user = actor.user
    departments = _active_departments(user) if user else []
    if len(departments) == 1:
        return departments[0]
    # Only integrations fall back to the configured department; a person chooses.
    service_default = getattr(settings, "STUDIES_DEFAULT_DEPARTMENT", "")
    if service_default and getattr(user, "is_service_account", False):
        found = Department.objects.filter(code=service_default, is_active=True).first()
        if found:
            return found
    raise Rejected(_("Choose the performing department for this upload."))


def _record(
    actor, item: _Prepared, fields, department, stored, collected: _Collected
) -> IngestResult:
    header, name, digest, data = item.header, item.name, item.digest, item.data
    warnings: list[str] = list(header.warnings)
    study = collected.study(header.study_instance_uid)
    created_study = study is None
    if study is None:
        patient = fields.patient or _match_patient(actor, header, warnings)
        study = _create_study(actor, header, fields, patient, department, warnings, collected)
        if collected.studies is not None:
            collected.studies[study.study_uid] = study
    else:
        _check_same_patient(study, header, warnings)
    series = _series(study, header, new_study=created_study)
    if series.study_id != study.pk:
        raise Rejected(_("This series already belongs to another study; the file is refused."))
    instance = Instance.objects.create(
        series=series,
        sop_instance_uid=header.sop_instance_uid,
        sop_class_uid=header.sop_class_uid,
        sop_class_name=header.sop_class_name[:120],
        number=header.instance_number,
        document_kind=header.document_kind,
        rows=header.rows,
        columns=header.columns,
        frames=max(header.frames, 1) if header.is_image else 0,
        transfer_syntax=header.transfer_syntax_uid,
        source_format=item.source_format,
        file=stored,
        size=data.stat().st_size if isinstance(data, Path) else len(data),
        sha256=digest,
        pixel_layout=_pixel_layout(header, data),
        created_by=actor.user if actor.user_id else None,
    )
    modalities = set(filter(None, study.modalities.split("\\"))) | {header.modality}
    joined = "\\".join(sorted(m for m in modalities if m))[:64]
    if joined != study.modalities or warnings:
        study.modalities = joined
        study.warnings = sorted(set(study.warnings) | set(warnings))
        study.save(update_fields=["modalities", "warnings"])
    if instance.is_image:
        collected.thumbnails.append(instance.pk)
    instance_imported.send(
        sender=Instance, instance=instance, study=study, actor=actor, batch=collected.scratch
    )
    collected.audit.append(
        audit_event(
            actor=actor,
            action=CREATE,
            obj=instance,
            patient_id=study.patient_id,
            details={"study": study.pk, "file": name[:200], "sha256": digest},
        )
    )
    return IngestResult(
        name,
        IMPORTED,
        _("Imported."),
        study_id=study.pk,
        instance_id=instance.pk,
        patient_id=study.patient_id,
        warnings=warnings,
    )


def _pixel_layout(header, data: bytes | Path) -> dict | None:
    """Where the frames of the file being stored (``data``, its exact bytes or the temporary
    file holding them) lie (``studies.dicom.native``), kept with the instance so that the
    viewer's signed frame URLs read no header; ``None`` where it cannot tell (compressed,
    colour). Read from what is in hand, not from the stored copy, which may still be being
    written (a batch's files are written while its rows are inserted)."""
    if not header.is_image or header.transfer_syntax_uid not in (
        native.EXPLICIT_LE,
        native.IMPLICIT_LE,
    ):
        return None
    try:
        located = native.locate(data) if isinstance(data, Path) else native.locate_bytes(data)
    except OSError:
        return None
    return located.as_dict() if located is not None else None


def _series(study: Study, header, *, new_study: bool) -> Series:
    """The file's series, created in the study when new. A study created by this very file can
    have no series yet, so on PostgreSQL its series is inserted straight away (one statement,
    ``ON CONFLICT DO NOTHING`` for a UID already used elsewhere) instead of get_or_create's
    look-up, savepoint, insert and release."""
    values = {
        "study": study,
        "modality": header.modality,
        "number": header.series_number,
        "description": header.series_description[:200],
        "body_part": header.body_part[:64],
    }
    if new_study and connection.vendor == "postgresql":
        series = Series(series_uid=header.series_instance_uid, **values)
        fields = [f for f in Series._meta.concrete_fields if not f.primary_key]
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        table = connection.ops.quote_name(Series._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
                "ON CONFLICT (series_uid) DO NOTHING RETURNING id",
                [f.get_db_prep_save(f.pre_save(series, True), connection) for f in fields],
            )
            row = cursor.fetchone()
        if row is not None:
            series.pk = row[0]
            series._state.adding, series._state.db = False, connection.alias
            return series
        return Series.objects.get(series_uid=header.series_instance_uid)
    series, _created = Series.objects.get_or_create(
        series_uid=header.series_instance_uid, defaults=values
    )
    return series


def _create_study(
    actor, header, fields: StudyFields, patient, department, warnings, collected: _Collected
) -> Study:
    study = _new_study(actor, header, fields, patient, department)
    study.warnings = warnings
    study.save(force_insert=True)
    collected.audit.append(
        audit_event(actor=actor, action=CREATE, obj=study, details={"uid": study.study_uid})
    )
    return study


def _new_study(actor, header, fields: StudyFields, patient, department) -> Study:
    """The file's new study, not saved yet."""
    category = fields.category or dicom_category.category_of(header)
    if category not in Category.values:
        category = Category.OTHER
    return Study(
        study_uid=header.study_instance_uid,
        patient=patient,
        department=department,
        accession_number=header.accession_number[:64],
        study_datetime=header.study_datetime or header.acquisition_datetime,
        description=(fields.description or header.study_description)[:200],
        modalities=header.modality[:64],
        category=category,
        body_part=(fields.body_part or header.body_part)[:64],
        view_position=(
            fields.view_position or dicom_category.normalize_view_position(header.view_position)
        )[:16],
        institution=header.institution[:200],
        referring_physician=header.referring_physician[:200],
        clinical_question=fields.clinical_question,
        urgency=fields.urgency or Urgency.ROUTINE,
        warnings=[],
        created_by=actor.user if actor.user_id else None,
    )


def _match_patient(actor: Actor, header, warnings: list[str]) -> Patient:
    """The registry patient a file's PatientID denotes (following merges), else a new
    provisional one listed for reconciliation. Disagreeing names or birth dates only warn."""
    person = header.patient
    patient = None
    if person.patient_id:
        patient = patient_resolve(
            mrn=person.patient_id, identifier=person.patient_id, for_update=True
        )
    if patient is not None:
        _compare_with_registry(patient, header, warnings)
        return patient
    return _register_patient(actor, header, warnings)


def _compare_with_registry(patient: Patient, header, warnings: list[str]) -> None:
    """Disagreeing names or birth dates only warn; the registry is never overwritten."""
    person = header.patient
    name = dicom_person_name(person.name_raw or person.name, person.specific_character_set)
    if name.full and not patient_name_matches(patient, name):
        warnings.append(
            _("The file's patient name %(file)s differs from the registry's %(registry)s.")
            % {"file": name.full, "registry": f"{patient.last_name} {patient.first_name}"}
        )
    if person.birth_date and patient.birth_date and person.birth_date != patient.birth_date:
        warnings.append(
            _("The file's birth date %(file)s differs from the registry's %(registry)s.")
            % {"file": person.birth_date, "registry": patient.birth_date}
        )


def _register_patient(actor: Actor, header, warnings: list[str]) -> Patient:
    """A new provisional (or unknown) patient from the file's PatientID and name."""
    person = header.patient
    name = dicom_person_name(person.name_raw or person.name, person.specific_character_set)
    data = {
        "last_name": name.family[:100],
        "first_name": name.given[:100],
        "middle_name": name.middle[:100],
        "birth_date": person.birth_date,
        "sex": person.sex if person.sex in ("F", "M", "O") else "U",
        "identity_status": IdentityStatus.PROVISIONAL if name.family else IdentityStatus.UNKNOWN,
        "notes": _("Registered from an imported file (PatientID %(id)s, issuer %(issuer)s).")
        % {"id": person.patient_id or "-", "issuer": person.issuer or "-"},
    }
    system = Actor(user=actor.user, ip=actor.ip, user_agent=actor.user_agent, label="ingest")
    identifiers = []
    if person.patient_id:
        # The sender's PatientID becomes an identifier, so its next files find this patient.
        foreign, _created = IdentifierType.objects.get_or_create(
            code=FOREIGN_PATIENT_ID, defaults={"name": "PatientID (DICOM)"}
        )
        identifiers.append(IdentifierInput(type=foreign, value=person.patient_id))
    patient = patient_register(actor=system, data=data, identifiers=identifiers)
    warnings.append(
        _("No registry patient matched PatientID %(id)s: a provisional patient was registered.")
        % {"id": person.patient_id or "-"}
    )
    return patient


def _check_same_patient(study: Study, header, warnings: list[str]) -> None:
    person = header.patient
    if not person.patient_id:
        return
    resolved = patient_resolve(mrn=person.patient_id, identifier=person.patient_id)
    if resolved is not None and resolved.pk != study.patient_id:
        warnings.append(
            _("This file names another patient (PatientID %(id)s) than its study's.")
            % {"id": person.patient_id}
        )


class _Patients:
    """A batch's patient look-ups: each PatientID resolved (and share-locked against a merge)
    once, and, for the common case of PatientIDs found as they are, all at once."""

    def __init__(self, actor: Actor):
        self.actor = actor
        self.locked: dict[str, Patient] = {}  # PatientID -> patient, locked in this transaction
        self.seen: dict[str, Patient | None] = {}  # PatientID -> patient, for the study check

    def prefetch(self, patient_ids) -> None:
        """Resolve at once the PatientIDs that name a patient's MRN or identifier directly
        (``patient_resolve``'s first step: the MRN first, then an identifier of any type, the
        lowest id first), share-locking the rows. What is not found so, or was merged into
        another record, is left to ``patient_resolve`` one by one."""
        wanted = {pid for pid in patient_ids if pid and pid not in self.locked}
        if not wanted:
            return
        keys = {pid: (normalize_mrn(pid), normalize_identifier(pid)) for pid in wanted}
        mrns = sorted({mrn for mrn, _value in keys.values() if mrn})
        values = sorted({value for _mrn, value in keys.values() if value})
        candidates, by_value = _lock_patients(mrns, values)
        by_mrn: dict[str, Patient] = {}
        for patient in sorted(candidates.values(), key=lambda p: p.pk):
            by_mrn.setdefault(patient.mrn, patient)
        for pid, (mrn, value) in keys.items():
            found = by_mrn.get(mrn) if mrn else None
            if found is None and by_value.get(value):
                found = candidates[min(by_value[value])]
            if found is not None and found.merged_into_id is None:
                self.locked[pid] = found

    def match(self, header, warnings: list[str]) -> Patient:
        """``_match_patient``, once per PatientID of the batch."""
        pid = header.patient.patient_id
        if pid and pid in self.locked:
            patient = self.locked[pid]
            _compare_with_registry(patient, header, warnings)
            return patient
        patient = _match_patient(self.actor, header, warnings)
        if pid:
            self.locked[pid] = patient
        return patient

    def check_same(self, study: Study, header, warnings: list[str]) -> None:
        """``_check_same_patient``, once per PatientID of the batch."""
        pid = header.patient.patient_id
        if not pid:
            return
        if pid in self.locked:
            resolved = self.locked[pid]
        elif pid in self.seen:
            resolved = self.seen[pid]
        else:
            resolved = self.seen[pid] = patient_resolve(mrn=pid, identifier=pid)
        if resolved is not None and resolved.pk != study.patient_id:
            warnings.append(
                _("This file names another patient (PatientID %(id)s) than its study's.")
                % {"id": pid}
            )


def _lock_patients(
    mrns: list[str], values: list[str]
) -> tuple[dict[int, Patient], dict[str, list[int]]]:
    """The patients with these MRNs or identifier values, share-locked (on PostgreSQL; a merge
    locks them for update) until the transaction ends; and identifier value -> patient ids.
    One statement on PostgreSQL."""
    candidates: dict[int, Patient] = {}
    by_value: dict[str, list[int]] = {}
    if connection.vendor == "postgresql":
        patients = Patient._meta.db_table
        identifiers = PatientIdentifier._meta.db_table
        rows = Patient.objects.raw(
            f"SELECT p.*, m.value AS matched_value FROM {patients} p JOIN ("
            f"SELECT id AS patient_id, NULL AS value FROM {patients} WHERE mrn = ANY(%s) "
            f"UNION ALL SELECT patient_id, value FROM {identifiers} WHERE value = ANY(%s)"
            ") m ON m.patient_id = p.id ORDER BY p.id FOR SHARE OF p",
            [mrns, values],
        )
        for patient in rows:
            candidates.setdefault(patient.pk, patient)
            if patient.matched_value is not None:
                by_value.setdefault(patient.matched_value, []).append(patient.pk)
        return candidates, by_value
    for value, patient_id in PatientIdentifier.objects.filter(value__in=values).values_list(
        "value", "patient_id"
    ):
        by_value.setdefault(value, []).append(patient_id)
    ids = {pk for pks in by_value.values() for pk in pks}
    rows = Patient.objects.select_for_update().filter(Q(mrn__in=mrns) | Q(pk__in=ids))
    candidates = {patient.pk: patient for patient in rows.order_by("pk")}
    return candidates, by_value


# -- storage --------------------------------------------------------------------------------


def store_bytes(name: str, data: bytes | Path) -> str:
    """Write a file through the storage API; on local disk atomically and durably (fsync)."""
    storage = default_storage
    if isinstance(storage, FileSystemStorage):
        target = Path(storage.path(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                if isinstance(data, Path):
                    with data.open("rb") as source:
                        shutil.copyfileobj(source, out, 1 << 20)
                else:
                    out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return name
    if isinstance(data, Path):
        with data.open("rb") as source:
            return storage.save(name, File(source))
    return storage.save(name, ContentFile(data))


# Files of one batch are written on a few threads: each is still fsync'd on its own, but the
# fsyncs overlap (the file system commits them together) instead of waiting one after another.
_STORE_THREADS = 4
_store_pool: ThreadPoolExecutor | None = None
_store_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _store_pool
    with _store_pool_lock:
        if _store_pool is None:
            _store_pool = ThreadPoolExecutor(_STORE_THREADS, thread_name_prefix="ingest-store")
        return _store_pool


def _forget_pool() -> None:
    global _store_pool, _store_pool_lock
    _store_pool, _store_pool_lock = None, threading.Lock()  # its threads stay in the parent


os.register_at_fork(after_in_child=_forget_pool)


def store_many(items: list[tuple[str, bytes | Path]]) -> list[str]:
    """``store_bytes`` for several ``(name, data)`` files; all or none: should one fail, those
    already written are removed again and the error raised."""
    if len(items) < 2 or not isinstance(default_storage, FileSystemStorage):
        stored: list[str] = []
        try:
            for name, data in items:
                stored.append(store_bytes(name, data))
        except BaseException:
            for name in stored:
                _discard(name)
            raise
        return stored
    futures = [_pool().submit(store_bytes, name, data) for name, data in items]
    stored, error = [], None
    for future in futures:
        try:
            stored.append(future.result())
        except BaseException as exc:  # wait for all of them before cleaning up
            error = error or exc
    if error is not None:
        for name in stored:
            _discard(name)
        raise error
    return stored


class _Writes:
    """``store_bytes`` of a batch's ``(name, data)`` files, started at once on the store
    threads (local storage; other storages write them one by one here and now). ``wait()``:
    the names once all are durable, else the first error; ``discard()``: wait, then remove
    those written."""

    def __init__(self, items: list[tuple[str, bytes | Path]]):
        self.names: list[str] | None = None
        self.futures = []
        if isinstance(default_storage, FileSystemStorage):
            self.futures = [_pool().submit(store_bytes, name, data) for name, data in items]
        else:
            self.names = store_many(items)

    def wait(self) -> list[str]:
        if self.names is None:
            stored, error = [], None
            for future in self.futures:
                try:
                    stored.append(future.result())
                except BaseException as exc:  # wait for all of them before reporting
                    error = error or exc
            self.names = stored
            if error is not None:
                raise error
        return self.names

    def discard(self) -> None:
        try:
            self.wait()
        except BaseException:  # the files that were written are removed below
            pass
        for name in self.names or []:
            _discard(name)


def _discard(name: str) -> None:
    try:
        default_storage.delete(name)
    except OSError:
        pass
