"""The user's web pages: every page renders, anonymous visitors go to the login page,
bob can neither see nor change alice's deployment, and every outcome is said in words."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, User
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from deployments.models import Deployment
from pools.models import PoolContainer, Recovery, SlotStatus
from tests.fakes import FakeEngine
from tests.unit.api_helpers import snapshot, upload, zip_of

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)
MB = 1024 * 1024


@pytest.fixture
def browser() -> Callable[..., Client]:
    """``browser(alice)``: a logged-in session; ``browser()``: an anonymous visitor."""

    def make(user: AbstractUser | None = None) -> Client:
        client = Client()
        if user is not None:
            client.force_login(cast(User, user))
        return client

    return make


@pytest.fixture
def deployment(alice: AbstractUser, warm: Callable, browser: Callable[..., Client]) -> Deployment:
    """alice's running nginx deployment, launched from her dashboard (two slots warm)."""
    warm("nginx", 2)
    response = browser(alice).post("/deployments/launch/", {"runtime": "nginx"})
    assert response.status_code == 302
    return Deployment.objects.get(user=alice)




def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.content.decode()


def said(response) -> list[str]:  # type: ignore[no-untyped-def]
    """The messages a followed response shows."""
    return [str(message) for message in response.context["messages"]]


def page_of(deployment: Deployment, action: str = "") -> str:
    return f"/deployments/{deployment.pk}/{action}"


# --- every page renders ---------------------------------------------------------------------
def test_landing_shows_the_runtimes_and_how_to_start(warm: Callable,
                                                     browser: Callable[..., Client]) -> None:
    warm("nginx", 2)
    response = browser().get("/")
    assert response.status_code == 200
    body = text(response)
    assert "Nginx" in body and "Python" in body and "/register/" in body and "/login/" in body
    assert re.search(r'data-live="runtime-nginx.idle">2<', body)


@pytest.mark.parametrize("url", ["/register/", "/login/"])
def test_account_pages_render(url: str, browser: Callable[..., Client]) -> None:
    response = browser().get(url)
    assert response.status_code == 200 and "csrfmiddlewaretoken" in text(response)


def test_dashboard_lists_runtimes_and_my_deployments(alice: AbstractUser, deployment: Deployment,
                                                     browser: Callable[..., Client]) -> None:
    body = text(browser(alice).get("/dashboard/"))
    assert re.search(r'data-live="runtime-nginx.idle">1<', body)  # one of two is alice's
    assert 'value="nginx"' in body and "Launch" in body
    assert f"http://testserver:{deployment.port}/" in body and ">running<" in body
    assert page_of(deployment) in body


def test_deployment_page_shows_url_status_files_logs_and_actions(
        alice: AbstractUser, deployment: Deployment, browser: Callable[..., Client]) -> None:
    client = browser(alice)
    client.post(page_of(deployment, "upload/"), {"file": upload("index.html", b"<h1>hi</h1>")})
    body = text(client.get(page_of(deployment)))
    assert f'href="http://testserver:{deployment.port}/"' in body and ">running<" in body
    assert "index.html" in body and "Recent logs" in body
    for action in ["upload/", "files/delete/", "restart/", "release/"]:
        assert f'action="{page_of(deployment, action)}"' in body
    assert "Last recovered" not in body


def test_a_recovery_is_shown_and_the_page_refreshes_while_it_runs(
        alice: AbstractUser, deployment: Deployment, browser: Callable[..., Client]) -> None:
    slot = deployment.slot
    assert slot is not None
    PoolContainer.objects.filter(pk=slot.pk).update(status=SlotStatus.RECOVERING)
    Recovery.objects.create(slot=slot, owner=alice, runtime_name="nginx", port=slot.port,
                            generation=slot.generation, reason="container exited (137)")
    body = text(browser(alice).get(page_of(deployment)))
    assert ">recovering<" in body and "being replaced" in body
    assert "Last recovered" in body and "container exited (137)" in body
    assert '<meta http-equiv="refresh"' in body  # inside <noscript>: JS polls instead
    PoolContainer.objects.filter(pk=slot.pk).update(status=SlotStatus.ASSIGNED)
    body = text(browser(alice).get(page_of(deployment)))
    assert ">running<" in body and "Last recovered" in body
    assert '<meta http-equiv="refresh"' not in body  # nothing is changing


def test_every_form_carries_a_csrf_token(alice: AbstractUser, deployment: Deployment,
                                         browser: Callable[..., Client]) -> None:
    client = browser(alice)
    client.post(page_of(deployment, "upload/"), {"file": upload("a.html", b"a")})
    for url in ["/dashboard/", page_of(deployment), page_of(deployment, "release/")]:
        body = text(client.get(url))
        assert body.count('method="post"') == body.count("csrfmiddlewaretoken") > 0, url


def test_a_post_without_the_csrf_token_is_refused(alice: AbstractUser, warm: Callable) -> None:
    warm("nginx", 1)
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast(User, alice))
    assert client.post("/deployments/launch/", {"runtime": "nginx"}).status_code == 403
    assert not Deployment.objects.exists()


# --- who may see what --------------------------------------------------------------------------
USER_PAGES = ["/dashboard/", "/deployments/1/", "/deployments/1/release/"]
USER_ACTIONS = ["/deployments/launch/", "/deployments/1/upload/", "/deployments/1/files/delete/",
                "/deployments/1/restart/", "/deployments/1/release/"]


@pytest.mark.parametrize("url", USER_PAGES)
def test_anonymous_visitors_are_sent_to_login(url: str, browser: Callable[..., Client]) -> None:
    response = browser().get(url)
    assert response.status_code == 302 and response["Location"] == f"/login/?next={url}"


@pytest.mark.parametrize("url", USER_ACTIONS)
def test_anonymous_actions_are_sent_to_login(url: str, browser: Callable[..., Client]) -> None:
    response = browser().post(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_bob_gets_404_on_alices_deployment_and_changes_nothing(
        alice: AbstractUser, bob: AbstractUser, deployment: Deployment,
        browser: Callable[..., Client], fake_engine: FakeEngine) -> None:
    browser(alice).post(page_of(deployment, "upload/"), {"file": upload("index.html", b"mine")})
    before = snapshot(fake_engine)
    bob_client = browser(bob)
    assert bob_client.get(page_of(deployment)).status_code == 404
    assert bob_client.get(page_of(deployment, "release/")).status_code == 404
    posts = {
        "upload/": {"file": upload("index.html", b"bob was here")},
        "files/delete/": {"path": "index.html"},
        "restart/": {},
        "release/": {"confirmed": "yes"},
    }
    for action, data in posts.items():
        assert bob_client.post(page_of(deployment, action), data).status_code == 404, action
    assert snapshot(fake_engine) == before
    assert f"{deployment.port}" not in text(bob_client.get("/dashboard/"))


# --- launch ---------------------------------------------------------------------------------------
def test_launch_lands_on_the_new_deployment_page(alice: AbstractUser, warm: Callable,
                                                 browser: Callable[..., Client]) -> None:
    warm("nginx", 1)
    response = browser(alice).post("/deployments/launch/", {"runtime": "nginx"}, follow=True)
    deployment = Deployment.objects.get(user=alice)
    assert response.redirect_chain == [(page_of(deployment), 302)]
    assert any("running on port" in message for message in said(response))


def test_an_exhausted_pool_is_said_in_words(alice: AbstractUser, warm: Callable,
                                            browser: Callable[..., Client]) -> None:
    warm("nginx", 1)
    client = browser(alice)
    client.post("/deployments/launch/", {"runtime": "nginx"})
    response = client.post("/deployments/launch/", {"runtime": "nginx"}, follow=True)
    assert response.redirect_chain[-1][0] == "/dashboard/"
    assert said(response)[-1] == ("No idle nginx container is available right now; "
                                  "try again in a moment.")


def test_the_quota_is_said_in_words(settings: SettingsWrapper, alice: AbstractUser,
                                    warm: Callable, browser: Callable[..., Client]) -> None:
    settings.PAAS_USER_QUOTA = 1
    warm("nginx", 2)
    client = browser(alice)
    client.post("/deployments/launch/", {"runtime": "nginx"})
    response = client.post("/deployments/launch/", {"runtime": "nginx"}, follow=True)
    assert "quota" in said(response)[-1] and "release one first" in said(response)[-1]
    assert Deployment.objects.filter(user=alice).count() == 1


def test_an_unknown_runtime_is_said_in_words(alice: AbstractUser, warm: Callable,
                                             browser: Callable[..., Client]) -> None:
    warm("nginx", 1)
    response = browser(alice).post("/deployments/launch/", {"runtime": "cobol"}, follow=True)
    assert said(response)[0].startswith("Unknown runtime 'cobol'")


# --- files -------------------------------------------------------------------------------------------
def test_upload_with_a_target_folder_then_delete(alice: AbstractUser, deployment: Deployment,
                                                 browser: Callable[..., Client],
                                                 fake_engine: FakeEngine) -> None:
    client = browser(alice)
    response = client.post(page_of(deployment, "upload/"),
                           {"file": [upload("a.css", b"a"), upload("b.css", b"b")],
                            "path": "css"}, follow=True)
    assert said(response) == ["Uploaded 2 files; they are live."]
    assert "css/a.css" in text(response) and "css/b.css" in text(response)
    container = deployment.slot.container_id  # type: ignore[union-attr]
    assert any(path.endswith("css/a.css") for path in fake_engine.files[container])
    response = client.post(page_of(deployment, "files/delete/"), {"path": "css/a.css"},
                           follow=True)
    assert said(response) == ["Deleted css/a.css."]
    assert ">css/a.css<" not in text(response) and ">css/b.css<" in text(response)


def test_a_site_archive_is_unpacked(alice: AbstractUser, deployment: Deployment,
                                    browser: Callable[..., Client]) -> None:
    site = zip_of({"index.html": b"<h1>home</h1>", "about.html": b"about",
                   "css/site.css": b"body{}"})
    response = browser(alice).post(page_of(deployment, "upload/"),
                                   {"file": upload("site.zip", site)}, follow=True)
    assert said(response) == ["Uploaded 3 files; they are live."]
    for path in ["index.html", "about.html", "css/site.css"]:
        assert path in text(response)


def test_an_upload_without_files_is_said_in_words(alice: AbstractUser, deployment: Deployment,
                                                  browser: Callable[..., Client]) -> None:
    response = browser(alice).post(page_of(deployment, "upload/"), {"path": ""}, follow=True)
    assert said(response) == ["Choose at least one file to upload."]


def test_an_unsafe_archive_is_refused_in_words(alice: AbstractUser, deployment: Deployment,
                                               browser: Callable[..., Client],
                                               fake_engine: FakeEngine) -> None:
    before = snapshot(fake_engine)
    evil = zip_of({"index.html": b"ok", "../../etc/evil": b"x"})
    response = browser(alice).post(page_of(deployment, "upload/"),
                                   {"file": upload("evil.zip", evil)}, follow=True)
    [message] = said(response)
    assert message.startswith("Unsafe upload rejected:") and "Nothing was stored." in message
    assert snapshot(fake_engine) == before


def test_a_file_too_large_is_refused_in_words(settings: SettingsWrapper, alice: AbstractUser,
                                              deployment: Deployment,
                                              browser: Callable[..., Client],
                                              fake_engine: FakeEngine) -> None:
    settings.PAAS_MAX_UPLOAD_MB = 1
    before = snapshot(fake_engine)
    response = browser(alice).post(page_of(deployment, "upload/"),
                                   {"file": upload("big.bin", b"x" * (MB + 1))}, follow=True)
    assert said(response) == ["File too large: Upload is over the 1 MB limit. Nothing was stored."]
    assert snapshot(fake_engine) == before


def test_restart_signals_the_container(alice: AbstractUser, deployment: Deployment,
                                       browser: Callable[..., Client],
                                       fake_engine: FakeEngine) -> None:
    signals = len(fake_engine.signals)
    response = browser(alice).post(page_of(deployment, "restart/"), follow=True)
    assert said(response) == ["Restarted."] and len(fake_engine.signals) > signals


# --- release ------------------------------------------------------------------------------------------
def test_release_asks_for_confirmation_first(alice: AbstractUser, deployment: Deployment,
                                             browser: Callable[..., Client]) -> None:
    client = browser(alice)
    for response in [client.get(page_of(deployment, "release/")),
                     client.post(page_of(deployment, "release/"))]:  # no JS: no confirmed=yes
        assert response.status_code == 200 and "Yes, release it" in text(response)
    deployment.refresh_from_db()
    assert deployment.is_active


def test_a_released_deployment_stays_readable_without_actions(
        alice: AbstractUser, deployment: Deployment, browser: Callable[..., Client]) -> None:
    client = browser(alice)
    response = client.post(page_of(deployment, "release/"), {"confirmed": "yes"}, follow=True)
    assert response.redirect_chain == [(page_of(deployment), 302)]
    assert said(response) == ["Released. The container and your files are destroyed."]
    body = text(response)
    assert "This deployment is released" in body and ">released<" in body
    main = body.split("<main", 1)[1].split("</main>")[0]
    assert 'method="post"' not in main  # no upload, delete, restart or release
    # every action now says it is released and does nothing
    response = client.post(page_of(deployment, "upload/"),
                           {"file": upload("x.html", b"x")}, follow=True)
    assert said(response) == ["This deployment was released; it can only be read."]
    response = client.post(page_of(deployment, "release/"), {"confirmed": "yes"}, follow=True)
    assert said(response) == ["This deployment is already released."]
    assert "Released" in text(client.get("/dashboard/"))


# --- accounts -------------------------------------------------------------------------------------------
def test_register_logs_the_new_user_in(browser: Callable[..., Client]) -> None:
    client = browser()
    response = client.post("/register/", {
        "username": "dora", "email": "dora@example.com",
        "password1": "a-Long-pass-42", "password2": "a-Long-pass-42"}, follow=True)
    assert response.redirect_chain == [("/dashboard/", 302)]
    assert response.context["user"].get_username() == "dora"
    assert get_user_model().objects.get(username="dora").email == "dora@example.com"


def test_register_explains_what_is_wrong(alice: AbstractUser, browser: Callable[..., Client]) -> None:
    response = browser().post("/register/", {
        "username": "ALICE", "email": "not-an-email", "password1": "123", "password2": "124"})
    body = text(response)
    assert response.status_code == 200
    assert "already exists" in body and "valid email" in body and "didn’t match" in body


def test_login_lands_on_the_dashboard(alice: AbstractUser, browser: Callable[..., Client]) -> None:
    response = browser().post("/login/", {"username": "alice", "password": "pw-Secret-123"},
                              follow=True)
    assert response.redirect_chain == [("/dashboard/", 302)]


def test_login_goes_back_to_the_page_asked_for(alice: AbstractUser,
                                               browser: Callable[..., Client]) -> None:
    response = browser().post("/login/?next=/deployments/7/", {
        "username": "alice", "password": "pw-Secret-123", "next": "/deployments/7/"})
    assert response["Location"] == "/deployments/7/"


def test_login_page_locks_out_like_the_api(settings: SettingsWrapper, alice: AbstractUser,
                                           browser: Callable[..., Client]) -> None:
    client = browser()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/login/", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200 and "Please enter a correct username" in text(response)
    response = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 429 and "Too many failed login attempts" in text(response)
    response = client.post("/login/", {"username": "alice", "password": "pw-Secret-123"})
    assert response.status_code == 429


def test_logout_is_a_post(alice: AbstractUser, browser: Callable[..., Client]) -> None:
    client = browser(alice)
    assert client.get("/logout/").status_code == 405
    assert client.get("/dashboard/").status_code == 200
    response = client.post("/logout/", follow=True)
    assert response.redirect_chain == [("/", 302)] and said(response) == ["You are logged out."]
    assert client.get("/dashboard/").status_code == 302
