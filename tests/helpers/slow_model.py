"""A probe model whose scoring takes a set time: keeps requests in flight long enough to signal the
server while they are being answered (SIGTERM drains, model swaps)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from recframe.deployer.probe_model import ProbeGRUModel
from recframe.vocab import ItemVocab


class SlowProbeModel(ProbeGRUModel):
    """:class:`ProbeGRUModel` that sleeps ``delay_s`` per scoring call (the delay is saved in the artifact)."""

    name = "slow_probe"

    def __init__(self, dim: int = 16, seed: int = 0, delay_s: float = 0.2) -> None:
        super().__init__(dim, seed)
        self.delay_s = float(delay_s)

    def score_next(self, sessions: Sequence[np.ndarray]) -> Any:
        time.sleep(self.delay_s)
        return super().score_next(sessions)

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        config, tensors = super().get_state()
        return {**config, "delay_s": self.delay_s}, tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any], vocab: ItemVocab) -> SlowProbeModel:
        m = cls(config.get("dim", 16), config.get("seed", 0), config.get("delay_s", 0.2))
        m.vocab = vocab
        m._build(len(vocab))
        m.net.load_state_dict(tensors)
        return m
