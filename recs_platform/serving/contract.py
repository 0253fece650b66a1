"""The API's published contract: JSON request bodies only, and an OpenAPI document that
describes every response the service gives, errors included.

BentoML 1.4 has no hook to amend its generated spec, and what it generates is wrong for this
service in three places: the request schema drops ``null`` from the optional fields, the 400
body is declared with a string ``detail`` where BentoML sends pydantic's list of problems, and
the 415 and 503 this service answers are missing. ``published_spec`` corrects BentoML's spec and
``PublishedSpec`` serves the result on ``/docs.json`` (which the ``/docs`` page reads).

BentoML also accepts form and multipart bodies and answers a multipart body without a
boundary with a 500; ``JsonBodiesOnly`` refuses every non-JSON body with a 415 first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter
from starlette.responses import JSONResponse

from recs_platform.serving.health import READYZ
from recs_platform.serving.model import ServingHealth

SPEC_PATH = "/docs.json"
JSON = "application/json"
REF_TEMPLATE = "#/components/schemas/{model}"


class ValidationProblem(BaseModel):
    """One problem with a request, as pydantic reports it."""

    type: str = Field(description="The kind of problem, e.g. missing, int_type, json_invalid.")
    loc: list[str | int] = Field(description="Where in the body: field names and list indices; empty for the body.")
    msg: str
    url: str | None = Field(None, description="Pydantic's page on this kind of problem.")


class ErrorBody(BaseModel):
    """Every error response of the API."""

    error: str = Field(description="What went wrong, in one sentence.")
    detail: list[ValidationProblem] = Field(
        default_factory=list, description="On a 400: every problem with the request body."
    )


ERROR_RESPONSES = {
    "400": "The body is not valid JSON or does not match the request schema; `detail` names each problem.",
    "415": f"The body is not {JSON}.",
    "500": "An unexpected error; the server log has the details.",
    "503": "No production model is loaded yet.",
}
READYZ_RESPONSES = {
    "200": "A production bundle is loaded; `degraded` says whether the champion alias names another "
    "one this server could not load.",
    "503": "No production bundle is loaded yet.",
}


class JsonBodiesOnly:
    """Refuses a POST to an API route whose ``Content-Type`` is not JSON, with a 415 that names it.

    A request without a ``Content-Type`` passes: BentoML reads its body as JSON.
    """

    def __init__(self, app: Any, routes: Iterable[str]) -> None:
        self.app = app
        self.routes = frozenset(routes)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        media_type = _media_type(scope) if _is_api_post(scope, self.routes) else None
        if media_type is None or media_type == JSON:
            await self.app(scope, receive, send)
            return
        error = ErrorBody(error=f"Content-Type {media_type!r} is not supported: send the request body as {JSON}")
        await JSONResponse(error.model_dump(exclude_defaults=True), status_code=415)(scope, receive, send)


def _is_api_post(scope: dict, routes: frozenset[str]) -> bool:
    return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in routes


def _media_type(scope: dict) -> str | None:
    """The request's media type, lower case without parameters; None when it sends none."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return None


class PublishedSpec:
    """Answers ``GET /docs.json`` with ``spec()``, computed once."""

    def __init__(self, app: Any, spec: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.spec = spec
        self._published: dict[str, Any] | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["path"] != SPEC_PATH:
            await self.app(scope, receive, send)
            return
        if self._published is None:
            self._published = self.spec()
        await JSONResponse(self._published)(scope, receive, send)


def published_spec(generated: dict[str, Any], inputs: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """BentoML's ``generated`` spec with the request schemas of the API routes (``inputs``: route
    to request model), the error responses and ``/readyz`` corrected (see the module docstring)."""
    spec = json.loads(json.dumps(generated))  # a copy, with its status codes as strings as served
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    error_schema = _schema_of(ErrorBody, components)
    for route, model in inputs.items():
        operation = spec["paths"][route]["post"]
        operation["requestBody"] = {"required": True, **_json_content(_schema_of(model, components))}
        operation["responses"] = {
            "200": operation["responses"]["200"],
            **_responses(ERROR_RESPONSES, "ErrorBody", error_schema, components),
        }
    spec["paths"][READYZ]["get"]["responses"] = _responses(
        READYZ_RESPONSES, "ServingHealth", _health_schema(components), components
    )
    components.update({name: _openapi30(schema) for name, schema in components.items()})
    return spec


def _schema_of(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    """``model``'s JSON schema in OpenAPI 3.0's dialect; the models it nests go to ``components``."""
    schema = TypeAdapter(model).json_schema(ref_template=REF_TEMPLATE)
    components.update(schema.pop("$defs", {}))
    return _openapi30(schema)


def _health_schema(components: dict[str, Any]) -> dict[str, Any]:
    """``ServingHealth.as_dict()``: the dataclass' fields and its ``ready`` property."""
    schema = _schema_of(ServingHealth, components)
    schema["properties"]["ready"] = {"type": "boolean", "description": "A production bundle is loaded."}
    schema["required"].append("ready")
    return schema


def _responses(descriptions: dict[str, str], name: str, schema: dict[str, Any], components: dict) -> dict[str, Any]:
    """Responses with one JSON body schema, stored as the component ``name``."""
    components[name] = schema
    ref = {"$ref": REF_TEMPLATE.format(model=name)}
    return {status: {"description": text, **_json_content(ref)} for status, text in descriptions.items()}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {JSON: {"schema": schema}}}


def _openapi30(schema: Any) -> Any:
    """``schema`` in OpenAPI 3.0's dialect: pydantic's ``anyOf: [X, {type: null}]`` becomes X
    with ``nullable: true`` (3.0 has no null type)."""
    if isinstance(schema, list):
        return [_openapi30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _openapi30(value) for key, value in schema.items()}
    options = schema.get("anyOf", [])
    if {"type": "null"} not in options:
        return schema
    rest = [option for option in options if option != {"type": "null"}]
    (other,) = rest if len(rest) == 1 else ({"anyOf": rest},)
    # A $ref's siblings are ignored in 3.0, so a nullable reference is wrapped in allOf.
    other = {"allOf": [other]} if "$ref" in other else other
    siblings = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**other, **siblings, "nullable": True}
