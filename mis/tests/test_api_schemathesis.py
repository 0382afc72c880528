"""Schemathesis against the whole OpenAPI document, as an administrator and as a clinician.

Every operation in the schema is exercised (endpoints merged later are picked up without
changing this file): a fixed number of examples per operation, derandomized, first with the
path parameters pointing at real objects of the test data, then with generated ones. The checks:
no 5xx, the status code is documented, the content type and headers are documented, the body
conforms to the schema. PostgreSQL only (the CI database); skipped on SQLite with the reason.

Hook for /predict (issue 8): when ``diagnostics.testing.install_test_model`` exists it is called
before the run, so that /predict is served by a tiny model instead of answering "no model".
"""

import importlib
import os
import time

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

# Examples per operation: with real ids, then with generated ones. Keep the whole file under
# five minutes on CI's 2 cores (about 2 x 45 operations x 2 roles).
EXAMPLES_WITH_REAL_IDS = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))
EXAMPLES_GENERATED = max(2, EXAMPLES_WITH_REAL_IDS // 2)
# Destructive operations run last, so the reads still find the objects.
_LAST = ("remove-images", "delete", "revoke", "unmerge", "merge")

# Path prefix -> the fixture object whose id goes into {id}.
_IDS = {
    "/api/v1/patients/": "patient",
    "/api/v1/patient-duplicates/": "duplicate_pair",
    "/api/v1/studies/": "study",
    "/api/v1/series/": "series",
    "/api/v1/instances/": "instance",
    "/api/v1/users/": "spare_user",
    "/api/v1/departments/": "department",
    "/api/v1/tokens/": "spare_token",
    "/api/v1/roles/": "role",
    "/api/v1/audit-events/": "audit_event",
    "/api/v1/reports/": "report",
    "/api/v1/annotations/": "annotation",
    "/api/v1/analysis-runs/": "analysis_run",
    "/api/v1/findings/": "finding",
    "/api/v1/ai-models/": "ai_model",
    "/api/v1/derived/": "derived",
}


def _skip_unless_postgresql():
    from conftest import require

    # Skipped locally on SQLite; under CI=true (which runs on PostgreSQL) a skip would be a fail.
    require(
        connection.vendor == "postgresql",
        "The schemathesis run is part of the PostgreSQL suite (CI runs on PostgreSQL): "
        "set DATABASE_URL=postgres://… to run it.",
    )


def _install_predict_model():
    """Issue 8's hook: a real model for /predict (diagnostics.testing)."""
    testing = importlib.import_module("diagnostics.testing")
    model = testing.install_test_model()
    assert model is not None and model.is_available, "no model serves /predict"
    return model


@pytest.fixture
def wsgi_app():
    """Django's WSGI handler, minus the connection closing at request boundaries (as Django's
    test client does): the requests run inside the test's transaction."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def world(settings, tmp_path, administrator, clinician, department):
    """Deterministic test data in the administrator's and clinician's department."""
    from django.contrib.auth.models import Group

    from accounts.audit import Actor, audit_record
    from accounts.tests.factories import UserFactory
    from accounts.tokens import token_create
    from patients.models import DuplicateCandidate
    from patients.tests.factories import PatientFactory
    from studies.ingest import StudyFields, ingest_file
    from studies.models import Instance
    from studies.tests.dicom_samples import make_dataset, ramp, to_bytes

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    patient = PatientFactory(
        mrn="SCH-1", department=department, last_name="Иванов", first_name="Иван"
    )
    twin = PatientFactory(mrn="SCH-2", department=department, last_name="Иванов", first_name="Ив")
    pair = DuplicateCandidate.objects.create(
        patient_a=patient, patient_b=twin, score=0.9, name_score=0.9, reasons=["name"]
    )
    registrar = UserFactory(username="sch-registrar", role="Registrar", departments=[department])
    data = to_bytes(
        make_dataset(
            ramp(32, 32),
            PatientID="SCH-1",
            StudyInstanceUID="1.2.826.0.1.3680043.10.543.1",
            SeriesInstanceUID="1.2.826.0.1.3680043.10.543.1.1",
            SOPInstanceUID="1.2.826.0.1.3680043.10.543.1.1.1",
        )
    )
    result = ingest_file(actor=Actor(user=registrar), data=data, name="a.dcm", fields=StudyFields())
    assert result.status == "imported", result.message
    instance = Instance.objects.select_related("series__study").get()
    spare_user = UserFactory(username="sch-spare", role="Clinician", departments=[department])
    spare_token, _ = token_create(actor=Actor.system("test"), user=spare_user, name="spare")
    event = audit_record(actor=Actor.system("test"), action="view", object_type="test")
    ai_model = _install_predict_model()
    # A signed report, an annotation, and a finished analysis run with its finding and heatmap.
    from studies.annotations import annotation_create
    from studies.models import FindingCode
    from studies.reporting import services as reporting

    reader = UserFactory(username="sch-reader", role="Radiologist", departments=[department])
    study = instance.series.study
    reader_actor = Actor(user=reader)
    report = reporting.report_draft_create(
        actor=reader_actor, study=study, conclusion="Без патологии.", finding_codes=["normal"]
    )
    report = reporting.report_sign(actor=reader_actor, report=report)
    annotation = annotation_create(
        actor=reader_actor,
        instance=instance,
        shape="rect",
        x=10.0,
        y=10.0,
        width=5.0,
        height=5.0,
        label=FindingCode.objects.get(code="nodule"),
        comment="",
    )
    testing = importlib.import_module("diagnostics.testing")  # torch stays out of mis's imports
    (run,) = testing.analysed_study(actor=reader_actor, study=study, model=ai_model)
    assert run.status == "succeeded", run.error
    finding = run.findings.order_by("pk").first()
    derived = instance.derived.exclude(kind="thumbnail").first() or instance.derived.first()
    return {
        "patient": patient.pk,
        "duplicate_pair": pair.pk,
        "study": instance.series.study_id,
        "series": instance.series_id,
        "instance": instance.pk,
        "spare_user": spare_user.pk,
        "department": department.pk,
        "spare_token": spare_token.pk,
        "role": Group.objects.get(name="Clinician").pk,
        "audit_event": event.pk,
        "report": report.pk,
        "annotation": annotation.pk,
        "analysis_run": run.pk,
        "finding": finding.pk,
        "ai_model": ai_model.pk,
        "derived": derived.pk if derived else 0,
    }


def _ordered(operations):
    def last(op):
        return any(word in op.path or word == op.method for word in _LAST)

    return sorted(operations, key=lambda op: (last(op), op.path, op.method))


def _real_path_parameters(operation, world) -> dict:
    values = {}
    for parameter in operation.path_parameters:
        name = parameter.name
        if name == "frame":
            values[name] = 0
        elif name in ("id", "pk"):
            for prefix, key in _IDS.items():
                if operation.path.startswith(prefix):
                    values[name] = world[key]
    return values


@pytest.mark.parametrize("role", ["administrator", "clinician"])
def test_every_operation_conforms_to_the_schema(request, role, world, wsgi_app, monkeypatch):
    _skip_unless_postgresql()
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from rest_framework.throttling import SimpleRateThrottle
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    from accounts.audit import Actor
    from accounts.tokens import token_create

    # Thousands of requests in a minute: the throttles are tested elsewhere.
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {name: "100000/min" for name in SimpleRateThrottle.THROTTLE_RATES},
    )
    user = request.getfixturevalue(role)
    _token, key = token_create(actor=Actor.system("test"), user=user, name="schemathesis")
    headers = {"Authorization": f"Token {key}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    common = dict(
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report, do not search
        suppress_health_check=list(HealthCheck),
    )
    operations = _ordered(result.ok() for result in schema.get_all_operations())
    assert len(operations) > 30
    failures: list[str] = []
    calls = {"n": 0}
    succeeded: set[str] = set()  # operations that answered 2xx at least once
    started = time.monotonic()

    for operation in operations:
        real = _real_path_parameters(operation, world)
        runs = [(real, EXAMPLES_WITH_REAL_IDS)] if real else []
        runs.append(({}, EXAMPLES_GENERATED))
        for fixed, examples in runs:
            strategy = operation.as_strategy(path_parameters=fixed or None)

            @settings(max_examples=examples, **common)
            @given(case=strategy)
            def exercise(case):
                calls["n"] += 1
                response = case.call_and_validate(headers=headers, checks=checks)
                if response.status_code < 300:
                    succeeded.add(f"{case.method} {case.path}")

            try:
                exercise()
            except (Exception, BaseExceptionGroup) as exc:  # collect all, then report
                failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])

    elapsed = time.monotonic() - started
    assert not failures, "\n\n".join(failures)
    assert calls["n"] > len(operations)
    print(
        f"schemathesis as {role}: {len(operations)} operations, {calls['n']} calls, "
        f"{len(succeeded)} answered 2xx, {elapsed:.0f} s: {sorted(succeeded)}"
    )
    # The real ids reach the objects: the reads a role may do answer 2xx, not only 404s.
    expected = {
        "GET /api/v1/patients/{id}/",
        "GET /api/v1/studies/{id}/",
        "GET /api/v1/instances/{id}/frames/{frame}.png",
        "GET /api/v1/series/{id}/",
        "GET /api/v1/reports/{id}/",
        "GET /api/v1/annotations/{id}/",
        "GET /api/v1/analysis-runs/{id}/",
    }
    if role == "administrator":
        expected |= {"GET /api/v1/users/{id}/", "GET /api/v1/audit-events/{id}/"}
    assert expected <= succeeded
