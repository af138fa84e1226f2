"""A new user in Chromium through the HTTPS front door: the platform at
https://localhost:<port>/, their site at https://<slug>.apps.localhost:<port>/ (Chromium
resolves *.localhost itself). Certificate errors are ignored for this browser context
only: the run's own CA is not in any trust store."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.caddy import CaddyProcess, stack_behind_caddy
from tests.e2e.conftest import wait_idle
from tests.e2e.test_browser import new_name, register, upload
from tests.live import LiveStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def https_stack() -> Iterator[tuple[LiveStack, CaddyProcess]]:
    from pools.engine import DockerEngine
    from pools.imagebuild import build_images

    build_images(DockerEngine(), runtimes=["nginx"], progress=lambda line: None)
    with stack_behind_caddy(instance=settings.PAAS_INSTANCE + "-e2e-https",
                            port_base=settings.LIVE_PORT_BASE + 100,
                            sizes="nginx=3,apache=0,python=0,node=0") as (stack, caddy):
        wait_idle(stack, "nginx", 3)  # one per attempt
        yield stack, caddy


@pytest.fixture
def https_context(browser: Browser,
                  https_stack: tuple[LiveStack, CaddyProcess]) -> Iterator[BrowserContext]:
    caddy = https_stack[1]
    ctx = browser.new_context(base_url=f"https://localhost:{caddy.https_port}",
                              ignore_https_errors=True, viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


def test_new_user_opens_their_site_on_its_https_hostname(https_context: BrowserContext) -> None:
    # Docker networks come and go on this machine (other runs): Chromium then aborts a
    # navigation with ERR_NETWORK_CHANGED. Only that error restarts the walk (a new user).
    for attempt in range(3):
        try:
            walk_to_the_https_site(https_context.new_page(), https_context)
            return
        except PlaywrightError as exc:
            if "ERR_NETWORK_CHANGED" not in str(exc) or attempt == 2:
                raise
            time.sleep(1)


def walk_to_the_https_site(page: Page, https_context: BrowserContext) -> None:
    register(page, new_name())
    page.get_by_role("button", name="Launch Nginx").click()
    expect(page).to_have_url(re.compile(r"/deployments/\d+/$"))
    https_url = page.locator("#https-url").get_attribute("href") or ""
    assert re.fullmatch(r"https://[a-z][a-z0-9]{11}\.apps\.localhost:\d+/", https_url)
    expect(page.locator("#https-pending")).to_have_count(0)  # routed before the claim
    upload(page, "index.html", b"<!doctype html><h1>Hello over HTTPS</h1>", "text/html")
    expect(page.locator(".msg-success")).to_contain_text("Uploaded 1 file")

    with https_context.expect_page() as opened:
        page.locator("#https-url").click()
    site = opened.value
    site.wait_for_load_state()
    expect(site.locator("h1")).to_have_text("Hello over HTTPS")
    assert site.url == https_url
