"""The registry of patient-linked models: what a merge moves and an unmerge moves back.

Every app whose rows belong to a patient registers its model from ``AppConfig.ready``::

    from patients.linked import register_patient_linked
    register_patient_linked(Study)                       # Study.patient
    register_patient_linked(Share, field="patient")      # any foreign key to Patient

A merge moves exactly the registered rows of the duplicate to the survivor and records their
ids; an unmerge moves exactly those ids back. Models that are not registered stay where they are
(audit rows have no foreign key at all and never move).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.db import models


@dataclass(frozen=True)
class LinkedModel:
    model: type[models.Model]
    field: str

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @property
    def verbose_name_plural(self) -> str:
        return str(self.model._meta.verbose_name_plural)


_registry: dict[str, LinkedModel] = {}


def register_patient_linked(model: type[models.Model], *, field: str = "patient") -> None:
    """Register ``model`` as linked to a patient through its foreign key ``field``.

    Registering the same model and field again is harmless; a field that is not a foreign key
    to ``patients.Patient`` is a configuration error raised at start-up.
    """
    from patients.models import Patient

    try:
        fk = model._meta.get_field(field)
    except Exception:
        raise ImproperlyConfigured(f"{model.__name__} has no field {field!r}.") from None
    if not fk.many_to_one or fk.related_model is not Patient:
        raise ImproperlyConfigured(
            f"{model.__name__}.{field} must be a ForeignKey to patients.Patient to be merged."
        )
    entry = LinkedModel(model=model, field=field)
    existing = _registry.get(entry.label)
    if existing is not None and existing != entry:
        raise ImproperlyConfigured(f"{entry.label} is already registered with another field.")
    _registry[entry.label] = entry


def unregister_patient_linked(model: type[models.Model]) -> None:
    """For tests that register a model of their own."""
    _registry.pop(model._meta.label_lower, None)


def linked_models() -> list[LinkedModel]:
    return sorted(_registry.values(), key=lambda entry: entry.label)


def linked_model(label: str) -> LinkedModel | None:
    return _registry.get(label)
