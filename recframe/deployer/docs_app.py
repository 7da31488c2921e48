"""The documented twin of the serving app: FastAPI routes for ``/ping`` and ``/invocations`` with
OpenAPI schemas (``/docs``, ``/openapi.json``), and JSON for every error, unknown routes included.

The routes call the same handlers as the raw-ASGI fast path of
:class:`~recframe.deployer.serving.ServingApp`, so both give the same answers; the app is rebuilt
for each model the server swaps in, because its examples and bounds describe that model.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from recframe.deployer.jsoncodec import error_body

if TYPE_CHECKING:
    from recframe.deployer.predictor import Predictor
    from recframe.deployer.serving import ServingApp

log = logging.getLogger(__name__)


def build_fastapi(serving: ServingApp, pred: Predictor) -> FastAPI:
    """The documented app for ``pred``: same handlers as the fast path, OpenAPI schemas, JSON errors."""
    example = pred.example_session(2)
    app = FastAPI(
        title="recframe endpoint",
        version="1",
        description=(
            "Next-item recommendations for a shopping session. SKUs in, SKUs out. Unknown SKUs are "
            "ignored and counted; items already in the session are excluded unless "
            '`"exclude_seen": false`; sessions with no known SKU get the most popular items. '
            f"`k` is an integer in [1, {pred.limits.max_k}] (clamped to the {pred.n_items} items of the "
            f"catalogue). Bodies over {serving.max_body_bytes} bytes get 413; every error is "
            '`{"error": "..."}` with a 4xx status.'
        ),
    )

    def json_response(status: int, body: bytes) -> Response:
        return Response(content=body, status_code=status, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return json_response(exc.status_code, error_body(str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return json_response(422, error_body(str(exc.errors())[:500]))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return json_response(500, error_body(f"internal error: {type(exc).__name__}"))

    request_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "session": {"type": "array", "items": {"type": ["string", "integer"]}, "description": "SKUs, oldest first"},
            "sessions": {
                "type": "array",
                "items": {"type": "array", "items": {"type": ["string", "integer"]}},
                "description": "a batch of sessions",
            },
            "k": {"type": "integer", "minimum": 1, "maximum": pred.limits.max_k, "default": pred.limits.default_k},
            "exclude_seen": {"type": "boolean", "default": pred.limits.exclude_seen},
        },
        "oneOf": [{"required": ["session"]}, {"required": ["sessions"]}],
    }
    result_schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "string"}},
            "scores": {"type": "array", "items": {"type": "number"}},
            "unknown": {"type": "integer", "description": "SKUs of the session not in the catalogue"},
        },
    }
    batch_schema = {"type": "object", "properties": {"results": {"type": "array", "items": result_schema}}}
    error_schema = {"type": "object", "properties": {"error": {"type": "string"}}}

    @app.get("/ping", summary="200 when the model is loaded", response_model=None)
    async def ping() -> Response:
        return json_response(*serving.ping())

    @app.post(
        "/invocations",
        response_model=None,
        summary="Recommend the next items for a session (or a batch of sessions)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": request_schema,
                        "examples": {
                            "single": {"value": {"session": example, "k": 10}},
                            "batch": {"value": {"sessions": [example, example[:1]], "k": 5}},
                        },
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "a result, or {results: [...]} for a batch",
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    result_schema,
                                    batch_schema,
                                ]
                            }
                        }
                    },
                },
                "400": {"description": "invalid JSON", "content": {"application/json": {"schema": error_schema}}},
                "413": {"description": "body too large", "content": {"application/json": {"schema": error_schema}}},
                "422": {"description": "invalid request", "content": {"application/json": {"schema": error_schema}}},
            },
        },
    )
    async def invocations(request: Request) -> Response:
        return json_response(*(await serving.invocations(request.receive)))

    return app
