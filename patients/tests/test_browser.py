"""In a real browser (Debian's Chromium, driven by Playwright): log in, register a patient,
find them by a Cyrillic name fragment, edit them. Screenshots go to test-artifacts/."""

import os
import shutil
from pathlib import Path

import pytest
from django.db import connections

from accounts.tests.factories import PASSWORD
from conftest import require
from patients.models import Patient

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def page(live_server):
    require(
        shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists(),
        f"Chromium not found at {CHROMIUM} (apt-get install chromium)",
    )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself
    # are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(locale="ru-RU", viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
        context.close()
        browser.close()
        # ORM calls made while Playwright's loop ran hold their own connection; close it, or
        # PostgreSQL refuses to drop the test database at the end of the session.
        connections.close_all()


def test_registrar_registers_finds_and_edits_a_patient(page, live_server, registrar):
    page.goto(f"{live_server.url}/patients/")
    page.fill("#id_username", "registrar")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/patients/")
    assert page.locator("h1").inner_text() == "Пациенты"

    page.click("a[href$='/patients/new/']")
    page.fill("#id_last_name", "Ёлкина")
    page.fill("#id_first_name", "Мария")
    page.fill("#id_middle_name", "Сергеевна")
    page.fill("#id_birth_date", "1990-01-02")
    page.select_option("#id_sex", "F")
    page.select_option("#id_ident-0-type", label="СНИЛС")
    page.fill("#id_ident-0-value", "112-233-445 95")
    page.click("[data-formset-add=ident]")
    page.select_option("#id_ident-1-type", label="Полис ОМС")
    page.fill("#id_ident-1-value", "7700 0000 0000 0001")
    page.screenshot(path=ARTIFACTS / "patient-register.png", full_page=True)
    page.click("button.primary")
    page.wait_for_selector("text=СНИЛС:")
    patient = Patient.objects.get(last_name="Ёлкина")
    assert sorted(patient.identifiers.values_list("value", flat=True)) == [
        "11223344595",
        "7700000000000001",
    ]
    assert page.url.endswith(patient.get_absolute_url())

    page.goto(f"{live_server.url}/patients/")
    page.fill("input[name=q]", "ЕЛК")
    page.press("input[name=q]", "Enter")
    page.wait_for_selector("table.list >> text=Ёлкина Мария Сергеевна")
    page.screenshot(path=ARTIFACTS / "patient-search.png", full_page=True)
    page.click("table.list >> text=Ёлкина Мария Сергеевна")

    page.click("a[href$='/edit/']")
    page.fill("#id_phone", "+7 900 123-45-67")
    page.fill("#id_last_name", "Ёлкина-Петрова")
    page.click("button.primary")
    page.wait_for_selector("text=+7 900 123-45-67")
    page.screenshot(path=ARTIFACTS / "patient-detail.png", full_page=True)
    patient.refresh_from_db()
    assert (patient.last_name, patient.phone) == ("Ёлкина-Петрова", "+7 900 123-45-67")
