"""The web studio in a real browser: Debian's headless Chromium driven by Playwright (pointed
at /usr/bin/chromium; nothing downloads a browser). Loads the page, trains a tiny model and
watches its progress reach the end, draws a mask with the mouse on Harmonize and runs it,
uploads a text file renamed .png, and takes a screenshot of each tab (written to
$SINGAN_SCREENSHOTS/studio_*.png when that is set, e.g. SINGAN_SCREENSHOTS=docs for the
README's pictures; otherwise kept in memory, so that running the tests never changes the
checkout). The page is checked as a new user meets it: the chosen model described at once, its
real scale ranges on the sliders, the result the largest picture of its tab."""
import os
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import ROOT, optional

optional("gradio")
playwright = optional("playwright.sync_api")

from singan import SinGANConfig, load_model, train_model  # noqa: E402
from test_studio import Studio  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("SINGAN_SCREENSHOTS")
HUBBLE = ROOT / "Input" / "Images" / "hubble_deep_field.png"
WAIT_MS = 90_000

# The page's tests train a model first (and one in the page): -m "not slow" skips them.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studio_browser")
    model = train_model(HUBBLE, SinGANConfig(max_size=40, min_size=15, niter=3), device="cpu",
                        seed=0, root=folder / "TrainedModels", show_progress=False,
                        log=lambda line: None)
    return folder, load_model(model.folder)


@pytest.fixture(scope="module")
def page(trained):
    folder, _ = trained
    server = Studio(folder)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS)
        page.goto(server.url)
        page.get_by_text("singan studio").first.wait_for()
        try:
            yield page
        finally:
            browser.close()
            server.stop()


def screenshot(page, tab: str) -> None:
    png = page.screenshot(full_page=True)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000, tab   # a page, not a blank
    if SCREENSHOTS:
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"studio_{tab}.png").write_bytes(png)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def fetch_image(page, selector: str) -> np.ndarray:
    src = page.locator(selector).get_attribute("src")
    return iio.imread(page.request.get(src).body())[:, :, :3].astype(int)


def shown_pixels(locator) -> np.ndarray:
    """What the browser shows of an element, as pixels [h, w, 3] (its canvases are WebGL's,
    whose own buffers cannot be read back)."""
    return iio.imread(locator.screenshot())[:, :, :3].astype(int)


def wait_until_shown(page, locator, check, what: str, timeout_s: float = 30) -> np.ndarray:
    """Poll what `locator` shows until check(pixels) holds (the editor draws asynchronously:
    its image, then each stroke); the pixels, or a failure naming `what`."""
    for _ in range(int(timeout_s * 10)):
        pixels = shown_pixels(locator)
        if check(pixels):
            return pixels
        page.wait_for_timeout(100)
    raise AssertionError(f"the editor never showed {what}")


def slider_range(page, elem_id: str):
    handle = page.locator(f"#{elem_id} input[type=range]")
    return int(float(handle.get_attribute("min"))), int(float(handle.get_attribute("max")))


def area(page, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    return box["width"] * box["height"]


def test_a_new_page_describes_the_chosen_model(page, trained):
    _, model = trained
    info = page.locator("#model-info")
    page.wait_for_function("() => document.querySelector('#model-info').innerText.includes("
                           "'SinGAN')")
    assert model.describe() in info.inner_text()
    last = model.num_scales - 1
    for tab, slider, first in (("Samples", "samples-start", 0),
                               ("Harmonize / Edit", "harmonize-scale", 1),
                               ("Animation", "animation-start", 0)):
        open_tab(page, tab)
        assert slider_range(page, slider) == (first, last), tab
    open_tab(page, "Train")
    assert page.locator("#min-size input, #min-size textarea").first.input_value() == ""


def test_train_shows_progress_to_the_end(page):
    page.locator("#max-size input").fill("32")
    page.locator("#min-size input").fill("15")
    page.locator("#niter input").fill("10")
    page.locator("#train-start").click()
    page.wait_for_function(
        "() => document.querySelector('#train-status textarea').value.includes('finished')")
    status = page.locator("#train-status textarea").input_value()
    assert "SinGAN rocket/" in status and "iteration 10 of 10" in status
    assert page.locator("#train-percent").inner_text() == "100%"
    assert page.locator("#train-losses canvas, #train-losses svg").count() > 0   # the plot
    screenshot(page, "train")


def test_samples_gallery(page):
    open_tab(page, "Samples")
    page.locator("#samples-run").click()
    page.locator("#samples-gallery img").nth(15).wait_for()
    screenshot(page, "samples")


def test_harmonize_a_mask_drawn_with_the_mouse(page):
    open_tab(page, "Harmonize / Edit")
    page.get_by_role("button", name="Start from the training image").click()
    canvas = page.locator("#harmonize-editor canvas").first
    # the training image is in the editor (not one flat colour): then draw on it
    before = wait_until_shown(page, canvas, lambda px: px.std() > 5, "the training image")
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 30, y)
    page.mouse.down()
    page.mouse.move(x + 30, y, steps=12)                # a stroke through the image's centre
    page.mouse.up()
    h, w = before.shape[:2]
    wait_until_shown(page, canvas,                      # the stroke is drawn: then run
                     lambda px: np.abs(px - before)[h // 2 - 2:h // 2 + 3,
                                                    w // 2 - 5:w // 2 + 6].mean() > 30,
                     "the stroke")
    page.locator("#harmonize-run").click()
    page.wait_for_function("() => document.querySelector('#harmonize-result img') || "
                           "document.querySelector('.toast-body')")
    assert page.locator(".toast-body").count() == 0, page.locator(".toast-body").all_inner_texts()
    # the result's <img> appears before its picture has loaded and been laid out (0 x 0 then:
    # seen once in CI): measure it once it has
    page.wait_for_function("() => { const img = document.querySelector('#harmonize-result img');"
                           " return img.complete && img.naturalWidth > 0 &&"
                           " img.getBoundingClientRect().width > 0 }", timeout=10_000)
    naive = fetch_image(page, "#harmonize-naive img")
    blended = fetch_image(page, "#harmonize-result img")
    assert naive.shape == blended.shape
    shown = area(page, "#harmonize-result img")
    assert shown > 4 * area(page, "#harmonize-naive img")      # the result is the big picture
    h, w = naive.shape[:2]
    centre = np.abs(blended - naive)[h // 2 - 2:h // 2 + 3, w // 2 - 3:w // 2 + 4]
    assert centre.max() > 3, "the result does not differ inside the stroke"
    screenshot(page, "harmonize")


def test_upload_that_is_not_an_image_gets_the_message(page, tmp_path):
    open_tab(page, "Train")
    fake = tmp_path / "holiday.png"
    fake.write_text("not a picture at all")
    page.locator("#train-upload input[type=file]").set_input_files(str(fake))
    message = page.get_by_text("cannot read holiday.png as an image").first
    message.wait_for()
    assert "holiday.png" in message.inner_text()
    assert page.get_by_text("Traceback").count() == 0


def close_messages(page) -> None:
    """Dismiss the messages an earlier test left on the page."""
    for button in page.locator(".toast-close").all():
        button.click()
    page.wait_for_function("() => !document.querySelector('.toast-body')")


def test_paint_and_sr_show_large_results(page):
    close_messages(page)
    for name, tab, run in (("Paint", "paint", "#paint-run"), ("Super-resolution", "sr",
                                                              "#sr-run")):
        open_tab(page, name)
        page.locator(run).click()
        page.wait_for_function(f"() => document.querySelector('#{tab}-result img') || "
                               "document.querySelector('.toast-body')")
        assert page.locator(".toast-body").count() == 0, page.locator(
            ".toast-body").all_inner_texts()
        page.wait_for_function(f"() => document.querySelector('#{tab}-result img')"
                               ".getBoundingClientRect().width > 300", timeout=10_000)
        screenshot(page, tab)


def test_screenshot_of_the_animation_tab(page):
    open_tab(page, "Animation")
    page.locator("#animation-gif").wait_for(state="visible")
    screenshot(page, "animation")
    assert page.locator("#animation-gif").is_visible()
    page.get_by_label("MP4 (H.264: far smaller, plays everywhere)").check()
    page.locator("#animation-video").wait_for(state="visible")   # MP4s play in a video player
    assert not page.locator("#animation-gif").is_visible()
