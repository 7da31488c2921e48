"""The ``served`` block: metrics under the endpoint's ranking settings, and gates that judge it.

A "repeat" model ranks the session's own items first; on sessions that revisit items its headline
hit rate is high, but the endpoint (``exclude_seen``) never returns those items, so the served hit
rate must drop, and must equal the hit rate measured through the serving predictor itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from recframe.deployer.predictor import Predictor
from recframe.interfaces import ConfigError, Dataset, Model
from recframe.tester.metrics import MetricsTester
from recframe.tester.scoring import encode_test
from recframe.tester.served import seen_index, serving_settings
from recframe.vocab import ItemVocab

N = 30


def revisiting_events(n_sessions: int, seed: int, prefix: str) -> pd.DataFrame:
    """Sessions that go back and forth between two items, sometimes moving on to a fresh one."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        a, b = rng.choice(N, 2, replace=False)
        seq = [a, b, a, b]
        if rng.random() < 0.5:
            seq.append((b + 1) % N if (b + 1) % N != a else (b + 2) % N)
        for t, item in enumerate(seq):
            rows.append((f"{prefix}{s:04d}", f"sku{int(item):02d}", s * 100 + t))
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])


class RepeatModel(Model):
    """Scores the session's items above everything (the one before the last first), then ``last + 1``."""

    name = "repeat"

    def fit(self, train, valid=None, ctx=None):
        self.vocab = ItemVocab.from_events(train)
        self.nxt = np.array([self.vocab.index.get(f"sku{(int(s[3:]) + 1) % N:02d}", 0) for s in self.vocab.items])
        return self

    def score_next(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        out = np.tile(self.vocab.popularity().astype(np.float32) * 1e-6, (len(sessions), 1))
        for i, s in enumerate(sessions):
            out[i, self.nxt[s[-1]]] += 1.0
            for pos, item in enumerate(s):
                out[i, item] += 10.0 + pos
            if len(s) >= 2:  # back and forth: the item before the last comes next
                out[i, s[-2]] += 100.0
        return out

    def get_state(self):
        return {}, {}

    @classmethod
    def from_state(cls, config, tensors, vocab):
        raise NotImplementedError


@pytest.fixture(scope="module")
def revisits() -> Dataset:
    train, test = revisiting_events(300, 1, "tr"), revisiting_events(80, 2, "te")
    return Dataset(train=train, valid=train.iloc[:0], test=test, stats={})


@pytest.fixture(scope="module")
def repeat_model(revisits: Dataset) -> RepeatModel:
    return RepeatModel().fit(revisits.train)


def served_hr_via_predictor(model: Model, test: pd.DataFrame, k: int) -> float:
    """HR@k of what the serving predictor answers for every prefix (the ground truth)."""
    pred = Predictor(model)
    hits, n = 0, 0
    for _, g in test.groupby("session_id", sort=False):
        skus = g["item_id"].astype(str).tolist()
        for p in range(1, len(skus)):
            items = pred.predict(skus[:p], k=k, exclude_seen=True)["items"]
            hits += skus[p] in items
            n += 1
    return hits / n


def test_served_block_matches_the_serving_predictor(tmp_path: Path, revisits: Dataset, repeat_model) -> None:
    tester = MetricsTester(ks=(1, 5), k=5, serving={"exclude_seen": True})
    m = tester.run(repeat_model, revisits, tmp_path / "report").metrics
    served = m["served"]
    assert served["settings"] == {"exclude_seen": True}
    assert served["targets"] == m["targets"]
    # headline: repeats are hits; served: they can never be returned
    assert m["hr@1"] > 0.5
    assert served["hr@1"] < m["hr@1"] - 0.3
    for k in (1, 5):
        assert served[f"hr@{k}"] == pytest.approx(served_hr_via_predictor(repeat_model, revisits.test, k))
    assert set(served["baseline_pop"]) == set(m["baseline_pop"])
    json.dumps(m)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["metrics"]["served"]["hr@1"] == served["hr@1"]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "id='served'" in page and "exclude_seen=True" in page


def test_gate_judges_the_served_ranking(tmp_path: Path, revisits: Dataset, repeat_model) -> None:
    headline = MetricsTester(ks=(1,), k=1).run(repeat_model, revisits, tmp_path / "a").metrics
    served_hr = (
        MetricsTester(ks=(1,), k=1, serving={"exclude_seen": True})
        .run(repeat_model, revisits, tmp_path / "b")
        .metrics["served"]["hr@1"]
    )
    bar = (headline["hr@1"] + served_hr) / 2  # between the two: the headline passes, the served fails
    gate = {"hr@1": f">= {bar}"}
    assert MetricsTester(ks=(1,), k=1, gates=gate).run(repeat_model, revisits, tmp_path / "c").passed
    result = MetricsTester(ks=(1,), k=1, gates=gate, serving={"exclude_seen": True}).run(
        repeat_model, revisits, tmp_path / "d"
    )
    assert not result.passed
    assert "gate hr@1" in result.failures[0]
    verdict = result.report["gates"][0]
    assert verdict["on"] == "served" and verdict["value"] == pytest.approx(served_hr)
    low = {"hr@1": f">= {served_hr * 0.9}"}
    assert (
        MetricsTester(ks=(1,), k=1, gates=low, serving={"exclude_seen": True})
        .run(repeat_model, revisits, tmp_path / "e")
        .passed
    )


def test_exclude_seen_off_serves_the_headline(tmp_path: Path, revisits: Dataset, repeat_model) -> None:
    m = MetricsTester(ks=(1, 5), k=5, serving={"exclude_seen": False}).run(repeat_model, revisits, tmp_path).metrics
    assert m["served"]["settings"] == {"exclude_seen": False}
    for key in ("hr@1", "mrr@5", "coverage@5"):
        assert m["served"][key] == m[key]


def test_served_on_the_fixture_models(tmp_path: Path, dataset: Dataset, markov) -> None:
    """A model that rarely repeats: served metrics stay close, and never count a repeat as a hit."""
    m = MetricsTester(serving={"exclude_seen": True}).run(markov, dataset, tmp_path).metrics
    assert m["served"]["targets"] == m["targets"]
    assert m["served"]["hr@20"] == pytest.approx(served_hr_via_predictor(markov, dataset.test, 20))


def test_seen_index_marks_repeats() -> None:
    idx = seen_index([np.array([3, 4, 3, 5]), np.array([7])])
    assert idx.repeat.tolist() == [False, True, False]
    rows, cols = idx.batch(0, 3)
    assert rows.tolist() == [0, 1, 1, 2, 2, 2] and cols.tolist() == [3, 3, 4, 3, 4, 3]
    rows, cols = idx.batch(1, 3)
    assert rows.tolist() == [0, 0, 1, 1, 1]


def test_serving_settings_from_the_deployer_group() -> None:
    assert serving_settings(OmegaConf.create({"exclude_seen": False})) == {"exclude_seen": False}
    assert serving_settings(OmegaConf.create({"keep_alive": False})) == {"exclude_seen": True}  # deployer=none
    assert serving_settings(None) == {"exclude_seen": True}
    with pytest.raises(ConfigError):
        serving_settings({"exclude_seen": "yes"})
    with pytest.raises(ConfigError):
        MetricsTester(serving=[1])


def test_encode_matches_index(revisits: Dataset, repeat_model) -> None:
    enc = encode_test(revisits.test, repeat_model.vocab)
    idx = seen_index(enc.sessions)
    assert len(idx.repeat) == sum(len(s) - 1 for s in enc.sessions)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (("deployer=local", "deployer.exclude_seen=false"), False),
        (("deployer=local",), True),
        (("deployer=none",), True),  # what `recframe serve` / `recframe score` use later
        (("tester=metrics", "deployer=sagemaker"), True),
    ],
)
def test_pipeline_passes_the_deployers_settings(compose_config, tmp_path: Path, overrides, expected) -> None:
    from recframe.app import build_pipeline

    pipeline = build_pipeline(compose_config(*overrides), run_dir=tmp_path, check=False)
    assert pipeline.tester.serving == {"exclude_seen": expected}


def test_popularity_closed_form_matches_the_batched_pass(revisits: Dataset) -> None:
    from recframe.model.pop import PopModel
    from recframe.tester.scoring import constant_ranking_served, score_model

    pop = PopModel().fit(revisits.train)
    enc = encode_test(revisits.test, pop.vocab)
    closed = constant_ranking_served(pop.vocab.popularity(), enc.sessions, 5)
    batched = score_model(pop, enc.sessions, 5, 64, seen_index(enc.sessions)).extra["served"]
    np.testing.assert_array_equal(np.minimum(closed.ranks, 6), batched.ranks)
    for key in ("hr@1", "hr@5", "mrr@5"):
        assert closed.metrics((1, 5))[key] == pytest.approx(batched.metrics((1, 5))[key])
    assert closed.ranks.min() >= 1


def test_served_ranking_leaves_the_models_scores_intact(revisits: Dataset, repeat_model) -> None:
    from recframe.tester.scoring import score_model

    class Owning(RepeatModel):
        """Hands out the same array every call, as a model caching its output might."""

        def score_next(self, sessions):
            out = super().score_next(sessions)
            self.last = out
            self.copy = out.copy()
            return out

    m = Owning()
    m.vocab, m.nxt = repeat_model.vocab, repeat_model.nxt
    enc = encode_test(revisits.test, m.vocab)
    score_model(m, enc.sessions, 5, 16, seen_index(enc.sessions))
    np.testing.assert_array_equal(m.last, m.copy)


def test_run_summary_shows_the_served_figures(tmp_path: Path) -> None:
    from rich.console import Console

    from recframe.console import print_summary
    from recframe.pipeline import RunResult

    metrics = {"model": "m", "hr@20": 0.5, "served": {"settings": {"exclude_seen": True}, "hr@20": 0.25}}
    console = Console(record=True, width=200)
    print_summary(console, RunResult(run_dir=tmp_path, steps=["test"], metrics=metrics))
    text = console.export_text()
    assert "as served" in text and "hr@20 0.25" in text and "exclude_seen=True" in text


def test_champion_gate_scores_the_served_ranking(tmp_path: Path, revisits: Dataset, repeat_model) -> None:
    from recframe.champion_gate import served_metrics

    served = MetricsTester(ks=(5,), k=5, serving={"exclude_seen": True}).run(repeat_model, revisits, tmp_path)
    got = served_metrics(repeat_model, revisits.test, 5)
    assert got["hr@5"] == pytest.approx(served.metrics["served"]["hr@5"])
    assert got["mrr@5"] == pytest.approx(served.metrics["served"]["mrr@5"]) and got["targets"] > 0


def test_broadcast_and_read_only_score_batches(revisits: Dataset, repeat_model) -> None:
    """A model may hand out one row for all prefixes (a view) or a read-only array."""
    import torch

    from recframe.tester.scoring import score_model

    class Broadcast(RepeatModel):
        def __init__(self, as_tensor: bool) -> None:
            self.as_tensor = as_tensor

        def score_next(self, sessions):
            row = self.vocab.popularity().astype(np.float32)
            if self.as_tensor:
                return torch.from_numpy(row).expand(len(sessions), -1)
            return np.broadcast_to(row, (len(sessions), len(row)))

    enc = encode_test(revisits.test, repeat_model.vocab)
    results = []
    for as_tensor in (True, False):
        m = Broadcast(as_tensor)
        m.vocab = repeat_model.vocab
        results.append(score_model(m, enc.sessions, 5, 16, seen_index(enc.sessions)).extra["served"].ranks)
    np.testing.assert_array_equal(results[0], results[1])
