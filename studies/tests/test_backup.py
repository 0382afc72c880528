"""Restore drill: back up small real data, restore it elsewhere, check the storage there."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.audit import Actor
from patients.tests.factories import PatientFactory
from studies.backup import postgres_url
from studies.ingest import IMPORTED, ingest_file

from .dicom_samples import make_dataset, ramp, to_bytes

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(settings.BASE_DIR)


@pytest.fixture
def target_database(tmp_path):
    """A database URL to restore into: a new SQLite file, or a new PostgreSQL database."""
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    import psycopg

    name = f"mis_restore_drill_{uuid.uuid4().hex[:8]}"
    yield postgres_url(connection.settings_dict, name)
    with psycopg.connect(
        postgres_url(connection.settings_dict, "postgres"), autocommit=True
    ) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _count_in(database_url: str, media_root: Path, model: str) -> int:
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mis.settings'); "
        f"django.setup(); from studies.models import {model}; print({model}.objects.count())"
    )
    env = {**os.environ, "DATABASE_URL": database_url, "MEDIA_ROOT": str(media_root)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip().splitlines()[-1])


def test_a_backup_restores_elsewhere_and_passes_storage_check(
    registrar, department, tmp_path, settings, target_database, capsys
):
    settings.MEDIA_ROOT = tmp_path / "media"
    PatientFactory(mrn="P-001", department=department)
    for _ in range(2):
        result = ingest_file(
            actor=Actor(user=registrar), data=to_bytes(make_dataset(ramp())), name="x.dcm"
        )
        assert result.status == IMPORTED
    call_command("backup", str(tmp_path / "backup"))
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert sum(name.startswith("media/dicom/") for name in manifest["files"]) == 2
    # Each image's thumbnail (made after ingest commits) is backed up beside it.
    assert sum(name.startswith("media/derived/") for name in manifest["files"]) == 2

    restored_media = tmp_path / "restored-media"
    call_command(
        "restore",
        str(tmp_path / "backup"),
        "--database-url",
        target_database,
        "--media-root",
        str(restored_media),
    )
    out = capsys.readouterr().out
    assert "Checked 2 instance files: 0 missing, 0 corrupted, 0 orphaned." in out
    assert _count_in(target_database, restored_media, "Instance") == 2


def test_a_damaged_backup_is_refused_before_anything_is_touched(
    registrar, department, tmp_path, settings, target_database
):
    settings.MEDIA_ROOT = tmp_path / "media"
    PatientFactory(mrn="P-001", department=department)
    ingest_file(actor=Actor(user=registrar), data=to_bytes(make_dataset(ramp())), name="x.dcm")
    call_command("backup", str(tmp_path / "backup"))
    stored = next((tmp_path / "backup" / "media").rglob("*.dcm"))
    stored.write_bytes(b"bit rot")
    with pytest.raises(CommandError, match="damaged"):
        call_command(
            "restore",
            str(tmp_path / "backup"),
            "--database-url",
            target_database,
            "--media-root",
            str(tmp_path / "restored-media"),
        )
    assert not (tmp_path / "restored-media").exists()


def test_backup_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "file").write_text("x")
    with pytest.raises(CommandError, match="not empty"):
        call_command("backup", str(tmp_path / "old"))
