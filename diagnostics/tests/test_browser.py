"""In a real browser: the study page's AI section shows a queued run with its progress and
turns into the results (bars, positive mark, heatmap) without a reload when the worker's code
finishes the run. Screenshots go to test-artifacts/."""

import time

import pytest

from accounts.tests.factories import PASSWORD
from diagnostics import services
from diagnostics.models import AnalysisRun
from patients.tests.test_browser import ARTIFACTS, page  # noqa: F401  (the shared fixture)

from .conftest import chest_dicom
from .processes import RedisServer, broker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _wait_until(browser_page, expression: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not browser_page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for: {expression}"
        browser_page.wait_for_timeout(100)


def test_ai_status_updates_live_and_shows_the_results(
    page,  # noqa: F811
    live_server,
    radiologist,
    ai_model,
    ingest,
):
    # No broker answers (a port nobody listens on): the run stays queued until this test runs
    # the worker's code itself, so the page is seen before and after.
    with broker(RedisServer().url):
        result = ingest(chest_dicom(lesion=True))
    run = AnalysisRun.objects.get(instance_id=result.instance_id)
    assert run.status == "queued"

    page.goto(f"{live_server.url}/studies/{result.study_id}/")
    page.fill("#id_username", "radiologist")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/studies/{result.study_id}/")
    _wait_until(page, "document.querySelector('#ai progress') !== null")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    page.locator("#ai").screenshot(path=ARTIFACTS / "ai-queued.png")

    assert services.run_execute(run.pk).status == "succeeded"
    _wait_until(page, "document.querySelector('#ai').dataset.pending === '0'")
    _wait_until(page, "document.querySelector('#ai .ai-bar-fill.positive') !== null")
    assert page.evaluate("window.__sameDocument === true")
    assert page.locator("#ai .ai-positive").count() == 1
    assert "decision support, not a diagnosis" in page.locator("#ai").inner_text().lower() or (
        "не диагноз" in page.locator("#ai").inner_text().lower()
    )
    heatmap = page.locator("#ai img.heat")
    heatmap.wait_for()
    _wait_until(
        page,
        "Array.from(document.querySelectorAll('#ai img.heat'))"
        ".every(i => i.complete && i.naturalWidth > 0)",
    )
    page.locator("#ai").screenshot(path=ARTIFACTS / "ai-results.png")
