"""The REST API contract: statuses, codes and bodies; bad input changes nothing; bob can
neither see nor change alice's deployments; a released deployment is read-only."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import AbstractUser
from django.core.management import call_command
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from pools import content, health
from pools import logs as logs_module
from pools.models import PoolContainer, SlotStatus
from tests.fakes import FakeEngine
from tests.unit.api_helpers import snapshot, tar_member, tar_of, upload, zip_of

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)
S = SlotStatus
MB = 1024 * 1024


@pytest.fixture
def launched(alice: AbstractUser, warm: Callable, api: Callable[..., APIClient]) -> dict:
    """alice's running nginx deployment (two nginx slots warm); its API body."""
    warm("nginx", 2)
    response = api(alice).post("/api/deployments/", {"runtime": "nginx"}, format="json")
    assert response.status_code == 201
    return response.json()




def files_of(client: APIClient, deployment_id: int) -> list[dict]:
    response = client.get(f"/api/deployments/{deployment_id}/files/")
    assert response.status_code == 200
    return response.json()


# --- runtimes, launch, list, detail -----------------------------------------------------
def test_runtimes_show_availability(alice: AbstractUser, warm: Callable,
                                    api: Callable[..., APIClient]) -> None:
    warm("nginx", 2)
    warm("python", 1)
    api(alice).post("/api/deployments/", {"runtime": "nginx"}, format="json")
    body = {r["name"]: r for r in api(alice).get("/api/runtimes/").json()}
    assert body["nginx"] == {"name": "nginx", "idle": 1, "assigned": 1, "total": 2}
    assert body["python"] == {"name": "python", "idle": 1, "assigned": 0, "total": 1}
    assert set(body) == {"nginx", "apache", "python", "node"}
    assert api().get("/api/runtimes/").status_code == 401


def test_launch_answers_with_the_deployment(launched: dict) -> None:
    slot = PoolContainer.objects.get(status=S.ASSIGNED)
    assert launched == {
        "id": launched["id"], "runtime": "nginx", "status": "running", "port": slot.port,
        "url": f"http://testserver:{slot.port}/", "created_at": launched["created_at"],
        "released_at": None, "expires_at": None, "ended_reason": "",
        # No Caddy in this run: no HTTPS address (tests/unit/test_hostnames.py has one).
        "hostname": None, "https_url": None, "https_live": False, "alias": "",
        "alias_url": None, "alias_live": False, "suspended": False,
    }


def test_launch_url_uses_the_public_host(settings: Settings, alice: AbstractUser,
                                         warm: Callable, api: Callable[..., APIClient]) -> None:
    settings.PAAS_PUBLIC_HOST = "apps.example.org"
    warm("nginx", 1)
    body = api(alice).post("/api/deployments/", {"runtime": "nginx"}, format="json",
                           HTTP_HOST="paas.internal:5000").json()
    assert body["url"] == f"http://apps.example.org:{body['port']}/"


@pytest.mark.parametrize("payload, content_type, code, field", [
    ({"runtime": "cobol"}, "json", "invalid", "runtime"),
    ({}, "json", "invalid", "runtime"),
    ({"runtime": ""}, "json", "invalid", "runtime"),
    ('{"runtime": "nginx"', "raw", "parse_error", None),
    ("[1, 2]", "raw", "invalid", None),
])
def test_bad_launch_requests_change_nothing(
        launched: dict, alice: AbstractUser, api: Callable[..., APIClient],
        fake_engine: FakeEngine, payload: object, content_type: str, code: str,
        field: str | None) -> None:
    before = snapshot(fake_engine)
    client = api(alice)
    if content_type == "json":
        response = client.post("/api/deployments/", payload, format="json")
    else:
        response = client.post("/api/deployments/", payload, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and body["detail"]
    if field:
        assert field in body["fields"]
    assert snapshot(fake_engine) == before


def test_quota_exceeded_is_429(settings: Settings, alice: AbstractUser, warm: Callable,
                               api: Callable[..., APIClient], fake_engine: FakeEngine) -> None:
    settings.PAAS_USER_QUOTA = 1
    warm("nginx", 3)
    client = api(alice)
    assert client.post("/api/deployments/", {"runtime": "nginx"}, format="json").status_code == 201
    before = snapshot(fake_engine)
    response = client.post("/api/deployments/", {"runtime": "nginx"}, format="json")
    assert response.status_code == 429 and response.json()["code"] == "quota_exceeded"
    assert snapshot(fake_engine) == before


def test_staff_set_quota_is_honoured(alice: AbstractUser, warm: Callable,
                                     api: Callable[..., APIClient]) -> None:
    from accounts.models import Quota

    warm("nginx", 3)
    Quota.objects.create(user=alice, max_deployments=1)
    client = api(alice)
    assert client.post("/api/deployments/", {"runtime": "nginx"}, format="json").status_code == 201
    assert client.post("/api/deployments/", {"runtime": "nginx"},
                       format="json").json()["code"] == "quota_exceeded"


def test_pool_exhausted_is_503(alice: AbstractUser, bob: AbstractUser, warm: Callable,
                               api: Callable[..., APIClient], fake_engine: FakeEngine) -> None:
    warm("nginx", 1)
    assert api(alice).post("/api/deployments/", {"runtime": "nginx"},
                           format="json").status_code == 201
    before = snapshot(fake_engine)
    response = api(bob).post("/api/deployments/", {"runtime": "nginx"}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "pool_exhausted"
    assert snapshot(fake_engine) == before
    # a pool never warmed is just as exhausted
    response = api(bob).post("/api/deployments/", {"runtime": "node"}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "pool_exhausted"


def test_list_and_detail_are_mine_only(launched: dict, alice: AbstractUser, bob: AbstractUser,
                                       api: Callable[..., APIClient]) -> None:
    listed = api(alice).get("/api/deployments/").json()
    assert [d["id"] for d in listed] == [launched["id"]]
    detail = api(alice).get(f"/api/deployments/{launched['id']}/").json()
    assert detail == {**launched, "last_recovery": None}
    assert api(bob).get("/api/deployments/").json() == []
    missing = api(alice).get("/api/deployments/999999/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


# --- files ---------------------------------------------------------------------------
def test_upload_list_and_delete_files(launched: dict, alice: AbstractUser,
                                      api: Callable[..., APIClient], fake_engine: FakeEngine) -> None:
    client = api(alice)
    url = f"/api/deployments/{launched['id']}/files/"
    site = zip_of({"css/site.css": b"body{}", "index.html": b"<h1>zip</h1>"})
    response = client.post(url, {"file": [upload("a.txt", b"A"), upload("site.zip", site)],
                                 "path": "www"}, format="multipart")
    assert response.status_code == 201
    assert response.json() == {"stored": ["www/a.txt", "www/css/site.css", "www/index.html"]}
    assert files_of(client, launched["id"]) == [
        {"path": "www/a.txt", "size": 1}, {"path": "www/css/site.css", "size": 6},
        {"path": "www/index.html", "size": 12}]
    container = PoolContainer.objects.get(status=S.ASSIGNED).container_id
    assert fake_engine.files[container]["/usr/share/nginx/html/www/index.html"] == b"<h1>zip</h1>"
    # delete a file whose path has slashes
    assert client.delete(f"{url}www/css/site.css").status_code == 204
    assert [f["path"] for f in files_of(client, launched["id"])] == ["www/a.txt", "www/index.html"]
    assert "/usr/share/nginx/html/www/css/site.css" not in fake_engine.files[container]
    gone = client.delete(f"{url}www/css/site.css")
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"


def _evil_uploads() -> dict[str, tuple[str, bytes]]:
    fifo = tar_member("pipe", tarfile.FIFOTYPE)
    return {
        "zip_slip": ("evil.zip", zip_of({"../../escape.txt": b"x"})),
        "zip_absolute": ("abs.zip", zip_of({"/etc/passwd": b"x"})),
        "tar_slip": ("evil.tar", tar_of([tar_member("../x.txt")], {"../x.txt": b"x"})),
        "tar_absolute": ("abs.tar", tar_of([tar_member("/tmp/x.txt")], {"/tmp/x.txt": b"x"})),
        "symlink_escape": ("link.tar.gz", tar_of(
            [tar_member("ok.txt"), tar_member("etc", tarfile.SYMTYPE, "/etc")],
            {"ok.txt": b"ok"}, mode="w:gz")),
        "hardlink": ("hard.tar", tar_of(
            [tar_member("ok.txt"), tar_member("h", tarfile.LNKTYPE, "/etc/shadow")],
            {"ok.txt": b"ok"})),
        "fifo": ("fifo.tar", tar_of([tar_member("ok.txt"), fifo], {"ok.txt": b"ok"})),
        "device": ("dev.tar", tar_of([tar_member("null", tarfile.CHRTYPE)])),
        "zip_bomb": ("bomb.zip", zip_of({"zeros.bin": b"\0" * (8 * MB)})),
        "corrupt_zip": ("broken.zip", b"PK\x03\x04 this is not a zip"),
    }


@pytest.mark.parametrize("case", sorted(_evil_uploads()))
def test_unsafe_uploads_are_400_and_write_nothing(
        case: str, launched: dict, alice: AbstractUser, api: Callable[..., APIClient],
        fake_engine: FakeEngine) -> None:
    client = api(alice)
    url = f"/api/deployments/{launched['id']}/files/"
    assert client.post(url, {"file": upload("keep.html", b"keep")},
                       format="multipart").status_code == 201
    before = snapshot(fake_engine)
    name, data = _evil_uploads()[case]
    response = client.post(url, {"file": [upload("also.txt", b"y"), upload(name, data)]},
                           format="multipart")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] in ("unsafe_upload", "invalid")
    assert response.json()["detail"]
    assert snapshot(fake_engine) == before
    assert files_of(client, launched["id"]) == [{"path": "keep.html", "size": 4}]


@pytest.mark.parametrize("path", ["../up", "/abs", "a/../../b"])
def test_unsafe_target_folder_is_refused(path: str, launched: dict, alice: AbstractUser,
                                         api: Callable[..., APIClient],
                                         fake_engine: FakeEngine) -> None:
    before = snapshot(fake_engine)
    response = api(alice).post(f"/api/deployments/{launched['id']}/files/",
                               {"file": upload("a.txt", b"a"), "path": path}, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "unsafe_upload"
    assert snapshot(fake_engine) == before


def test_oversize_upload_is_413(settings: Settings, launched: dict, alice: AbstractUser,
                                api: Callable[..., APIClient], fake_engine: FakeEngine) -> None:
    settings.PAAS_MAX_UPLOAD_MB = 1
    before = snapshot(fake_engine)
    url = f"/api/deployments/{launched['id']}/files/"
    response = api(alice).post(url, {"file": upload("big.bin", b"x" * (MB + 1))},
                               format="multipart")
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert snapshot(fake_engine) == before
    # a body that cannot fit is refused before it is read
    settings.PAAS_MAX_UPLOAD_FILES = 1
    response = api(alice).post(url, {"file": upload("huge.bin", b"x" * (4 * MB))},
                               format="multipart")
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert snapshot(fake_engine) == before


def test_total_per_deployment_is_limited(settings: Settings, launched: dict, alice: AbstractUser,
                                         api: Callable[..., APIClient]) -> None:
    settings.PAAS_MAX_UPLOAD_MB = 1
    client = api(alice)
    url = f"/api/deployments/{launched['id']}/files/"
    assert client.post(url, {"file": upload("a.bin", b"a" * (MB // 2 + 10))},
                       format="multipart").status_code == 201
    response = client.post(url, {"file": upload("b.bin", b"b" * (MB // 2 + 10))},
                           format="multipart")
    assert response.status_code == 413
    assert [f["path"] for f in files_of(client, launched["id"])] == ["a.bin"]


def test_upload_without_a_file_is_400(launched: dict, alice: AbstractUser,
                                      api: Callable[..., APIClient]) -> None:
    url = f"/api/deployments/{launched['id']}/files/"
    response = api(alice).post(url, {"path": "x"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["fields"]
    as_json = api(alice).post(url, {"file": "x"}, format="json")
    assert as_json.status_code == 415 and as_json.json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize("path", ["../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd",
                                  "a/../../x", "..%2fsecret"])
def test_path_traversal_in_file_delete_is_refused(
        path: str, tmp_path: Path, launched: dict, alice: AbstractUser,
        api: Callable[..., APIClient], fake_engine: FakeEngine) -> None:
    outside = Path(content.content_dir(0)).parent / "secret"
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_text("do not delete")
    before = snapshot(fake_engine)
    response = api(alice).delete(f"/api/deployments/{launched['id']}/files/{path}")
    assert response.status_code in (400, 404)
    assert response.json()["code"] in ("unsafe_upload", "invalid", "not_found")
    assert outside.read_text() == "do not delete"
    assert snapshot(fake_engine) == before


# --- logs, restart -------------------------------------------------------------------
def test_logs_default_and_tail(launched: dict, alice: AbstractUser,
                               api: Callable[..., APIClient], monkeypatch: pytest.MonkeyPatch,
                               fake_engine: FakeEngine) -> None:
    seen: list[int] = []

    def logs(container_id: str, tail: int = 100, timestamps: bool = False) -> str:
        seen.append(tail)
        return ("2026-01-01T10:00:00.5Z line one\n2026-01-01T10:00:01Z line two\n"
                * (tail // 2))

    monkeypatch.setattr(fake_engine, "logs", logs)
    monkeypatch.setattr(logs_module, "WINDOW", 4)
    url = f"/api/deployments/{launched['id']}/logs/"
    response = api(alice).get(url, {"tail": 3})
    assert response.status_code == 200 and response.json() == {
        "lines": ["line two", "line one", "line two"],
        "cursor": "2026-01-01T10:00:01.000000000Z"}
    assert seen == [4]  # within the shared window: one read of the window
    assert len(api(alice).get(url, {"tail": 7}).json()["lines"]) == 6
    assert seen == [4, 7]  # a longer tail than the window: its own read


@pytest.mark.parametrize("tail", ["abc", "0", "-3", "1000000", "1.5"])
def test_bad_tail_is_400(tail: str, launched: dict, alice: AbstractUser,
                         api: Callable[..., APIClient]) -> None:
    response = api(alice).get(f"/api/deployments/{launched['id']}/logs/", {"tail": tail})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "tail" in response.json()["fields"]


def test_restart_signals_the_container(launched: dict, alice: AbstractUser,
                                       api: Callable[..., APIClient],
                                       fake_engine: FakeEngine) -> None:
    response = api(alice).post(f"/api/deployments/{launched['id']}/restart/")
    assert response.status_code == 202 and response.json() == {"restarted": True}
    container = PoolContainer.objects.get(status=S.ASSIGNED).container_id
    assert fake_engine.signals[-1] == (container, "SIGHUP")


def test_engine_down_during_upload_logs_restart_is_503(
        launched: dict, alice: AbstractUser, api: Callable[..., APIClient],
        fake_engine: FakeEngine) -> None:
    fake_engine.available = False
    client = api(alice)
    base = f"/api/deployments/{launched['id']}"
    for response in (client.get(f"{base}/logs/"), client.post(f"{base}/restart/"),
                     client.post(f"{base}/files/", {"file": upload("a.txt", b"a")},
                                 format="multipart")):
        assert response.status_code == 503 and response.json()["code"] == "engine_unavailable"
    # the upload is in the store: it reaches the container with the next push
    assert [f["path"] for f in files_of(client, launched["id"])] == ["a.txt"]


# --- release -----------------------------------------------------------------------
def test_release_then_read_only(launched: dict, alice: AbstractUser,
                                api: Callable[..., APIClient], fake_engine: FakeEngine) -> None:
    client = api(alice)
    base = f"/api/deployments/{launched['id']}"
    client.post(f"{base}/files/", {"file": upload("index.html", b"x")}, format="multipart")
    assert client.delete(f"{base}/").status_code == 204
    detail = client.get(f"{base}/")
    assert detail.status_code == 200
    assert detail.json()["status"] == "released" and detail.json()["released_at"]
    assert detail.json()["port"] == launched["port"]  # history keeps the port
    assert client.get("/api/deployments/").json()[0]["status"] == "released"
    slot = PoolContainer.objects.get(port=launched["port"])
    assert (slot.status, slot.owner_id) == (S.IDLE, None)
    assert content.content_list(slot_id=slot.pk) == []
    before = snapshot(fake_engine)
    for response in _every_action(client, launched["id"]):
        assert response.status_code == 410, response.request
        assert response.json()["code"] == "released"
    assert snapshot(fake_engine) == before


def _every_action(client: APIClient, deployment_id: int) -> list:
    base = f"/api/deployments/{deployment_id}"
    return [
        client.delete(f"{base}/"),
        client.get(f"{base}/files/"),
        client.post(f"{base}/files/", {"file": upload("a.txt", b"a")}, format="multipart"),
        client.post(f"{base}/files/", {}, format="multipart"),
        client.delete(f"{base}/files/index.html"),
        client.get(f"{base}/logs/"),
        client.get(f"{base}/logs/", {"tail": "abc"}),
        client.post(f"{base}/restart/"),
    ]


# --- two users ---------------------------------------------------------------------
def test_bob_cannot_see_or_change_alices_deployment(
        launched: dict, alice: AbstractUser, bob: AbstractUser, api: Callable[..., APIClient],
        fake_engine: FakeEngine) -> None:
    alice_client = api(alice)
    base = f"/api/deployments/{launched['id']}"
    alice_client.post(f"{base}/files/", {"file": upload("index.html", b"alice")},
                      format="multipart")
    before = snapshot(fake_engine)
    bob_client = api(bob)
    responses = [bob_client.get(f"{base}/"), *_every_action(bob_client, launched["id"])]
    for response in responses:
        assert response.status_code == 404, response.request
        assert response.json()["code"] == "not_found"
    assert snapshot(fake_engine) == before
    assert alice_client.get(f"{base}/").json()["status"] == "running"
    # ... and the same after alice released it: still 404 for bob, not 410
    alice_client.delete(f"{base}/")
    assert {r.status_code for r in [bob_client.get(f"{base}/"),
                                    *_every_action(bob_client, launched["id"])]} == {404}


def test_anonymous_gets_401_everywhere(launched: dict, api: Callable[..., APIClient],
                                       fake_engine: FakeEngine) -> None:
    before = snapshot(fake_engine)
    anonymous = api()
    for response in [anonymous.get("/api/deployments/"), anonymous.get("/api/pools/"),
                     anonymous.post("/api/deployments/", {"runtime": "nginx"}, format="json"),
                     anonymous.get(f"/api/deployments/{launched['id']}/"),
                     *_every_action(anonymous, launched["id"])]:
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"
    assert snapshot(fake_engine) == before


# --- pools, healthz, schema ---------------------------------------------------------
def test_pools_are_for_staff_only(launched: dict, alice: AbstractUser, charlie: AbstractUser,
                                  api: Callable[..., APIClient]) -> None:
    denied = api(alice).get("/api/pools/")
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
    pools = {p["runtime"]: p for p in api(charlie).get("/api/pools/").json()}
    nginx = pools["nginx"]
    assert (nginx["idle"], nginx["assigned"], nginx["total"]) == (1, 1, 2)
    by_port = {s["port"]: s for s in nginx["slots"]}
    mine = by_port[launched["port"]]
    slot = PoolContainer.objects.get(port=launched["port"])
    assert mine == {"id": slot.pk, "port": slot.port, "status": "assigned", "owner": "alice",
                    "generation": slot.generation, "health": "healthy",
                    "health_checked_at": mine["health_checked_at"]}
    assert pools["node"]["slots"] == []


def test_healthz(fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    client = APIClient()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "docker": "ok"}
    fake_engine.available = False
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["database"] == "ok"
    assert response.json()["docker"].startswith("unavailable")
    fake_engine.available = True

    def broken() -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(health, "_ping_database", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("unavailable")
    assert response.json()["docker"] == "ok"


DOCUMENTED = {
    "/api/auth/register/": {"post"}, "/api/auth/token/": {"post"},
    "/api/auth/token/refresh/": {"post"}, "/api/auth/logout/": {"post"},
    "/api/runtimes/": {"get"}, "/api/deployments/": {"get", "post"},
    "/api/deployments/{id}/": {"get", "patch", "delete"}, "/api/deployments/{id}/files/": {"get", "post"},
    "/api/deployments/{id}/files/{path}": {"delete"}, "/api/deployments/{id}/logs/": {"get"},
    "/api/deployments/{id}/restart/": {"post"},
    "/api/deployments/{id}/extend/": {"post"}, "/api/pools/": {"get"}, "/healthz": {"get"},
    "/api/audit/": {"get"},
}


def test_openapi_schema_validates_and_documents_every_endpoint(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = {p: set(ops) - {"parameters"} for p, ops in schema["paths"].items()}
    assert paths == DOCUMENTED
    create = schema["paths"]["/api/deployments/"]["post"]
    assert {"201", "400", "429", "503"} <= set(create["responses"])
    fields = schema["components"]["schemas"]["Deployment"]["properties"]
    assert {"url", "https_url", "hostname", "https_live", "alias", "alias_live"} <= set(fields)
    upload_body = schema["paths"]["/api/deployments/{id}/files/"]["post"]["requestBody"]
    assert "multipart/form-data" in upload_body["content"]


def test_schema_and_docs_are_served() -> None:
    client = APIClient()
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def _tar_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tar_gz_upload_is_extracted(launched: dict, alice: AbstractUser,
                                    api: Callable[..., APIClient]) -> None:
    import gzip

    data = gzip.compress(_tar_bytes({"app/index.html": b"<p>tgz</p>"}))
    response = api(alice).post(f"/api/deployments/{launched['id']}/files/",
                               {"file": upload("site.tar.gz", data)}, format="multipart")
    assert response.status_code == 201 and response.json()["stored"] == ["app/index.html"]
