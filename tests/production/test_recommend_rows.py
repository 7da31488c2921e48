"""The rows of batch scoring against a ranking computed directly from the network, session by session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recframe.model.seq.data import PAD, pad_sessions
from recframe.model.seq.gru import GRU4RecModel
from recframe.score import ScoreSettings, recommend
from recframe.vocab import ItemVocab

N_ITEMS = 120


def _untrained(n_items: int, units: int, seed: int, bias: float) -> GRU4RecModel:
    """A GRU4Rec over items ``i0``.. with random weights and biases in ``[-bias, bias]``."""
    torch.manual_seed(seed)
    m = GRU4RecModel(layers=[units])
    m.vocab = ItemVocab([f"i{j}" for j in range(n_items)], list(range(2 * n_items, n_items, -1)))
    m.net = m.build_net(n_items).eval()
    with torch.no_grad():
        m.net.By.weight.uniform_(-bias, bias)
    return m


@pytest.fixture(scope="module")
def model() -> GRU4RecModel:
    return _untrained(N_ITEMS, 16, seed=3, bias=0.3)


def _sessions(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    items = []
    for i in range(n):
        s = [f"i{j}" for j in rng.integers(0, N_ITEMS, int(rng.integers(1, 14)))]
        if i % 7 == 0:
            s.insert(int(rng.integers(0, len(s))), "unknown-sku")
        items.append(s)
    items[3] = ["unknown-a", "unknown-b"]  # cold: popularity
    items[4] = [items[5][0]] * 3  # repeats
    users = [None if i % 3 else f"u{i}" for i in range(n)]
    return pd.DataFrame({"session_key": [f"s{i}" for i in range(n)], "user_key": users, "items": items})


def _reference(model: GRU4RecModel, items: list[str], k: int, exclude: bool) -> tuple[list[str], np.ndarray]:
    known = [model.vocab.index[x] for x in items if x in model.vocab.index]
    if not known:
        return [f"i{j}" for j in range(k)], np.arange(2 * N_ITEMS, 2 * N_ITEMS - k, -1, dtype=float)
    with torch.no_grad():
        padded = torch.from_numpy(pad_sessions([np.asarray(known)]))
        state = model.net.sequence_states(padded)[0, int((padded != PAD).sum()) - 1]
        scores = (model.net.Wy.weight @ state + model.net.By.weight[:, 0]).numpy().astype(np.float64)
    if exclude:
        scores[known] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    order = order[np.isfinite(scores[order])]
    return [f"i{j}" for j in order], scores[order]


@pytest.mark.parametrize(
    ("exclude", "n", "batch_size"),
    [
        (True, 150, 4),  # many small blocks, and more than one pass of sequence states
        (False, 150, 4),
        (True, 700, 1024),  # one pass of states, scored in parallel row blocks (score_blocks)
        (False, 700, 1024),
    ],
)
def test_rows_equal_a_direct_ranking_of_every_session(model, exclude, n, batch_size, monkeypatch):
    import recframe.deployer.predictor as predictor

    # the states of parallel row blocks: 64 sessions' first, then parts of 96 from a thread of their own
    monkeypatch.setattr(predictor, "FIRST_ROWS", 64)
    monkeypatch.setattr(predictor, "AHEAD_ROWS", 96)
    sessions = _sessions(n)
    k = 7
    settings = ScoreSettings(k=k, batch_size=batch_size, exclude_seen=exclude)
    table = recommend(model, sessions, settings, "t1", "v1", "r1")
    rows = table.to_pandas().astype({"session_key": object, "sku": object, "tenant": object})
    assert set(rows["tenant"]) == {"t1"} and set(rows["model_version"].astype(str)) == {"v1"}
    assert rows["scored_at"].nunique() == 1
    by_session = dict(tuple(rows.groupby("session_key", sort=False)))
    assert set(by_session) == set(sessions["session_key"])
    for _, s in sessions.iterrows():
        got = by_session[s["session_key"]]
        want_items, want_scores = _reference(model, s["items"], k, exclude)
        assert got["rank"].tolist() == list(range(1, len(want_items) + 1))
        assert got["sku"].tolist() == want_items, s["session_key"]
        np.testing.assert_allclose(got["score"].to_numpy(), want_scores, rtol=1e-5, atol=1e-5)
        assert got["user_key"].tolist() == [s["user_key"]] * len(got)
        if exclude:
            assert not set(got["sku"]) & set(s["items"])
    # each session's rows are contiguous and in rank order
    starts = rows["rank"].to_numpy() == 1
    assert starts.sum() == len(sessions) and rows["session_key"][starts].is_unique


def test_no_sessions_give_an_empty_table(model):
    empty = pd.DataFrame({"session_key": [], "user_key": [], "items": []})
    table = recommend(model, empty, ScoreSettings(k=5), "t", "v", "r")
    assert table.num_rows == 0 and table.column_names[0] == "tenant"


@pytest.mark.parametrize("exclude", [True, False])
def test_rows_ranked_through_a_bf16_product_equal_the_float32_ranking(exclude, monkeypatch):
    """Batch scoring's bf16 path (CPUs with a bf16 matrix unit) writes the float32 path's rows, scores
    included; forced on here whatever this CPU has, and checked to have ranked the blocks."""
    import recframe.deployer.predictor as predictor
    import recframe.model.seq.nets.item_scores as item_scores
    from recframe.model.seq.nets.bf16_topk import Bf16TopK
    from recframe.timing_trials import FasterOf

    n_items = 3_000
    big = _untrained(n_items, 24, seed=4, bias=0.05)
    rng = np.random.default_rng(8)
    items = [[f"i{j}" for j in rng.integers(0, n_items, int(rng.integers(1, 9)))] for _ in range(600)]
    sessions = pd.DataFrame({"session_key": [f"s{i}" for i in range(600)], "user_key": None, "items": items})
    monkeypatch.setattr(item_scores, "bf16_matmul_fast", lambda: True)
    ranked = []
    original = Bf16TopK.top_k

    def counted(self, *args, **kwargs):
        found = original(self, *args, **kwargs)
        ranked.append(found is not None)
        return found

    monkeypatch.setattr(Bf16TopK, "top_k", counted)
    tables = {}
    for path in ("float32", "bf16"):

        class Forced(FasterOf):
            def __init__(self, names, *args, path=path, **kwargs):
                super().__init__(names, *args, **kwargs)
                self.chosen = path

        monkeypatch.setattr(predictor, "FasterOf", Forced)
        settings = ScoreSettings(k=10, batch_size=1024, exclude_seen=exclude)
        tables[path] = recommend(big, sessions, settings, "t", "v", "r").drop_columns(["scored_at"])
    assert ranked and all(ranked)
    assert tables["bf16"].equals(tables["float32"])
