"""seed_bench --studies/--instances: rows without files, linked to the bench patients."""

import io

import pytest
from django.core.management import call_command

from studies.models import Instance, Series, Study

pytestmark = pytest.mark.django_db


def test_instances_are_seeded_ten_per_series_for_the_bench_patients():
    call_command("seed_bench", patients=7, instances=95, stdout=io.StringIO())
    assert Instance.objects.count() == 95
    assert Series.objects.count() == Study.objects.count() == 10
    assert Study.objects.filter(patient__mrn__startswith="B").count() == 10
    assert set(Instance.objects.values_list("file", flat=True)) == {""}
    first = Series.objects.order_by("id").first()
    assert first.instances.count() == 10
    # Seeding again adds rows with fresh ids and UIDs (no collision with the first run).
    call_command("seed_bench", instances=5, stdout=io.StringIO())
    assert Instance.objects.count() == 100
    assert Instance.objects.values("sop_instance_uid").distinct().count() == 100


def test_studies_get_one_series_each():
    call_command("seed_bench", patients=3, studies=4, stdout=io.StringIO())
    assert Study.objects.count() == Series.objects.count() == 4
    assert not Instance.objects.exists()


def test_instances_need_bench_patients():
    with pytest.raises(ValueError, match="patients first"):
        call_command("seed_bench", instances=5, stdout=io.StringIO())
