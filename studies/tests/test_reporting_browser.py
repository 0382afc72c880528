"""In a real browser: a radiologist types a report draft, sees it saved without pressing
anything (static/js/report-autosave.js), then signs it. Screenshot in test-artifacts/."""

import pytest

from accounts.audit import Actor
from accounts.tests.factories import PASSWORD
from patients.tests.factories import PatientFactory
from patients.tests.test_browser import ARTIFACTS, page  # noqa: F401  (the shared fixture)
from studies.models import ReadingStatus, Report
from studies.reporting import services

from .reporting_helpers import make_study
from .test_browser import _wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_draft_saves_itself_and_is_signed(page, live_server, radiologist, department):  # noqa: F811
    patient = PatientFactory(mrn="B-1", department=department, last_name="Петров")
    study = make_study(patient, department)
    draft = services.report_draft_create(actor=Actor(user=radiologist), study=study)

    page.goto(f"{live_server.url}/reading/reports/{draft.pk}/")
    page.fill("#id_username", "radiologist")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/reading/reports/{draft.pk}/")
    page.locator("#id_conclusion").press_sequentially("Пневмония справа", delay=20)
    _wait_until(page, "document.querySelector('.autosave-state').dataset.state === 'unsaved'")
    _wait_until(page, "document.querySelector('.autosave-state').dataset.state === 'saved'")
    page.screenshot(path=ARTIFACTS / "report-autosave.png", full_page=True)
    draft.refresh_from_db()
    assert draft.conclusion == "Пневмония справа"

    page.click("button[name=sign][value=final]")
    page.wait_for_selector(".messages li")
    draft.refresh_from_db()
    study.refresh_from_db()
    assert draft.status == Report.Status.SIGNED
    assert study.reading_status == ReadingStatus.FINAL

    page.goto(f"{live_server.url}/studies/{study.pk}/")
    page.screenshot(path=ARTIFACTS / "study-reading-section.png", full_page=True)
    assert page.locator("#reading table.reports tbody tr").count() == 1
    page.goto(f"{live_server.url}/reading/reports/{draft.pk}/print/")
    page.screenshot(path=ARTIFACTS / "report-print.png", full_page=True)
    assert "Петров" in page.inner_text("body")
