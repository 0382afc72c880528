"""Run modes: each case starts a fresh interpreter, since settings are read once at import."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "MIS_MODE": "production",
    "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": "k" * 50,
    "ALLOWED_HOSTS": "mis.example.org",
}
SHOW = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({k: str(getattr(s, k)) for k in "
    "['MIS_MODE','SESSION_COOKIE_SECURE','CSRF_COOKIE_SECURE','SECURE_SSL_REDIRECT',"
    "'SECURE_HSTS_SECONDS','DEBUG','CELERY_BROKER_URL','DEMO_DATA_ALLOWED']} | "
    "{'ENGINE': s.DATABASES['default']['ENGINE'], "
    "'INIT': s.DATABASES['default'].get('OPTIONS', {}).get('init_command', ''), "
    "'TX': s.DATABASES['default'].get('OPTIONS', {}).get('transaction_mode', '')}))"
)


def _run(env: dict, tmp_path) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION and k not in ("USE_HTTPS", "DEBUG")
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "mis.settings", "MIS_VAR_DIR": str(tmp_path)})
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embedded_is_the_default_with_sqlite_wal_and_the_filesystem_broker(tmp_path):
    result = _run({}, tmp_path)
    values = json.loads(result.stdout)
    assert values["MIS_MODE"] == "embedded"
    assert values["ENGINE"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in values["INIT"] and values["TX"] == "IMMEDIATE"
    assert values["CELERY_BROKER_URL"] == "filesystem://"
    assert values["DEMO_DATA_ALLOWED"] == "True"
    assert (tmp_path / "broker" / "queue").is_dir()


@pytest.mark.parametrize(
    "missing", ["DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "ALLOWED_HOSTS"]
)
def test_production_refuses_to_start_without(missing, tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = _run(env, tmp_path)
    assert result.returncode != 0
    assert missing in result.stderr and "required in production mode" in result.stderr


def test_production_with_everything_set_starts_and_never_allows_demo_data(tmp_path):
    values = json.loads(_run(PRODUCTION, tmp_path).stdout)
    assert values["ENGINE"] == "django.db.backends.postgresql"
    assert values["DEMO_DATA_ALLOWED"] == "False"
    assert values["SESSION_COOKIE_SECURE"] == "False"


def test_https_settings_follow_use_https_not_debug(tmp_path):
    on = json.loads(_run({**PRODUCTION, "USE_HTTPS": "true"}, tmp_path).stdout)
    assert on["SESSION_COOKIE_SECURE"] == on["CSRF_COOKIE_SECURE"] == "True"
    assert on["SECURE_SSL_REDIRECT"] == "True" and int(on["SECURE_HSTS_SECONDS"]) > 0
    debug = json.loads(_run({"DEBUG": "true"}, tmp_path).stdout)
    assert debug["SESSION_COOKIE_SECURE"] == "False" and debug["SECURE_HSTS_SECONDS"] == "0"


def test_an_unknown_mode_or_a_bad_boolean_fails_loudly(tmp_path):
    assert "must be one of" in _run({"MIS_MODE": "prod"}, tmp_path).stderr
    assert "not a boolean" in _run({"USE_HTTPS": "maybe"}, tmp_path).stderr


def test_production_refuses_to_run_without_auditing_reads(tmp_path):
    result = _run({**PRODUCTION, "AUDIT_READS": "false"}, tmp_path)
    assert result.returncode != 0 and "AUDIT_READS=false is refused" in result.stderr
