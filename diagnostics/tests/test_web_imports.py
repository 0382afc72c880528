"""The web process does not import torch at start-up (URLs, admin, templates, tasks)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mis.settings")
import django
django.setup()
import mis.wsgi, mis.urls
from django.contrib import admin
admin.autodiscover()
from django.template import engines
engines["django"].engine.get_template("diagnostics/_study_ai.html")
import diagnostics.tasks, diagnostics.views, diagnostics.api.views, diagnostics.services
print("torch" in sys.modules)
"""


def test_the_web_process_starts_without_torch():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
