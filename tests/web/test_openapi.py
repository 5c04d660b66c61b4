"""The OpenAPI document: served without a token, valid OpenAPI 3.1, and describing exactly the
routes the service has under /api/v1 (every one, and nothing else)."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs  # schemathesis's validator
import pytest
import schemathesis

from web.openapi import document

pytestmark = pytest.mark.db

METHODS = {"get", "post", "put", "patch", "delete"}


def routes(app) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every route under /api/v1; ``<int(…):index>`` -> ``{index}``."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((path, method.lower()))
    return found


def described(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_described_and_nothing_else(service) -> None:
    in_service, in_document = routes(service.app), described(document())
    assert in_service - in_document == set(), "routes missing from the document"
    assert in_document - in_service == set(), "the document describes routes that do not exist"
    assert len(in_service) >= 14


def test_the_document_is_served_without_a_token(service) -> None:
    response = service.http.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json == json.loads(json.dumps(document()))
    assert response.json["openapi"].startswith("3.1.")


def test_the_document_is_valid_openapi_3_1() -> None:
    schemathesis.openapi.from_dict(document()).validate()  # the OpenAPI 3.1 meta-schema


def test_the_validation_would_catch_a_broken_document() -> None:
    broken = json.loads(json.dumps(document()))
    broken["paths"]["/api/v1/tree"]["get"]["responses"]["200"] = {"content": "nothing"}
    with pytest.raises(jsonschema_rs.ValidationError, match='"description" is a required'):
        schemathesis.openapi.from_dict(broken).validate()


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(value) for value in node))
    return set()


def test_every_reference_resolves_and_every_schema_is_used() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    used = {ref.removeprefix("#/components/schemas/") for ref in refs(doc)}
    assert used <= set(schemas), "dangling $ref"
    assert set(schemas) <= used, "schemas nothing refers to"


def test_path_parameters_match_the_routes_and_tokens_are_declared() -> None:
    doc = document()
    for path, item in doc["paths"].items():
        in_path = set(re.findall(r"{([a-z_]+)}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, (path, method)
            responses = operation["responses"]
            assert "500" in responses, (path, method)
            if operation["security"]:
                assert operation["x-role"] in ("worker", "reader")
                assert {"401", "403", "429"} <= set(responses), (path, method)
            else:
                assert "401" not in responses, (path, method)
            for status, response in responses.items():
                if status == "414":  # gunicorn's, before the service (HTML)
                    assert list(response["content"]) == ["text/html"]
                elif int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"]


def test_the_roles_in_the_document_are_the_ones_the_service_enforces(service) -> None:
    """A reader endpoint refuses a missing token; a public one answers without one."""
    doc = document()
    for path, item in doc["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        concrete = path.replace("{index}", "0").replace("{result_hash}", "sha256:" + "0" * 64)
        status = service.http.get(concrete).status_code
        if operation["security"]:
            assert status == 401, path
        else:
            assert status != 401, path


def test_every_operation_on_the_database_may_answer_503_database_unavailable() -> None:
    """Which ones really do is checked against the service in tests/web/test_outage.py."""
    without_database = {"/api/v1/log-key", "/api/v1/ear-keys", "/api/v1/openapi.json"}
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            unavailable = operation["responses"].get("503")
            if path in without_database:
                assert unavailable is None, (path, method)
                continue
            assert unavailable is not None, (path, method)
            schema = unavailable["content"]["application/problem+json"]["schema"]
            assert "database_unavailable" in schema["allOf"][1]["properties"]["code"]["enum"]
            assert unavailable["headers"]["Retry-After"]["required"] is True
