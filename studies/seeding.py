"""Bulk seeding for the benchmarks: studies, series and instance rows without files
(``seed_bench --patients N --studies S --instances I``).

One million instance rows must load in a minute or two, so on PostgreSQL the rows go in with
``COPY … FROM STDIN`` (ids taken from the table's sequence up front, so series and instances can
name their parents without reading anything back); elsewhere (SQLite) with ``bulk_create`` in
batches. The rows are built as model instances, so every field a later migration adds gets its
default without changes here. Files exist only for the handful of instances a bench imports
through the real ingest (``bench/api_load.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterable, Iterator

from django.db import connection, models
from django.utils import timezone

from accounts.models import Department
from patients.models import Patient
from studies.models import Instance, Series, Study

BATCH = 20000
INSTANCES_PER_SERIES = 10
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
# A root for bench UIDs (never a real device's); the numbers after it are the row ids.
UID_ROOT = "1.2.826.0.1.3680043.10.1001"


def _reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """``count`` fresh primary keys from the table's sequence (PostgreSQL), or after the largest
    id (SQLite, where bulk_create then inserts them explicitly)."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')
        start = cursor.fetchone()[0] + 1
    return list(range(start, start + count))


def _copy_value(field: models.Field, obj: models.Model):
    value = field.pre_save(obj, add=True)
    if value is None:
        return None
    if isinstance(field, models.JSONField):
        return json.dumps(value)
    if isinstance(field, models.FileField):
        return str(value or "")
    return field.get_db_prep_save(value, connection)


def bulk_insert(model: type[models.Model], objects: Iterable[models.Model]) -> int:
    """Insert model instances (primary keys already set) as fast as the database allows."""
    fields = [f for f in model._meta.concrete_fields]
    if connection.vendor != "postgresql":
        batch: list[models.Model] = []
        total = 0
        for obj in objects:
            batch.append(obj)
            if len(batch) >= BATCH:
                model.objects.bulk_create(batch, batch_size=BATCH)
                total += len(batch)
                batch = []
        if batch:
            model.objects.bulk_create(batch, batch_size=BATCH)
            total += len(batch)
        return total
    columns = ", ".join(f'"{f.column}"' for f in fields)
    total = 0
    with connection.cursor() as cursor:
        with cursor.copy(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN') as copy:
            for obj in objects:
                copy.write_row([_copy_value(f, obj) for f in fields])
                total += 1
    return total


def copy_rows(
    model: type[models.Model], template: models.Model, varying: list[str], rows: Iterable[tuple]
) -> int:
    """Insert many rows that differ from ``template`` only in the ``varying`` fields (attnames),
    given as tuples: the template's values are prepared once, not per row (the per-row cost
    of building model instances is what makes a million rows slow)."""
    if connection.vendor != "postgresql":

        def objects():
            for values in rows:
                obj = model(**{f.attname: getattr(template, f.attname) for f in fields})
                for name, value in zip(varying, values, strict=True):
                    setattr(obj, name, value)
                yield obj

        fields = list(model._meta.concrete_fields)
        return bulk_insert(model, objects())
    fields = list(model._meta.concrete_fields)
    base = [_copy_value(f, template) for f in fields]
    positions = [next(i for i, f in enumerate(fields) if f.attname == name) for name in varying]
    columns = ", ".join(f'"{f.column}"' for f in fields)
    total = 0
    with connection.cursor() as cursor:
        with cursor.copy(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN') as copy:
            for values in rows:
                row = list(base)
                for position, value in zip(positions, values, strict=True):
                    row[position] = value
                copy.write_row(row)
                total += 1
    return total


def _bench_patients(count: int) -> list[int]:
    ids = list(
        Patient.objects.filter(mrn__startswith="B").order_by("id").values_list("id", flat=True)
    )
    if not ids:
        raise ValueError("Seed bench patients first: seed_bench --patients N.")
    return ids


def _studies(count: int, rng: random.Random) -> Iterator[Study]:
    department, _ = Department.objects.get_or_create(
        code="bench", defaults={"name": "Bench department"}
    )
    patients = _bench_patients(count)
    now = timezone.now()
    for n, pk in enumerate(_reserve_ids(Study, count)):
        yield Study(
            id=pk,
            study_uid=f"{UID_ROOT}.1.{pk}",
            patient_id=patients[n % len(patients)],
            department=department,
            accession_number=f"BA{pk:09d}",
            study_datetime=now - dt.timedelta(minutes=rng.randint(0, 3 * 365 * 24 * 60)),
            modalities="CT",
            category="ct",
            body_part="CHEST",
            description="Bench CT",
        )


def seed_studies(*, count: int, seed: int = 1) -> str:
    """``count`` studies (one series each, no instances) for the bench patients."""
    rng = random.Random(seed)
    studies = list(_studies(count, rng))
    bulk_insert(Study, studies)
    bulk_insert(Series, list(_series_for([s.pk for s in studies])))
    return f"{len(studies)} studies"


def _series_for(study_ids: list[int]) -> Iterator[Series]:
    for study_id, pk in zip(study_ids, _reserve_ids(Series, len(study_ids)), strict=True):
        yield Series(
            id=pk, study_id=study_id, series_uid=f"{UID_ROOT}.2.{pk}", modality="CT", number=1
        )


def seed_instances(*, count: int, seed: int = 1) -> str:
    """``count`` instance rows without files, ten per series, in new studies (one series each)
    spread over the bench patients."""
    rng = random.Random(seed)
    series_needed = -(-count // INSTANCES_PER_SERIES)
    done = 0
    made_series = 0
    while made_series < series_needed:
        chunk = min(BATCH, series_needed - made_series)
        studies = list(_studies(chunk, rng))
        bulk_insert(Study, studies)
        series = list(_series_for([s.pk for s in studies]))
        bulk_insert(Series, series)
        wanted = min(count - done, chunk * INSTANCES_PER_SERIES)
        ids = _reserve_ids(Instance, wanted)
        template = Instance(
            id=0,
            series_id=series[0].pk,
            sop_instance_uid="",
            sop_class_uid=CT_IMAGE_STORAGE,
            sop_class_name="CT Image Storage",
            number=1,
            rows=512,
            columns=512,
            size=526_000,
            sha256="0" * 64,
        )
        rows = (
            (
                pk,
                series[n // INSTANCES_PER_SERIES].pk,
                f"{UID_ROOT}.3.{pk}",
                n % INSTANCES_PER_SERIES + 1,
            )
            for n, pk in enumerate(ids)
        )
        done += copy_rows(
            Instance, template, ["id", "series_id", "sop_instance_uid", "number"], rows
        )
        made_series += chunk
    return f"{done} instances in {made_series} studies"
