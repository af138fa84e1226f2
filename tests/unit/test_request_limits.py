"""A request body over the limit is refused before it is read or spooled, on every route:
by its declared length (413; JSON under /api/), by a missing length (411), and on the
upload routes while it streams (the limiting upload handler)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, cast

import pytest
from django.contrib.auth.models import AbstractUser, User
from django.test import Client
from django.test.client import encode_multipart
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from deployments.models import Deployment
from tests.fakes import FakeEngine
from tests.unit.api_helpers import snapshot

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)
MB = 1024 * 1024
GIB = 1024 * MB
BOUNDARY = "paasboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


class Untouchable(io.RawIOBase):
    """A request body that must never be read."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")

    def readline(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body was read")


class Counting(io.BytesIO):
    """A request body that remembers how much of it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


@pytest.fixture
def deployment(alice: AbstractUser, warm: Callable) -> Deployment:
    warm("nginx", 2)
    client = Client()
    client.force_login(cast(User, alice))
    client.post("/deployments/launch/", {"runtime": "nginx"})
    return Deployment.objects.get(user=alice)


def _input(stream: object) -> dict[str, Any]:
    return {"wsgi.input": stream}


def _declared(client: Client, path: str, length: int | str) -> object:
    # With no data the test client sets no body headers: these are the request's own.
    return client.post(path, data=b"", content_type="application/octet-stream",
                       CONTENT_TYPE=MULTIPART, CONTENT_LENGTH=str(length),
                       **_input(Untouchable()))


@pytest.mark.parametrize("path", ["/login/", "/register/", "/admin/login/",
                                  "/deployments/launch/", "/logout/"])
def test_a_gib_declared_page_post_is_refused_unread(path: str) -> None:
    response = _declared(Client(), path, GIB)
    assert response.status_code == 413  # type: ignore[attr-defined]
    assert response["Content-Type"].startswith("text/plain")  # type: ignore[index]
    assert b"over the 1 MB limit" in response.content  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/auth/register/",
                                  "/api/deployments/", "/api/deployments/1/restart/"])
def test_a_large_api_body_is_a_json_413_unread(path: str) -> None:
    response = _declared(Client(), path, 2 * MB)
    assert response.status_code == 413  # type: ignore[attr-defined]
    assert response.json() == {  # type: ignore[attr-defined]
        "detail": "the request body is over the 1 MB limit", "code": "too_large"}


def test_the_small_limit_is_a_setting(settings: Settings) -> None:
    settings.PAAS_MAX_REQUEST_KB = 4
    response = Client().post("/api/auth/token/", {"username": "a" * 5000, "password": "x"},
                             content_type="application/json")
    assert response.status_code == 413
    assert response.json()["detail"] == "the request body is over the 4 KB limit"


@pytest.mark.parametrize("page", [False, True])
def test_an_upload_over_the_limit_is_refused_unread(
        settings: Settings, alice: AbstractUser, deployment: Deployment,
        fake_engine: FakeEngine, page: bool) -> None:
    settings.PAAS_MAX_UPLOAD_MB = 1
    settings.PAAS_MAX_UPLOAD_FILES = 10
    client = Client()
    client.force_login(cast(User, alice))
    before = snapshot(fake_engine)
    path = (f"/deployments/{deployment.pk}/upload/" if page
            else f"/api/deployments/{deployment.pk}/files/")
    response = _declared(client, path, 4 * MB)
    assert response.status_code == 413  # type: ignore[attr-defined]
    assert snapshot(fake_engine) == before


@pytest.mark.parametrize("page", [False, True])
def test_an_upload_is_stopped_while_streaming_at_the_cap(
        settings: Settings, alice: AbstractUser, deployment: Deployment,
        fake_engine: FakeEngine, page: bool) -> None:
    """A declared length just inside the body limit, with file data past the file cap:
    the parse stops at the cap; the rest of the body is never read."""
    settings.PAAS_MAX_UPLOAD_MB = 1
    settings.PAAS_MAX_UPLOAD_FILES = 1  # file cap 2 MB + 2 KB, body limit 3 MB + 2 KB
    client = Client()
    client.force_login(cast(User, alice))
    before = snapshot(fake_engine)
    body = encode_multipart(BOUNDARY, {"file": io.BytesIO(b"x" * (3 * MB)), "path": ""})
    stream = Counting(body)
    path = (f"/deployments/{deployment.pk}/upload/" if page
            else f"/api/deployments/{deployment.pk}/files/")
    response = client.post(path, data=b"", content_type="application/octet-stream",
                           CONTENT_TYPE=MULTIPART, CONTENT_LENGTH=str(len(body)),
                           **_input(stream))
    assert response.status_code == 413
    assert stream.taken < 2 * MB + 200 * 1024  # stopped near the cap, not at 3 MB
    assert snapshot(fake_engine) == before


def test_a_body_without_a_length_is_refused() -> None:
    response = Client().post("/api/auth/token/", data=b"", content_type="application/json",
                             CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked",
                             **_input(Untouchable()))
    assert response.status_code == 411
    assert response.json()["code"] == "length_required"


def test_a_bad_length_header_is_a_400() -> None:
    response = _declared(Client(), "/api/auth/token/", "lots")
    assert response.status_code == 400  # type: ignore[attr-defined]


def test_uploads_within_the_limits_still_work(alice: AbstractUser, deployment: Deployment,
                                              api: Callable[..., APIClient]) -> None:
    response = api(alice).post(f"/api/deployments/{deployment.pk}/files/",
                               {"file": io.BytesIO(b"<p>hi</p>"), "path": "site"},
                               format="multipart")
    assert response.status_code == 201, response.content
