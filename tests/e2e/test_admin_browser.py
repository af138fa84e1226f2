"""An operator in a real Chromium: log in to the admin, select a user's container, run
**release**, and read what happened."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.e2e.test_browser import launch_nginx, new_name, register
from tests.live import LiveStack

pytestmark = pytest.mark.e2e
OPERATOR, OPERATOR_PASSWORD = "ops", "ops-Pass-4242"


def test_operator_releases_a_users_container_from_the_admin(
        stack: LiveStack, context: BrowserContext, browser) -> None:
    stack.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_superuser('{OPERATOR}', 'ops@example.com', "
        f"'{OPERATOR_PASSWORD}')"))
    user_page = context.new_page()
    username = new_name()
    register(user_page, username)
    launch_nginx(user_page)
    deployment_url = user_page.url

    ops = browser.new_context(base_url=stack.url).new_page()
    ops.goto("/admin/")
    ops.get_by_label("Username").fill(OPERATOR)
    ops.get_by_label("Password").fill(OPERATOR_PASSWORD)
    ops.get_by_role("button", name="Log in").click()
    expect(ops.locator("#pools-overview")).to_contain_text("nginx")
    ops.goto(f"/admin/pools/poolcontainer/?q={username}")
    row = ops.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(re.compile("assigned", re.IGNORECASE))
    row.locator("input.action-select").check()
    ops.locator("select[name=action]").select_option("release")
    ops.get_by_role("button", name="Go").click()
    expect(ops.locator(".messagelist")).to_contain_text(re.compile(r"released.*was " + username,
                                                                   re.IGNORECASE))
    # the user sees it too: their deployment is released
    user_page.goto(deployment_url)
    expect(user_page.locator(".badge")).to_have_text("released")
