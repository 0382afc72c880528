"""OpenAPI 3 conventions for every endpoint under /api/v1/ (drf-spectacular).

* ``AutoSchema`` documents the ``Idempotency-Key`` header on view methods marked by
  ``accounts.idempotency.idempotent``.
* ``document_errors`` (a postprocessing hook) puts the foundation's error shape in the
  components, once, as the schema ``Error`` and the reusable responses ``BadRequest``,
  ``Unauthorized``, ``Forbidden``, ``NotFound``, ``Conflict``, ``UnprocessableEntity`` and
  ``TooManyRequests`` (each with an example), and gives every operation the 4xx answers it can
  give: 401/403/429 everywhere, 400 where it takes input, 404 where its path names an object,
  409/422 where it takes an Idempotency-Key,
  404 also where it takes a page number. Endpoints merged later get them too, unchanged.
"""

from drf_spectacular import openapi
from drf_spectacular.drainage import warn
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from accounts.idempotency import HEADER, SCHEMA_PARAMETER


class AutoSchema(openapi.AutoSchema):
    def _view_function(self):
        action = getattr(self.view, "action", None) or self.method.lower()
        return getattr(self.view, action, None)

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if getattr(self._view_function(), "idempotent", False):
            parameters.append(SCHEMA_PARAMETER)
        return parameters


def _error_example(code: str, message: str, details=None) -> dict:
    return {"status": "error", "error": {"code": code, "message": message, "details": details}}


ERROR_SCHEMA = {
    "type": "object",
    "description": "Every API error: the HTTP status says the kind, `error.code` the reason.",
    "properties": {
        "status": {"type": "string", "enum": ["error"]},
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Machine-readable reason, e.g. invalid, not_found, "
                    "not_authenticated, permission_denied, throttled, possible_duplicate, "
                    "idempotency_key_reused.",
                },
                "message": {"type": "string", "description": "A readable sentence."},
                "details": {
                    "description": "Per-field messages for `invalid`; extra data for some "
                    "codes (e.g. the candidates of `possible_duplicate`); otherwise null.",
                    "nullable": True,
                },
            },
            "required": ["code", "message", "details"],
        },
    },
    "required": ["status", "error"],
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}

ERROR_RESPONSES = {
    "400": (
        "BadRequest",
        "The request has invalid fields or parameters; `details` names them.",
        _error_example(
            "invalid",
            "The request has invalid fields: This field is required.",
            {"reason": ["This field is required."]},
        ),
        None,
    ),
    "401": (
        "Unauthorized",
        "No credentials, or a bad or expired token. Send `Authorization: Token <key>`.",
        _error_example("not_authenticated", "Authentication credentials were not provided."),
        {
            "WWW-Authenticate": {
                "description": "How to authenticate (`Token`).",
                "schema": {"type": "string"},
            }
        },
    ),
    "403": (
        "Forbidden",
        "The user's roles do not allow this action.",
        _error_example("permission_denied", "You do not have permission to perform this action."),
        None,
    ),
    "404": (
        "NotFound",
        "No such object in the user's scope (an object of another department is a 404 too), "
        "or a page number past the last page.",
        _error_example("not_found", "Not found."),
        None,
    ),
    "409": (
        "Conflict",
        "The request conflicts with the current state, or a request with the same "
        "Idempotency-Key is still running (retry after `Retry-After` seconds).",
        _error_example(
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still being processed; retry in a moment.",
        ),
        _RETRY_AFTER,
    ),
    "422": (
        "UnprocessableEntity",
        "The Idempotency-Key was already used for a different request.",
        _error_example(
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request; use a new key "
            "for a new request.",
        ),
        None,
    ),
    "429": (
        "TooManyRequests",
        "Throttled (per user and per token); wait `Retry-After` seconds.",
        _error_example("throttled", "Request was throttled. Expected available in 12 seconds."),
        _RETRY_AFTER,
    ),
}

_METHODS = ("get", "put", "patch", "post", "delete", "head", "options", "trace")


def _wanted(path: str, method: str, operation: dict) -> list[str]:
    if not path.startswith("/api/v1/"):
        return []
    parameters = operation.get("parameters", [])
    wanted = ["401", "403", "429"]
    takes_input = "requestBody" in operation or any(
        p.get("in") in ("query", "path", "header") for p in parameters
    )
    if takes_input:
        wanted.append("400")
    if any(p.get("in") == "path" or p.get("name") in ("page", "cursor") for p in parameters):
        wanted.append("404")  # an object out of scope, a page past the last, a bad cursor
    if any(p.get("in") == "header" and p.get("name") == HEADER for p in parameters):
        wanted += ["409", "422"]
    return wanted


def document_errors(result, generator, request, public):
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    responses = components.setdefault("responses", {})
    for name, description, example, headers in ERROR_RESPONSES.values():
        body = {
            "description": description,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"},
                    "examples": {name: {"value": example}},
                }
            },
        }
        if headers:
            body["headers"] = headers
        responses[name] = body
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            documented = operation.setdefault("responses", {})
            # Wanted codes, and those a view documented by a description only: the error shape.
            extra = [c for c in documented if c in ERROR_RESPONSES]
            for status in dict.fromkeys(_wanted(path, method, operation) + extra):
                current = documented.get(status)
                name = ERROR_RESPONSES[status][0]
                if current is None or not current.get("content"):
                    # Missing, or documented with a description only: the error shape applies.
                    documented[status] = {"$ref": f"#/components/responses/{name}"}
            if not any(code.startswith("4") for code in documented):
                warn(f"{method.upper()} {path} documents no 4xx response")
    return result


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.tokens.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                'An API token, sent as "Token <key>" (or "Bearer <key>"). Make one on the '
                "profile page (/accounts/tokens/) or, as an administrator, with POST "
                "/api/v1/tokens/ or `manage.py create_api_token`."
            ),
        }
