"""What the OpenAPI fuzzer found (issue 11 item 16), each checked directly: JSON errors
everywhere under /api/ (also for ids the URL pattern rejects), every status documented,
and a schema as strict as the server."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from pools.models import Runtime

pytest_plugins = ["tests.unit.api_fixtures"]
pytestmark = pytest.mark.django_db


@pytest.fixture
def schema() -> dict[str, Any]:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def _request_schema(schema: dict[str, Any], path: str) -> dict[str, Any]:
    body = schema["paths"][path]["post"]["requestBody"]["content"]
    ref = next(iter(body.values()))["schema"]["$ref"].rsplit("/", 1)[-1]
    component: dict[str, Any] = schema["components"]["schemas"][ref]
    return component


@pytest.mark.parametrize("path", ["/api/deployments/abc/", "/api/deployments/1,2/files/",
                                  "/api/deployments/null/restart/", "/api/nothing-here/"])
def test_unknown_api_paths_answer_the_json_error_envelope(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_pages_keep_their_html_404() -> None:
    response = Client().get("/deployments/abc/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/auth/token/refresh/",
                                  "/api/auth/logout/", "/api/auth/register/"])
def test_auth_endpoints_document_their_400(schema: dict[str, Any], path: str) -> None:
    responses = schema["paths"][path]["post"]["responses"]
    assert "400" in responses and "429" in responses


def test_blank_credentials_are_refused_by_the_schema_too(schema: dict[str, Any]) -> None:
    token = _request_schema(schema, "/api/auth/token/")["properties"]
    assert token["username"]["minLength"] == 1 and token["password"]["minLength"] == 1
    refresh = _request_schema(schema, "/api/auth/token/refresh/")["properties"]
    assert refresh["refresh"]["minLength"] == 1


def test_password_rules_are_in_the_schema(schema: dict[str, Any]) -> None:
    register = _request_schema(schema, "/api/auth/register/")
    password = register["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (8, 128)
    rule = re.compile(password["pattern"])
    assert rule.search("correct-Horse-7") and not rule.search("83920174659")
    assert not rule.search("abc\x00defgh")
    assert "409" in schema["paths"]["/api/auth/register/"]["post"]["responses"]


def _runtime_enum(schema: dict[str, Any]) -> list[str]:
    runtime = _request_schema(schema, "/api/deployments/")["properties"]["runtime"]
    ref = runtime.get("$ref") or runtime["allOf"][0]["$ref"]
    enum: list[str] = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]["enum"]
    return enum


def test_runtime_is_an_enum_of_the_enabled_runtimes(schema: dict[str, Any]) -> None:
    assert _runtime_enum(schema) == ["apache", "nginx", "node", "python"]


def test_a_disabled_runtime_leaves_the_enum() -> None:
    Runtime.objects.filter(name="node").update(enabled=False)
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert _runtime_enum(response.json()) == ["apache", "nginx", "python"]


def test_text_fields_refuse_nul_in_the_schema_as_the_server_does(
        schema: dict[str, Any]) -> None:
    token = _request_schema(schema, "/api/auth/token/")["properties"]
    assert re.compile(token["username"]["pattern"]).search("alice")
    assert not re.compile(token["username"]["pattern"]).search("al\x00ice")
    status = APIClient().post("/api/auth/token/", {"username": "al\x00ice", "password": "x"},
                              format="json").status_code
    assert status == 400
