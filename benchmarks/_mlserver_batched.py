"""The MLServer side of the serving benchmark: recframe's runtime, made safe for adaptive batching.

MLServer's adaptive batching merges the requests that arrive within ``max_batch_time`` into one,
concatenating each input tensor along its first axis, and splits the answer's tensors back the same
way. ``RecframeRuntime`` reads one session per request, so a merged request would be misread (the
sessions run together, ``k`` holds several values). This runtime takes the wrapped form of the
contract, one BYTES ``request`` element per client request, and answers a merged request of ``n``
elements with one ``Predictor.predict_many`` call and a ``response`` tensor of ``n`` JSON answers,
which MLServer hands back one per client. Requests without ``request`` go to ``RecframeRuntime``.
"""

from __future__ import annotations

from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

from recframe.deployer.jsoncodec import decode, dumps
from recframe.deployer.mlserver_runtime import RecframeRuntime, _data, _text
from recframe.deployer.predictor import Predictor, RequestError


class BatchedRecframeRuntime(RecframeRuntime):
    """``request`` tensors of any length: one client request per element, scored together."""

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = {i.name: i for i in payload.inputs}
        if "request" not in inputs:
            return await super().predict(payload)
        try:
            queries = [self.predictor.parse(decode(_text(x))) for x in _data(inputs["request"])]
        except RequestError as e:  # one bad request fails its batch: MLServer cannot answer per element
            raise MLServerError(e.message, status_code=e.status) from None
        sessions, ks, excl = [], [], []
        for q in queries:
            sessions.extend(q.sessions)
            ks.extend([q.k] * len(q.sessions))
            excl.extend([q.exclude_seen] * len(q.sessions))
        flat = self.predictor.predict_many(sessions, ks, excl)
        answers, start = [], 0
        for q in queries:
            answers.append(dumps(Predictor.shape(q, flat[start : start + len(q.sessions)])).decode())
            start += len(q.sessions)
        out = ResponseOutput(name="response", shape=[len(answers)], datatype="BYTES", data=answers)
        return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=[out])
