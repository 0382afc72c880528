"""The OpenAPI document: generated without warnings, every operation's errors documented in the
foundation's error shape, the Idempotency-Key header where retries are safe."""

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    import yaml

    out = io.StringIO()
    with django_db_blocker.unblock():
        # --fail-on-warn: any warning of drf-spectacular (an untyped field, a path parameter it
        # cannot type, an unknown authenticator) fails here; --validate checks OpenAPI 3.
        call_command("spectacular", "--fail-on-warn", "--validate", stdout=out)
    return yaml.safe_load(out.getvalue())


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_every_operation_documents_its_4xx_answers_in_the_error_shape(schema):
    operations = list(_operations(schema))
    assert len(operations) > 30
    for path, method, operation in operations:
        responses = operation["responses"]
        errors = {code for code in responses if code.startswith("4")}
        assert {"401", "403", "429"} <= errors, (method, path)
        if "{" in path:
            assert "404" in errors, (method, path)
        for code in errors:
            assert responses[code] == {"$ref": f"#/components/responses/{_name(schema, code)}"}


def _name(schema, code):
    from mis.openapi import ERROR_RESPONSES

    return ERROR_RESPONSES[code][0]


def test_the_error_components_have_the_shape_and_examples(schema):
    assert schema["components"]["schemas"]["Error"]["required"] == ["status", "error"]
    for name, response in schema["components"]["responses"].items():
        content = response["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"}
        (example,) = content["examples"].values()
        assert example["value"]["status"] == "error", name
    assert "Retry-After" in schema["components"]["responses"]["TooManyRequests"]["headers"]


@pytest.mark.parametrize(
    "path, method",
    [
        ("/api/v1/instances/", "post"),
        ("/api/v1/patients/", "post"),
        ("/api/v1/patients/{id}/merge/", "post"),
        ("/api/v1/patients/{id}/unmerge/", "post"),
        ("/api/v1/reports/{id}/sign/", "post"),
        ("/api/v1/reports/{id}/amend/", "post"),
    ],
)
def test_safe_retries_are_documented(schema, path, method):
    operation = schema["paths"][path][method]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert "Idempotency-Key" in headers
    assert {"409", "422"} <= set(operation["responses"])


def test_only_safe_retries_take_the_header(schema):
    taking = sorted(
        (path, method)
        for path, method, operation in _operations(schema)
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    )
    assert ("/api/v1/patients/{id}/", "patch") not in taking
    assert ("/api/v1/instances/", "post") in taking


def test_token_authentication_is_described(schema):
    scheme = schema["components"]["securitySchemes"]["tokenAuth"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "Authorization"}
