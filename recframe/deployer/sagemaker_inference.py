"""SageMaker entry points (shipped as ``code/inference.py`` inside ``model.tar.gz``).

The SageMaker PyTorch inference toolkit loads this module and calls ``model_fn`` once per worker,
then ``input_fn`` -> ``predict_fn`` -> ``output_fn`` per request. All four delegate to the same
:class:`~recframe.deployer.predictor.Predictor` as the local endpoint, so the contract is identical.

The container has torch and numpy but not recframe: the deployer vendors the few recframe modules
the predictor and the model class need next to this file (``code/recframe/``) and lists their
third-party imports in ``code/requirements.txt``.

Client errors are raised as the toolkit's ``BaseInferenceToolkitError`` with a 4xx status, so the
toolkit answers that status instead of 500; its body starts with the contract's ``{"error": ...}``
line (the toolkit appends its traceback after it). Callers of ``invoke_endpoint`` receive it as a
``ModelError`` carrying ``OriginalStatusCode`` and ``OriginalMessage``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the vendored recframe package sits beside this file
    sys.path.insert(0, _HERE)

try:  # present inside SageMaker's framework containers
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitError
except ImportError:  # in tests and anywhere else: the same attributes

    class _ToolkitError(Exception):  # type: ignore[no-redef]
        def __init__(self, status_code: int, message: str, phrase: str) -> None:
            super().__init__(message)
            self.status_code, self.message, self.phrase = status_code, message, phrase


JSON = "application/json"


class RequestRejected(_ToolkitError):
    """A client error with its HTTP status; the message is the contract's JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        from recframe.deployer.jsoncodec import error_body

        phrases = {400: "Bad Request", 406: "Not Acceptable", 413: "Payload Too Large", 415: "Unsupported Media Type"}
        super().__init__(status, error_body(message).decode(), phrases.get(status, "Unprocessable Entity"))


def model_fn(model_dir: str) -> Any:
    """Load and verify the artifact at the root of ``model_dir`` (checksums, ``weights_only`` tensors)."""
    from recframe.deployer.predictor import Predictor, ServingLimits

    threads = os.environ.get("RECFRAME_TORCH_THREADS")
    if threads:  # torch's pool and numpy's BLAS alike
        from recframe.deployer.serving_process import serving_threads

        serving_threads(int(threads))
    limits = ServingLimits(
        default_k=int(os.environ.get("RECFRAME_DEFAULT_K", 10)),
        max_k=int(os.environ.get("RECFRAME_MAX_K", 1000)),
        max_session_len=int(os.environ.get("RECFRAME_MAX_SESSION_LEN", 1000)),
        max_sessions=int(os.environ.get("RECFRAME_MAX_SESSIONS", 1000)),
    )
    return Predictor.from_artifact(model_dir, limits)


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def input_fn(request_body: bytes | str, request_content_type: str | None) -> Any:
    """Decode a JSON body; other content types get 415, oversized bodies 413, bad JSON 400."""
    from recframe.deployer.jsoncodec import decode
    from recframe.deployer.predictor import RequestError

    if _media_type(request_content_type) not in ("", JSON):
        raise RequestRejected(415, f"content type {request_content_type!r} is not supported; send {JSON}")
    limit = int(os.environ.get("RECFRAME_MAX_BODY_BYTES", 1 << 20))
    if len(request_body) > limit:
        raise RequestRejected(413, f"request body is larger than the {limit}-byte limit")
    try:
        return decode(request_body)
    except RequestError as e:
        raise RequestRejected(e.status, e.message) from None


def predict_fn(input_data: Any, model: Any) -> dict[str, Any]:
    """Validate against the contract and score (one batched ``score_next`` for a ``sessions`` batch)."""
    from recframe.deployer.predictor import RequestError

    try:
        return model.answer(input_data)
    except RequestError as e:
        raise RequestRejected(e.status, e.message) from None


def output_fn(prediction: dict[str, Any], accept: str | None) -> bytes:
    """Serialise as JSON, the only representation offered."""
    from recframe.deployer.jsoncodec import dumps

    if _media_type(accept) not in ("", JSON, "*/*", "application/*"):
        raise RequestRejected(406, f"cannot answer as {accept!r}; accept {JSON}")
    return dumps(prediction)
