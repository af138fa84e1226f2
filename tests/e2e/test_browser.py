"""A new user in a real browser: from the landing page to their own site on their own
port, then a site archive, an unsafe archive and the release."""

from __future__ import annotations

import re
import time
from itertools import count
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, FilePayload, Page, expect

from tests.unit.api_helpers import zip_of

pytestmark = pytest.mark.e2e
PASSWORD = "a-Long-pass-42"
_names = count(1)


def new_name() -> str:
    return f"user{int(time.time()) % 100000}x{next(_names)}"


def register(page: Page, username: str) -> None:
    """From the landing page, as a new user would: the sign-up link, the form."""
    page.goto("/")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))


def launch_nginx(page: Page) -> str:
    """Launch from the dashboard; returns the container's URL shown on its page."""
    page.get_by_role("button", name="Launch Nginx").click()
    expect(page).to_have_url(re.compile(r"/deployments/\d+/$"))
    expect(page.locator(".badge")).to_have_text("running")
    return page.locator("#site-url").get_attribute("href") or ""


def upload(page: Page, name: str, data: bytes, mime: str = "application/octet-stream") -> None:
    payload: FilePayload = {"name": name, "mimeType": mime, "buffer": data}
    page.get_by_label("Files or archives").set_input_files(files=[payload])
    page.get_by_role("button", name="Upload").click()


def open_site(context: BrowserContext, url: str, expect_text: str) -> Page:
    """Open the user's URL in a tab and wait until it shows ``expect_text``."""
    site = context.new_page()
    deadline = time.monotonic() + 15
    while True:
        site.goto(url)
        if expect_text in site.content() or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    expect(site.locator("body")).to_contain_text(expect_text)
    return site


def test_a_new_user_gets_their_page_online_in_under_a_minute(
        page: Page, context: BrowserContext, artifacts: Path) -> None:
    started = time.monotonic()
    register(page, new_name())
    expect(page.locator(".msg-success")).to_contain_text("Welcome")
    url = launch_nginx(page)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
    upload(page, "index.html", b"<!doctype html><h1>Hello from my own port</h1>", "text/html")
    expect(page.locator(".msg-success")).to_contain_text("Uploaded 1 file")
    with context.expect_page() as opened:
        page.locator("#site-url").click()  # target=_blank: the site opens in a new tab
    site = opened.value
    site.wait_for_load_state()
    if "Hello from my own port" not in site.content():
        site = open_site(context, url, "Hello from my own port")
    elapsed = time.monotonic() - started
    (artifacts / "clickthrough-seconds.txt").write_text(f"{elapsed:.1f}\n")
    print(f"\nlanding page -> own page served on own port: {elapsed:.1f} s")
    assert elapsed < 60

    page.bring_to_front()
    page.reload()
    expect(page.locator(".files")).to_contain_text("index.html")
    page.screenshot(path=str(artifacts / "deployment.png"), full_page=True)
    page.goto("/dashboard/")
    expect(page.locator("table.list")).to_contain_text(url)
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    # the status refreshes by itself: a stale value is put right by the next poll
    badge = page.locator("table.list .badge")
    badge.evaluate("el => { el.textContent = 'stale'; }")
    expect(badge).to_have_text("running", timeout=8_000)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.screenshot(path=str(artifacts / "dashboard-phone.png"), full_page=True)


def test_log_in_upload_a_site_refuse_an_unsafe_archive_and_release(
        page: Page, context: BrowserContext, artifacts: Path) -> None:
    username = new_name()
    register(page, username)
    page.get_by_role("button", name="Log out").click()
    expect(page.locator(".msg-info")).to_have_text("You are logged out.")
    page.screenshot(path=str(artifacts / "landing.png"), full_page=True)
    page.get_by_role("link", name="Log in").first.click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))

    url = launch_nginx(page)
    site = zip_of({"index.html": '<link rel="stylesheet" href="css/site.css"><h1>Home page</h1>'
                                 '<a href="about.html">About</a>',
                   "about.html": "<h1>About us</h1>",
                   "css/site.css": "h1 { color: rgb(200, 0, 0); }"})
    upload(page, "site.zip", site, "application/zip")
    expect(page.locator(".msg-success")).to_contain_text("Uploaded 3 files")
    for path in ["index.html", "about.html", "css/site.css"]:
        expect(page.locator(".files")).to_contain_text(path)
    tab = open_site(context, url, "Home page")
    expect(tab.locator("h1")).to_have_css("color", "rgb(200, 0, 0)")  # the stylesheet loads
    tab.get_by_role("link", name="About").click()
    expect(tab.locator("h1")).to_have_text("About us")

    page.bring_to_front()
    upload(page, "evil.zip", zip_of({"../../evil.html": "x"}), "application/zip")
    expect(page.locator(".msg-error")).to_contain_text("Unsafe upload rejected")
    expect(page.locator(".files")).not_to_contain_text("evil")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Release…").click()
    expect(page.locator(".msg-success")).to_contain_text("Released")
    expect(page.locator(".badge")).to_have_text("released")
    expect(page.locator("main")).to_contain_text("This deployment is released")
    expect(page.get_by_role("button", name="Upload")).to_have_count(0)
    page.screenshot(path=str(artifacts / "deployment-released.png"), full_page=True)


def test_without_javascript_release_asks_on_a_page(browser_nojs: Page) -> None:
    page = browser_nojs
    register(page, new_name())
    launch_nginx(page)
    page.get_by_role("button", name="Release…").click()
    expect(page.get_by_role("heading", name="Release this container?")).to_be_visible()
    page.get_by_role("button", name="Yes, release it").click()
    expect(page.locator(".badge")).to_have_text("released")
