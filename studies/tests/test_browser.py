"""In a real browser (Debian's Chromium, driven by Playwright): upload two DICOM files and a PDF
renamed .dcm on the upload page, see two imported and one rejected, then see a thumbnail on the
study page. Screenshots go to test-artifacts/."""

import time

import pytest

from accounts.tests.factories import PASSWORD
from patients.tests.test_browser import ARTIFACTS, page  # noqa: F401  (the shared fixture)
from studies.models import Study

from .conftest import dicom_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _wait_until(browser_page, expression: str, timeout: float = 15.0) -> None:
    """Poll an expression from the test (DevTools evaluation): ``wait_for_function`` evaluates
    its string inside the page, which the Content-Security-Policy (no 'unsafe-eval') refuses."""
    deadline = time.monotonic() + timeout
    while not browser_page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for: {expression}"
        browser_page.wait_for_timeout(100)


def test_upload_page_imports_and_rejects_per_file_and_the_study_shows_a_thumbnail(
    page,  # noqa: F811
    live_server,
    registrar,
    patient,
    tmp_path,
):
    files = []
    for n in (1, 2):
        path = tmp_path / f"image{n}.dcm"
        path.write_bytes(dicom_bytes(StudyInstanceUID="1.2.826.0.1.5", InstanceNumber=n))
        files.append(path)
    fake = tmp_path / "report.dcm"
    fake.write_bytes(b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n")
    files.append(fake)

    page.goto(f"{live_server.url}/studies/upload/")
    page.fill("#id_username", "registrar")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/studies/upload/")
    page.select_option("#id_urgency", "urgent")
    page.set_input_files("#file-input", [str(p) for p in files])
    _wait_until(page, "document.querySelectorAll('#upload-results li.result').length === 3")
    page.screenshot(path=ARTIFACTS / "study-upload.png", full_page=True)
    assert page.locator("li.result[data-status=imported]").count() == 2
    rejected = page.locator("li.result[data-status=rejected]")
    assert rejected.count() == 1
    assert "report.dcm" in rejected.inner_text() and "PDF" in rejected.inner_text()
    assert page.locator("#overall-progress").evaluate("p => p.value === p.max")

    study = Study.objects.get()
    assert study.urgency == "urgent"
    page.goto(f"{live_server.url}/studies/{study.pk}/")
    thumbnail = page.locator(".thumb img").first
    thumbnail.wait_for()
    _wait_until(
        page,
        "Array.from(document.querySelectorAll('.thumb img'))"
        ".every(i => i.complete && i.naturalWidth > 0)",
    )
    assert thumbnail.evaluate("img => img.naturalWidth") == 32
    page.screenshot(path=ARTIFACTS / "study-detail.png", full_page=True)
