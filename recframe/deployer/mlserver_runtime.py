"""An MLServer custom runtime over the recframe Predictor (what ``deployer=seldon`` serves).

MLServer speaks the Open Inference (V2) protocol: ``POST /v2/models/NAME/infer`` with named tensors.
Two request shapes are accepted:

* **native V2** -- a BYTES tensor ``session`` (the SKUs, oldest first) and optional ``k`` (INT64)
  and ``exclude_seen`` (BOOL) tensors; the answer holds ``items`` (BYTES), ``scores`` (FP32) and
  ``unknown`` (INT64) tensors;
* **the recframe contract, wrapped** -- one BYTES tensor ``request`` holding the same JSON body as
  ``POST /invocations`` (single ``session`` or batch ``sessions``); the answer is one BYTES tensor
  ``response`` with the same JSON the local endpoint returns. This form is safe under MLServer's
  adaptive batching (several clients' ``request`` elements merged into one call); the native form
  is not (MLServer would run the merged sessions together), so keep batching off for it.

Client errors raise ``MLServerError`` with the 4xx status, which MLServer answers as
``{"error": "..."}``, so the contract holds here too. ``parameters.extra`` of
``model-settings.json`` may set ``default_k``, ``max_k``, ``max_session_len``, ``max_sessions``,
``exclude_seen`` and ``torch_threads``.
"""

from __future__ import annotations

from typing import Any

from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput
from mlserver.utils import get_model_uri

from recframe.deployer.jsoncodec import decode, dumps
from recframe.deployer.predictor import Predictor, RequestError, ServingLimits

LIMIT_KEYS = ("default_k", "max_k", "max_session_len", "max_sessions", "exclude_seen")


class RecframeRuntime(MLModel):
    """Serves a recframe artifact (``parameters.uri``: the artifact folder) over the V2 protocol."""

    async def load(self) -> bool:
        extra = dict((self.settings.parameters.extra if self.settings.parameters else None) or {})
        threads = extra.get("torch_threads")
        if threads:  # torch's pool and numpy's BLAS alike
            from recframe.deployer.serving_process import serving_threads

            serving_threads(int(threads))
        limits = ServingLimits(**{k: extra[k] for k in LIMIT_KEYS if k in extra})
        self.predictor = Predictor.from_artifact(await get_model_uri(self.settings), limits)
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = {i.name: i for i in payload.inputs}
        try:
            if "request" in inputs:
                outputs = [_bytes_output("response", self._answer_requests(_data(inputs["request"])))]
            elif "session" in inputs:
                body = {"session": [_text(x) for x in _data(inputs["session"])]}
                if "k" in inputs:
                    body["k"] = _scalar(inputs["k"], "k")
                if "exclude_seen" in inputs:
                    body["exclude_seen"] = _scalar(inputs["exclude_seen"], "exclude_seen")
                res = self.predictor.answer(body)
                outputs = [
                    _bytes_output("items", res["items"]),
                    ResponseOutput(name="scores", shape=[len(res["scores"])], datatype="FP32", data=res["scores"]),
                    ResponseOutput(name="unknown", shape=[1], datatype="INT64", data=[res["unknown"]]),
                ]
            else:
                raise RequestError('send a BYTES input "session" (SKUs) or "request" (a JSON body)')
        except RequestError as e:
            raise MLServerError(e.message, status_code=e.status) from None
        return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=outputs)

    def _answer_requests(self, elements: list[Any]) -> list[str]:
        """One JSON answer per ``request`` element, all scored in one ``predict_many`` call.

        MLServer's adaptive batching (``max_batch_size`` in ``model-settings.json``) merges
        concurrent requests by concatenating their tensors, so a ``request`` tensor may hold one
        element per client; MLServer hands element ``i`` of ``response`` back to client ``i``.
        One bad element fails the merged batch: MLServer cannot answer per element.
        """
        queries = []
        for element in elements:
            text = _text(element)
            if not isinstance(text, str):
                raise RequestError('input "request" must hold JSON strings')
            queries.append(self.predictor.parse(decode(text)))
        sessions, ks, exclude = [], [], []
        for q in queries:
            n = len(q.sessions)
            sessions += q.sessions
            ks += [q.k] * n
            exclude += [q.exclude_seen] * n
        flat = self.predictor.predict_many(sessions, ks, exclude)
        answers, start = [], 0
        for q in queries:
            answers.append(dumps(Predictor.shape(q, flat[start : start + len(q.sessions)])).decode())
            start += len(q.sessions)
        return answers


def _data(inp: RequestInput) -> list[Any]:
    data = inp.data.root if hasattr(inp.data, "root") else inp.data
    return list(data) if isinstance(data, (list, tuple)) else [data]


def _text(x: Any) -> Any:
    """BYTES elements arrive as str or bytes; other JSON values pass through to validation."""
    if isinstance(x, bytes):
        try:
            return x.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("BYTES elements must be UTF-8 text") from None
    return x


def _scalar(inp: RequestInput, name: str) -> Any:
    data = _data(inp)
    if len(data) != 1:
        raise RequestError(f'input "{name}" must hold exactly one value')
    return data[0]


def _bytes_output(name: str, values: list[str]) -> ResponseOutput:
    return ResponseOutput(name=name, shape=[len(values)], datatype="BYTES", data=values)
