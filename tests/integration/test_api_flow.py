"""The user's whole journey through the REST API on the real Docker engine: register,
log in, launch, upload, see it served on the own port, read logs, release."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from pools import content
from pools.engine import DockerEngine
from pools.models import PoolContainer
from tests.integration.conftest import http_get

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PYTHON_APP = b'''import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the python app"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


print("python app listening on", os.environ["PORT"], flush=True)
HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Hello).serve_forever()
'''

NODE_APP = b'''const http = require("http");
const port = process.env.PORT;
http.createServer((req, res) => res.end("hello from the node app"))
  .listen(port, () => console.log("node app listening on " + port));
'''

CRASHING_APP = b'''print("starting the doomed app", flush=True)
raise RuntimeError("boom-4711: the user's bug")
'''


def new_user_client() -> APIClient:
    """Register a fresh user and log in, as a new user would."""
    client = APIClient()
    name = f"user{uuid.uuid4().hex[:8]}"
    password = "correct-Horse-7-battery"
    registered = client.post("/api/auth/register/", {
        "username": name, "email": f"{name}@example.com", "password": password,
    }, format="json")
    assert registered.status_code == 201, registered.json()
    tokens = client.post("/api/auth/token/", {"username": name, "password": password},
                         format="json")
    assert tokens.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.json()['access']}")
    return client


def launch(client: APIClient, runtime: str) -> dict:
    response = client.post("/api/deployments/", {"runtime": runtime}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def put(client: APIClient, deployment: dict, name: str, data: bytes) -> None:
    response = client.post(f"/api/deployments/{deployment['id']}/files/",
                           {"file": SimpleUploadedFile(name, data)}, format="multipart")
    assert response.status_code == 201, response.json()


def logs_until(client: APIClient, deployment: dict, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/deployments/{deployment['id']}/logs/", {"tail": 200})
        assert response.status_code == 200
        joined = "\n".join(response.json()["lines"])
        if text in joined or time.monotonic() > deadline:
            return joined
        time.sleep(0.5)


def release_and_check_clean(client: APIClient, deployment: dict) -> None:
    slot = PoolContainer.objects.get(port=deployment["port"])
    assert client.delete(f"/api/deployments/{deployment['id']}/").status_code == 204
    status, body = http_get(deployment["port"], expect="ready", timeout=30)
    assert status == 200 and "ready" in body.lower(), body[:300]
    assert content.content_list(slot_id=slot.pk) == []
    assert client.get(f"/api/deployments/{deployment['id']}/").json()["status"] == "released"


@pytest.mark.parametrize("runtime", ["nginx", "apache"])
def test_static_site_is_served_then_gone_after_release(
        runtime: str, warm_pools: Callable) -> None:
    warm_pools(**{runtime: 1})
    client = new_user_client()
    deployment = launch(client, runtime)
    assert deployment["url"].endswith(f":{deployment['port']}/")
    status, body = http_get(deployment["port"])
    assert status == 200 and "ready" in body.lower()  # the placeholder until content arrives
    marker = f"<h1>{runtime} site {uuid.uuid4().hex}</h1>"
    put(client, deployment, "index.html", marker.encode())
    status, body = http_get(deployment["port"], expect=marker)
    assert (status, body.strip()) == (200, marker)
    release_and_check_clean(client, deployment)
    status, body = http_get(deployment["port"])
    assert marker not in body


@pytest.mark.parametrize("runtime, name, code, answer, logged", [
    ("python", "app.py", PYTHON_APP, "hello from the python app", "python app listening on"),
    ("node", "server.js", NODE_APP, "hello from the node app", "node app listening on"),
])
def test_app_answers_at_its_url_and_logs(
        runtime: str, name: str, code: bytes, answer: str, logged: str,
        warm_pools: Callable) -> None:
    warm_pools(**{runtime: 1})
    client = new_user_client()
    deployment = launch(client, runtime)
    put(client, deployment, name, code)
    status, body = http_get(deployment["port"], expect=answer, timeout=45)
    assert (status, body) == (200, answer)
    assert logged in logs_until(client, deployment, logged)
    restarted = client.post(f"/api/deployments/{deployment['id']}/restart/")
    assert restarted.status_code == 202 and restarted.json() == {"restarted": True}
    assert http_get(deployment["port"], expect=answer, timeout=45) == (200, answer)
    release_and_check_clean(client, deployment)


def test_crashing_app_shows_its_error_and_the_container_stays_up(
        warm_pools: Callable, real_engine: DockerEngine) -> None:
    warm_pools(python=1)
    client = new_user_client()
    deployment = launch(client, "python")
    put(client, deployment, "app.py", CRASHING_APP)
    logs = logs_until(client, deployment, "boom-4711")
    assert "boom-4711" in logs and "RuntimeError" in logs
    time.sleep(3)  # a crash loop must not take the container (or the slot) down
    slot = PoolContainer.objects.get(port=deployment["port"])
    info = real_engine.inspect(slot.container_id)
    assert info is not None and info.running
    assert client.get(f"/api/deployments/{deployment['id']}/").json()["status"] == "running"
    release_and_check_clean(client, deployment)
