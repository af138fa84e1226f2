"""Paths longer or deeper than the file system allows (NAME_MAX 255 bytes a component,
PATH_MAX 4096 bytes in all): archive members, upload names, the target folder and delete
paths get a 400 naming the field (the page: an error message), never a 500, and nothing
is stored."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from typing import cast

import pytest
from django.contrib.auth.models import AbstractUser, User
from django.test import Client
from rest_framework.test import APIClient

from deployments.models import Deployment
from pools import content
from tests.fakes import FakeEngine
from tests.unit.api_helpers import snapshot, tar_member, tar_of, upload, zip_of

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)

DEEP = "/".join(["d" * 250] * 20) + "/index.html"  # every component fits, the whole does not
LONG_NAME = "n" * 300 + ".html"


@pytest.fixture
def launched(alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> dict:
    warm("nginx", 2)
    response = api(alice).post("/api/deployments/", {"runtime": "nginx"}, format="json")
    assert response.status_code == 201
    return response.json()


def _tar_with(name: str) -> bytes:
    return tar_of([tar_member(name)], {name: b"<p>x</p>"})


@pytest.mark.parametrize("archive", [
    pytest.param(("deep.zip", zip_of({DEEP: "x"})), id="zip-deep"),
    pytest.param(("long.zip", zip_of({LONG_NAME: "x"})), id="zip-long-name"),
    pytest.param(("deep.tar", _tar_with(DEEP)), id="tar-deep"),
    pytest.param(("long.tar", _tar_with("a/" + LONG_NAME)), id="tar-long-name"),
])
def test_api_archive_member_too_long_is_a_400_naming_the_field(
        launched: dict, alice: AbstractUser, api: Callable[..., APIClient],
        fake_engine: FakeEngine, archive: tuple[str, bytes]) -> None:
    before = snapshot(fake_engine)
    response = api(alice).post(f"/api/deployments/{launched['id']}/files/",
                               {"file": upload(*archive)}, format="multipart")
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["code"] == "invalid" and "longer than" in body["detail"]
    assert list(body["fields"]) == ["file"]
    assert snapshot(fake_engine) == before


def test_api_target_folder_too_deep_is_a_400_naming_path(
        launched: dict, alice: AbstractUser, api: Callable[..., APIClient],
        fake_engine: FakeEngine, settings: object) -> None:
    before = snapshot(fake_engine)
    folder = "/".join(["f" * 200] * 4)  # within the field's 1000 characters
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        name = "/".join(["g" * 250] * 14)
        info = tarfile.TarInfo(name)
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    response = api(alice).post(f"/api/deployments/{launched['id']}/files/",
                               {"file": upload("site.tar", tar.getvalue()), "path": folder},
                               format="multipart")
    assert response.status_code == 400
    assert set(response.json()["fields"]) <= {"file", "path"}
    response = api(alice).post(f"/api/deployments/{launched['id']}/files/",
                               {"file": upload("a.html", b"x"), "path": "p" * 256},
                               format="multipart")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["path"]
    assert snapshot(fake_engine) == before


@pytest.mark.parametrize("path", ["x" * 300, "/".join(["d" * 250] * 17)])
def test_api_delete_path_too_long_is_a_400_naming_path(
        launched: dict, alice: AbstractUser, api: Callable[..., APIClient], path: str) -> None:
    response = api(alice).delete(f"/api/deployments/{launched['id']}/files/{path}")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["path"]


def test_content_store_refuses_a_deep_path_before_touching_the_disk() -> None:
    with pytest.raises(content.InvalidInput) as caught:
        content.content_add(slot_id=7, uploads=[("deep.zip", io.BytesIO(zip_of({DEEP: "x"})))])
    assert caught.value.fields == {"file": [caught.value.detail]}
    assert content.content_list(slot_id=7) == []


def test_page_upload_of_a_too_deep_archive_says_why(
        alice: AbstractUser, warm: Callable, fake_engine: FakeEngine) -> None:
    warm("nginx", 2)
    client = Client()
    client.force_login(cast(User, alice))
    client.post("/deployments/launch/", {"runtime": "nginx"}, follow=True)
    deployment = Deployment.objects.get(user=alice)
    before = snapshot(fake_engine)
    for archive in [("deep.zip", zip_of({DEEP: "x"})), ("long.tar", _tar_with(LONG_NAME))]:
        response = client.post(f"/deployments/{deployment.pk}/upload/",
                               {"file": upload(*archive)}, follow=True)
        assert response.status_code == 200
        said = [str(m) for m in response.context["messages"]]
        assert len(said) == 1 and "longer than" in said[0]
    response = client.post(f"/deployments/{deployment.pk}/files/delete/",
                           {"path": "/".join(["d" * 250] * 3)}, follow=True)
    assert response.status_code == 200
    assert snapshot(fake_engine) == before
