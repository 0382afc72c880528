"""The viewer in a real browser (Debian's Chromium, driven by Playwright): open a study, zoom,
change the window, scroll a multi-frame image, measure, draw an annotation and find it after a
reload, open the comparison with a prior. Screenshots go to test-artifacts/ (printed)."""

import time

import numpy as np
import pytest

from accounts.audit import Actor
from accounts.tests.factories import PASSWORD
from patients.tests.test_browser import ARTIFACTS, page  # noqa: F401  (the shared fixture)
from studies.frame_urls import FrameFastPath
from studies.ingest import StudyFields, ingest_file
from studies.models import Annotation, FindingCode, Instance

from .dicom_samples import make_dataset, to_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class CountingFastPath(FrameFastPath):
    """The production WSGI wrapper, counting the frames it answered itself."""

    served = 0

    def serve(self, environ, start_response):
        result = super().serve(environ, start_response)
        self.served += result is not None
        return result


@pytest.fixture
def fast_path(live_server, settings, tmp_path):
    """The live server behind the signed-frame fast path, as mis/wsgi.py serves production."""
    settings.FRAME_CACHE_DIR = tmp_path / "frame-cache"
    httpd = live_server.thread.httpd
    plain = httpd.get_app()
    wrapped = CountingFastPath(plain)
    httpd.set_app(wrapped)
    yield wrapped
    httpd.set_app(plain)


def _wait_attr(locator, name: str, predicate, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        value = locator.get_attribute(name)
        if value is not None and predicate(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {name}; last {value!r}"
        time.sleep(0.1)


def _multi_frame(study_uid: str, date: str) -> bytes:
    """Five 128×128 frames; frame n is a ramp from n*100 - 1024 HU (a visible gradient)."""
    ramp = np.tile(np.arange(128, dtype=np.int16) * 8, (128, 1))
    stack = np.stack([ramp + n * 100 for n in range(5)]).astype(np.int16)
    return to_bytes(
        make_dataset(
            stack,
            StudyInstanceUID=study_uid,
            StudyDate=date,
            RescaleSlope="1",
            RescaleIntercept="-1024",
            WindowCenter="-500",
            WindowWidth="1000",
            PixelSpacing=["0.5", "0.5"],
        )
    )


def _import(user, data):
    result = ingest_file(actor=Actor(user=user), data=data, name="a.dcm", fields=StudyFields())
    assert result.status == "imported", result.message
    return Instance.objects.get(pk=result.instance_id)


def _pixel(page, viewer="#viewer-main"):  # noqa: F811
    return page.evaluate(
        f"Array.from(document.querySelector('{viewer} .viewer-canvas').getContext('2d')"
        ".getImageData(Math.floor(document.querySelector('" + viewer + " .viewer-canvas').width/2),"
        " Math.floor(document.querySelector('" + viewer + " .viewer-canvas').height/2), 1, 1).data)"
    )


def test_radiologist_reads_windows_scrolls_annotates_and_compares(
    page,  # noqa: F811
    live_server,
    fast_path,
    radiologist,
    patient,
):
    print(f"\nviewer screenshots: {ARTIFACTS}")
    # A transactional test starts without the seeded list: one label offered for every category.
    FindingCode.objects.get_or_create(
        code="other", defaults={"name_en": "Other finding", "name_ru": "Другая находка"}
    )
    current = _import(radiologist, _multi_frame("1.2.826.0.1.77.1", "20261120"))
    prior = _import(radiologist, _multi_frame("1.2.826.0.1.77.2", "20250101"))
    study = current.series.study
    assert prior.series.study.patient_id == study.patient_id

    page.goto(f"{live_server.url}/studies/{study.pk}/")
    page.fill("#id_username", "radiologist")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/studies/{study.pk}/")
    viewer = page.locator("#viewer-main")
    _wait_attr(viewer, "data-loaded", lambda v: v == f"{current.pk}:0")
    page.screenshot(path=ARTIFACTS / "viewer-open.png", full_page=True)

    # Zoom: keys and Ctrl+wheel.
    fitted = float(viewer.get_attribute("data-zoom"))
    viewer.locator(".viewer-canvas").click()
    page.keyboard.press("+")
    assert float(viewer.get_attribute("data-zoom")) == pytest.approx(fitted * 1.25, rel=1e-3)
    box = viewer.locator(".viewer-canvas").bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    _wait_attr(viewer, "data-zoom", lambda v: float(v) > fitted * 1.3)
    page.keyboard.press("f")
    assert float(viewer.get_attribute("data-zoom")) == pytest.approx(fitted, rel=1e-3)

    # Window: the header default, a preset by key, right-drag; the pixels change in the page.
    assert viewer.get_attribute("data-window") == "-500,1000"
    before = _pixel(page)
    page.keyboard.press("4")  # bone
    assert viewer.get_attribute("data-window") == "300,1500"
    assert _pixel(page) != before
    page.mouse.move(*centre)
    page.mouse.down(button="right")
    page.mouse.move(centre[0] + 60, centre[1] - 40, steps=4)
    page.mouse.up(button="right")
    centre_after, width_after = map(int, viewer.get_attribute("data-window").split(","))
    assert width_after > 1500 and centre_after > 300
    text = viewer.locator("[data-info=pixel]").inner_text()
    assert "HU" in text  # the value under the cursor
    page.screenshot(path=ARTIFACTS / "viewer-window.png", full_page=True)

    # Stack scroll through the multi-frame image: keys, wheel, slider.
    page.keyboard.press("ArrowDown")
    _wait_attr(viewer, "data-loaded", lambda v: v == f"{current.pk}:1")
    page.mouse.move(*centre)
    page.mouse.wheel(0, 100)
    _wait_attr(viewer, "data-loaded", lambda v: v == f"{current.pk}:2")
    viewer.locator(".viewer-slider").fill("4")
    _wait_attr(viewer, "data-loaded", lambda v: v == f"{current.pk}:4")
    assert "5" in viewer.locator("[data-info=position]").inner_text()
    assert fast_path.served >= 5  # the frames came through their signed URLs
    page.keyboard.press("Home")
    _wait_attr(viewer, "data-loaded", lambda v: v == f"{current.pk}:0")

    # Distance: 0.5 mm pixels.
    page.click("#viewer-main [data-tool=measure]")
    page.mouse.move(centre[0] - 50, centre[1])
    page.mouse.down()
    page.mouse.move(centre[0] + 50, centre[1], steps=3)
    page.mouse.up()
    measured = viewer.get_attribute("data-measurement")
    assert measured.endswith(" mm")
    zoom = float(viewer.get_attribute("data-zoom"))
    assert float(measured.split()[0]) == pytest.approx(100 / zoom * 0.5, rel=0.05)

    # Annotation: draw a rectangle on frame 0, label it, save, reload, find it.
    page.click("#viewer-main [data-tool=rect]")
    page.mouse.move(centre[0] - 40, centre[1] - 30)
    page.mouse.down()
    page.mouse.move(centre[0] + 40, centre[1] + 30, steps=4)
    page.mouse.up()
    form = viewer.locator(".annotation-form")
    form.wait_for(state="visible")
    form.locator("select[name=label]").select_option("other")
    form.locator("input[name=angle]").fill("20")
    form.locator("textarea[name=comment]").fill("Инфильтрат справа")
    form.locator("button[type=submit]").click()
    _wait_attr(viewer, "data-annotations", lambda v: v == "1")
    saved = Annotation.objects.get()
    assert (saved.instance_id, saved.frame, saved.shape, saved.angle) == (current.pk, 0, "rect", 20)
    assert saved.author_id == radiologist.pk and saved.width > 10
    page.screenshot(path=ARTIFACTS / "viewer-annotation.png", full_page=True)
    page.reload()
    _wait_attr(viewer, "data-loaded", lambda v: v == f"{current.pk}:0")
    _wait_attr(viewer, "data-annotations", lambda v: v == "1")
    assert "Инфильтрат справа" in viewer.locator(".viewer-annotations").inner_text()
    page.keyboard.press("h")

    # Help overlay.
    viewer.locator(".viewer-canvas").click()
    page.keyboard.press("?")
    assert viewer.locator(".viewer-help").is_visible()
    page.screenshot(path=ARTIFACTS / "viewer-help.png", full_page=True)
    page.keyboard.press("Escape")
    assert not viewer.locator(".viewer-help").is_visible()

    # Comparison with the prior: linked window, synchronised scrolling.
    viewer.locator("[data-compare]").select_option(str(prior.series.study_id))
    page.wait_for_url(f"**/studies/{study.pk}/compare/{prior.series.study_id}/")
    left, right = page.locator("#viewer-current"), page.locator("#viewer-prior")
    _wait_attr(left, "data-loaded", lambda v: v == f"{current.pk}:0")
    _wait_attr(right, "data-loaded", lambda v: v == f"{prior.pk}:0")
    left.locator(".viewer-canvas").click()
    page.keyboard.press("3")  # lung, in the left viewer
    assert left.get_attribute("data-window") == "-600,1500"
    assert right.get_attribute("data-window") == "-600,1500"
    page.keyboard.press("End")
    _wait_attr(right, "data-loaded", lambda v: v == f"{prior.pk}:4")
    page.screenshot(path=ARTIFACTS / "viewer-compare.png", full_page=True)


def test_a_large_radiograph_loads_downsampled_then_full_and_shows_an_overlay(
    page,  # noqa: F811
    live_server,
    fast_path,
    clinician,
    radiologist,
    patient,
):
    import io

    from django.core.files.base import ContentFile
    from PIL import Image

    from studies.models import DerivedImage

    pixels = np.tile(np.arange(2600, dtype=np.uint16), (2600, 1)) % 4096
    cr = _import(
        radiologist,
        to_bytes(make_dataset(pixels, Modality="CR", PhotometricInterpretation="MONOCHROME1")),
    )
    heat = io.BytesIO()
    Image.new("RGBA", (260, 260), (255, 0, 0, 255)).save(heat, format="PNG")
    overlay = DerivedImage(instance=cr, kind=DerivedImage.Kind.HEATMAP, source="m@1", label="x")
    overlay.file.save("heat.png", ContentFile(heat.getvalue()), save=True)

    page.goto(f"{live_server.url}/studies/{cr.series.study_id}/viewer/")
    page.fill("#id_username", "clinician")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    viewer = page.locator("#viewer-main")
    _wait_attr(viewer, "data-loaded", lambda v: v == f"{cr.pk}:0")
    assert viewer.get_attribute("data-scale") == "2"  # 2600 px > 2048: half the pixels first
    assert viewer.locator("[data-tool=rect]").count() == 0  # clinicians read, they do not draw
    overlays = viewer.locator(".viewer-overlays")
    overlays.wait_for(state="visible")
    deadline = time.monotonic() + 15
    while (with_overlay := _pixel(page))[0] <= with_overlay[1] + 40:  # red shows at 50 %
        assert time.monotonic() < deadline, f"no overlay drawn: {with_overlay}"
        time.sleep(0.1)
    overlays.locator("[data-overlay-toggle]").uncheck()
    without = _pixel(page)
    assert abs(without[0] - without[1]) < 3  # grey again
    page.screenshot(path=ARTIFACTS / "viewer-large-overlay.png", full_page=True)
    viewer.locator(".viewer-canvas").click()
    page.keyboard.press("1")  # 1:1 needs the full-resolution pixels
    _wait_attr(viewer, "data-scale", lambda v: v == "1")
    assert float(viewer.get_attribute("data-zoom")) == pytest.approx(1.0)
    assert fast_path.served == 2  # downsampled (frame cache), then the stored pixels
    page.screenshot(path=ARTIFACTS / "viewer-large-full.png", full_page=True)


def test_the_viewer_renews_its_signed_frame_urls_before_they_expire(
    page,  # noqa: F811
    live_server,
    fast_path,
    settings,
    radiologist,
    patient,
):
    settings.FRAME_URL_TTL = 20  # inside the viewer's renewal margin (30 s) from the start
    current = _import(radiologist, _multi_frame("1.2.826.0.1.77.3", "20261121"))
    study_id = current.series.study_id
    page.goto(f"{live_server.url}/studies/{study_id}/viewer/")
    page.fill("#id_username", "radiologist")
    page.fill("#id_password", PASSWORD)
    renewal = f"/api/v1/studies/{study_id}/viewer/"
    with page.expect_request(lambda request: renewal in request.url, timeout=15000):
        page.click("button[type=submit]")
    viewer = page.locator("#viewer-main")
    _wait_attr(viewer, "data-loaded", lambda v: v == f"{current.pk}:0")
    viewer.locator(".viewer-canvas").click()
    page.keyboard.press("End")
    _wait_attr(viewer, "data-loaded", lambda v: v == f"{current.pk}:4")
    deadline = time.monotonic() + 10
    while fast_path.served < 5:  # every frame (shown or prefetched) through a signed URL
        assert time.monotonic() < deadline, f"{fast_path.served} of 5 frames signed"
        time.sleep(0.1)
