"""JSON in and out for every serving surface, with no web framework attached.

orjson when installed (several times faster on both ends), else the standard library. Kept apart
from :mod:`recframe.deployer.serving` so SageMaker's ``inference.py`` and the MLServer runtime can use
it without FastAPI.
"""

from __future__ import annotations

import json
from typing import Any

from recframe.deployer.predictor import RequestError

try:
    import orjson

    _loads = orjson.loads
    _DECODE_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, UnicodeDecodeError, ValueError)

    def dumps(obj: Any) -> bytes:
        """Compact JSON bytes."""
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - exercised only without orjson
    _loads = json.loads
    _DECODE_ERRORS = (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError)

    def dumps(obj: Any) -> bytes:
        """Compact JSON bytes."""
        return json.dumps(obj, separators=(",", ":")).encode()


def decode(body: bytes | str) -> Any:
    """Decode a request body; anything that is not one JSON document is a 400 :class:`RequestError`."""
    if not body or not body.strip():
        raise RequestError('empty request body: send a JSON object such as {"session": ["sku1"], "k": 10}', 400)
    try:
        return _loads(body)
    except RecursionError:
        raise RequestError("request body is not valid JSON: nested too deeply", 400) from None
    except _DECODE_ERRORS as e:
        raise RequestError(f"request body is not valid JSON: {str(e)[:200]}", 400) from None


def error_body(message: str) -> bytes:
    """``{"error": message}`` that always encodes (ASCII-escaped, so even lone surrogates are safe)."""
    return json.dumps({"error": str(message)[:2000]}, ensure_ascii=True).encode()
