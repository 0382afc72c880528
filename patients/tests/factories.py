import datetime as dt

import factory

from accounts.tests.factories import DepartmentFactory
from patients.models import IdentifierType, Patient, PatientIdentifier


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    mrn = factory.Sequence(lambda n: f"MRN{n:06d}")
    last_name = "Фёдоров"
    first_name = "Пётр"
    middle_name = "Ильич"
    birth_date = dt.date(1980, 5, 17)
    sex = "M"
    department = factory.SubFactory(DepartmentFactory, code="radiology", name="Radiology")


def identifier_type(code: str) -> IdentifierType:
    return IdentifierType.objects.get(code=code)


class PatientIdentifierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PatientIdentifier

    patient = factory.SubFactory(PatientFactory)
    type = factory.LazyFunction(lambda: identifier_type("snils"))
    value = "11223344595"
