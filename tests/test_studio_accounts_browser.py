"""The shared-server studio in a real browser (Debian's headless Chromium through Playwright):
alice signs in, trains a tiny model, draws samples and signs out; bob, in another browser
context, signs in and sees none of her work. Screenshots go to $SINGAN_SCREENSHOTS (docs/ for
the README) when that is set."""
import pytest

from conftest import optional

optional("gradio")
playwright = optional("playwright.sync_api")

from test_studio_accounts import PASSWORDS, Server  # noqa: E402
from test_studio_browser import CHROMIUM, WAIT_MS, open_tab, screenshot  # noqa: E402


@pytest.fixture(scope="module")
def browser_and_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("accounts_browser"))
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser, server
        finally:
            browser.close()
            server.close()


def signed_in_page(browser, server, user: str, shot: str = ""):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(server.url)
    assert page.url.endswith("/login")                     # the page asks who you are first
    page.locator("#username").fill(user)
    page.locator("#password").fill(PASSWORDS[user])
    if shot:
        screenshot(page, shot)
    page.locator("#login-button").click()
    page.get_by_text("singan studio").first.wait_for()
    page.locator("#model-info").wait_for()
    return page


def test_sign_in_train_sample_sign_out_and_a_second_user_sees_nothing(browser_and_server):
    browser, server = browser_and_server
    alice = signed_in_page(browser, server, "alice", "signin")
    alice.locator("#max-size input").fill("32")
    alice.locator("#min-size input").fill("15")
    alice.locator("#niter input").fill("10")
    alice.locator("#train-start").click()
    alice.wait_for_function(
        "() => document.querySelector('#train-status textarea').value.includes('finished')")
    assert "studio/alice/rocket" in alice.locator("#train-status textarea").input_value()
    alice.wait_for_function("() => document.querySelector('#model-info').innerText"
                            ".includes('alice/rocket')")
    open_tab(alice, "Samples")
    alice.locator("#samples-run").click()
    alice.locator("#samples-gallery img").nth(15).wait_for()
    screenshot(alice, "signed_in_samples")
    open_tab(alice, "My space")                             # what she holds against her quota
    alice.wait_for_function("() => document.querySelector('#space-usage textarea').value"
                            ".includes('of 2.00 GB used')")
    assert "results 0 B" not in alice.locator("#space-usage textarea").input_value()
    screenshot(alice, "my_space")

    bob = signed_in_page(browser, server, "bob")
    bob.wait_for_function("() => document.querySelector('#model-info').innerText"
                          ".includes('No model chosen')")
    assert "alice" not in bob.locator("#model-info").inner_text()
    assert "No training yet" in bob.locator("#train-status textarea").input_value()
    # the page has refreshed its model list (model-info follows it): nothing of alice's in it
    assert bob.locator("#model input").input_value() == ""
    assert "alice/rocket" not in bob.content()
    screenshot(bob, "second_user")

    alice.locator("#sign-out").click()
    alice.wait_for_url("**/login")
    alice.goto(server.url)
    assert alice.url.endswith("/login")                    # signed out: asked again
    assert alice.locator("#password").count() == 1
