"""Browser tests: Debian's Chromium, driven by Playwright, against the live stack (web,
cluster, watcher) on the real Docker engine, under this run's own instance label."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.live import ROOT, LiveStack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
NGINX_SLOTS = 3  # one per test that launches, so none waits for a recycle
PYTHON_SLOTS = 1  # the live-logs test


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    from pools.engine import LABEL_INSTANCE, DockerEngine
    from pools.imagebuild import build_images

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    engine = DockerEngine()
    build_images(engine, runtimes=["nginx", "python"], progress=lambda line: None, prune=False)
    instance = settings.PAAS_INSTANCE + "-e2e"
    # Created here, once: `pool init` creates slots in parallel threads, and racing
    # creators can leave several networks of one name (Docker allows that).
    engine.ensure_network(f"paas-{instance}", {LABEL_INSTANCE: instance})
    with LiveStack(instance=instance, port_base=settings.LIVE_PORT_BASE,
                   sizes=f"nginx={NGINX_SLOTS},apache=0,python={PYTHON_SLOTS},node=0") as live:
        wait_idle(live, "nginx", NGINX_SLOTS)
        wait_idle(live, "python", PYTHON_SLOTS)
        yield live


def wait_idle(live: LiveStack, runtime: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = json.loads(live.manage("pool", "status", "--json").stdout)
        idle = next(row["idle"] for row in rows if row["runtime"] == runtime)
        if idle >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {idle} idle {runtime} slots; worker log:\n"
                               + live.log("worker")[-3000:])
        time.sleep(0.5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser, stack: LiveStack) -> Iterator[BrowserContext]:
    """A fresh visitor (no cookies) with a laptop-sized window."""
    ctx = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def browser_nojs(browser: Browser, stack: LiveStack) -> Iterator[Page]:
    """A visitor whose browser runs no JavaScript: every page must still work."""
    ctx = browser.new_context(base_url=stack.url, java_script_enabled=False)
    ctx.set_default_timeout(15_000)
    yield ctx.new_page()
    ctx.close()
