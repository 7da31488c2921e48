"""The serving benchmark's baseline: the FastAPI app a user would write around the same Predictor.

One ``async`` route, a Pydantic request model, the dict the Predictor returns as the response: each
request is validated, scored alone (``Predictor.predict``, no batching) and answered before the
event loop takes the next one. It serves the same ``POST /invocations`` body as recframe's endpoint,
so the same load generator drives both.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from recframe.deployer.predictor import Predictor


class Query(BaseModel):
    """The single-session request body of the recframe contract."""

    session: list[str] = Field(max_length=1000)
    k: int = Field(10, ge=1, le=1000)
    exclude_seen: bool = True


def build_app(predictor: Predictor) -> FastAPI:
    """``POST /invocations`` and ``GET /ping`` over ``predictor``, one request at a time."""
    app = FastAPI(title="plain FastAPI over a recframe Predictor")

    @app.get("/ping")
    async def ping() -> dict[str, Any]:
        return {"status": "ok"}

    @app.post("/invocations")
    async def invocations(query: Query) -> dict[str, Any]:
        return predictor.predict(query.session, k=query.k, exclude_seen=query.exclude_seen)

    return app
