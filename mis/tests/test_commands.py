import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuditEvent
from patients.models import Patient

pytestmark = pytest.mark.django_db


def test_ensure_admin_creates_an_administrator_and_prints_a_working_login(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    password = out.getvalue().split("password:")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert admin.groups.filter(name="Administrator").exists()

    again = io.StringIO()
    call_command("ensure_admin", stdout=again)
    assert password in again.getvalue()
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_bootstrap_loads_demo_data_in_embedded_mode_only(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("bootstrap", stdout=io.StringIO())
    assert Patient.objects.filter(mrn__startswith="DEMO").count() == 24
    assert Patient.objects.filter(identity_status="unknown").count() == 1
    call_command("bootstrap", stdout=io.StringIO())  # idempotent
    assert Patient.objects.filter(mrn__startswith="DEMO").count() == 24
    # the demo administrator is scoped like everyone, and sees the demo through its departments
    from accounts.permissions import restrict

    admin = get_user_model().objects.get(username="admin")
    visible = restrict(Patient.objects.all(), admin, "patients.view_patient")
    assert visible.count() == Patient.objects.count() > 0


def test_demo_data_is_refused_in_production(settings, superuser):
    settings.DEMO_DATA_ALLOWED = False
    with pytest.raises(CommandError, match="never loaded in production"):
        call_command("load_demo", stdout=io.StringIO())
    assert not Patient.objects.exists()


def test_seed_bench_bulk_loads_patients_and_audit_events():
    out = io.StringIO()
    call_command("seed_bench", patients=1200, audit_events=3000, stdout=out)
    assert Patient.objects.filter(mrn__startswith="B").count() == 1200
    assert AuditEvent.objects.count() == 3000
    seeded_patients = set(AuditEvent.objects.values_list("patient_id", flat=True))
    assert seeded_patients <= set(Patient.objects.values_list("id", flat=True))
    assert Patient.objects.filter(search_name="").count() == 0
    assert out.getvalue().strip().splitlines()[-1].startswith("{")


def test_seed_bench_refuses_a_run_without_counts():
    with pytest.raises(CommandError, match="how many rows"):
        call_command("seed_bench", stdout=io.StringIO())


def test_create_api_token_prints_a_key_that_authenticates(clinician, client):
    out = io.StringIO()
    call_command("create_api_token", "clinician", "--name", "gateway", stdout=out)
    key = out.getvalue().strip()
    assert key.startswith("mis_")
    response = client.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
