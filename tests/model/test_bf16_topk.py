"""The top-k through a bf16 product is the float32 top-k, values and order bit for bit, or it declines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recframe.deployer.topk import topk_rows
from recframe.model.seq.nets.bf16_topk import CHUNK, Bf16TopK
from recframe.model.seq.nets.item_scores import BLOCK_KERNELS, ItemScorer
from recframe.vocab import ItemVocab


def _float32_top(states: np.ndarray, table: np.ndarray, bias: np.ndarray | None, k: int, masked=None):
    """What batch scoring ranks without the bf16 path: the float32 product of the packed table (by
    torch's GEMM, the one that scores the candidates), then its top-k."""
    d = table.shape[1]
    x = np.ones((len(states), d + (bias is not None)), dtype=np.float32)
    x[:, :d] = states
    packed = ItemScorer()._pack(torch.from_numpy(table), None if bias is None else torch.from_numpy(bias))
    scores = torch.empty((len(states), len(table)), dtype=torch.float32)
    BLOCK_KERNELS["torch"](x, packed, scores)
    if masked is not None:
        scores[torch.from_numpy(masked[0]), torch.from_numpy(masked[1])] = -np.inf
    values, idx = topk_rows(scores, k)
    return values.numpy(), idx.numpy()


def _case(n_items: int, d: int, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    table = (rng.standard_normal((n_items, d)) * 0.07).astype(np.float32)
    bias = (rng.standard_normal(n_items) * 0.01).astype(np.float32)
    states = (rng.standard_normal((rows, d)) * 0.3).astype(np.float32)
    return table, bias, states


def _made(table: np.ndarray, bias: np.ndarray | None) -> Bf16TopK:
    packed = ItemScorer()._pack(torch.from_numpy(table), None if bias is None else torch.from_numpy(bias))
    return Bf16TopK(packed, table, bias)


def _top(table, bias, states, k, masked=None):
    scratch = torch.empty((len(states), len(table)), dtype=torch.bfloat16)
    return _made(table, bias).top_k(states, k, scratch, masked)


@pytest.mark.parametrize(("n_items", "with_bias", "k"), [(5_000, True, 20), (4_137, False, 7), (6_401, True, 1)])
def test_equals_the_float32_ranking_bit_for_bit(n_items, with_bias, k) -> None:
    """Ragged tails (n_items not a multiple of CHUNK), with and without bias, k = 1 too."""
    table, bias, states = _case(n_items, 48, 200, seed=n_items)
    bias = bias if with_bias else None
    found = _top(table, bias, states, k)
    assert found is not None
    want_values, want_idx = _float32_top(states, table, bias, k)
    assert np.array_equal(found[0], want_values) and np.array_equal(found[1], want_idx)


def test_near_ties_below_bf16_resolution_rank_as_in_float32() -> None:
    """Thirty items a few float32 ulps apart, which bf16 cannot tell apart, and exact duplicates
    (equal scores: catalogue order); the best items of every row are among them."""
    table, bias, states = _case(8_000, 32, 64, seed=1)
    rng = np.random.default_rng(2)
    base = rng.standard_normal(32).astype(np.float32)
    near = np.arange(100, 4_000, 130)[:30]
    for j, item in enumerate(near):
        table[item] = base * np.float32(1 + j * 2.0**-19)
        bias[item] = 0.0
    table[7_500], bias[7_500] = table[near[7]], bias[near[7]]  # an exact twin, later in the catalogue
    states[:] = base * np.float32(4.0) + (rng.standard_normal(states.shape) * 0.01).astype(np.float32)
    found = _top(table, bias, states, 25)
    assert found is not None
    want_values, want_idx = _float32_top(states, table, bias, 25)
    assert np.array_equal(found[0], want_values) and np.array_equal(found[1], want_idx)
    assert set(want_idx[0]) <= set(near) | {7_500}
    assert list(want_idx[0]).index(near[7]) + 1 == list(want_idx[0]).index(7_500)  # twins: catalogue order


def test_masked_cells_are_never_ranked() -> None:
    table, bias, states = _case(5_000, 48, 50, seed=3)
    best = _float32_top(states, table, bias, 10)[1]
    rows = np.repeat(np.arange(50), 3)
    items = best[:, :3].reshape(-1)  # each row's three best items
    found = _top(table, bias, states, 10, (rows, items))
    assert found is not None
    want_values, want_idx = _float32_top(states, table, bias, 10, (rows, items))
    assert np.array_equal(found[0], want_values) and np.array_equal(found[1], want_idx)
    assert not (found[1][:, None, :] == best[:, :3, None]).any()


def test_declines_where_the_best_scores_are_not_positive() -> None:
    """Chunk maxima on the raw bits hold for positive scores only: such blocks go back to float32."""
    table, bias, states = _case(5_000, 16, 8, seed=4)
    table, states = np.abs(table), -np.abs(states)  # every score negative
    assert _top(table, None, states, 10) is None


def test_declines_on_nan_states_and_small_catalogues() -> None:
    table, bias, states = _case(5_000, 16, 8, seed=5)
    states[3, 2] = np.nan
    assert _top(table, bias, states, 10) is None
    assert not _made(table[: 4 * 10 * CHUNK - 1], None).eligible(10)
    assert _made(table[: 4 * 10 * CHUNK], None).eligible(10)


def test_the_item_scorer_rebuilds_its_bf16_table_after_an_in_place_update(monkeypatch) -> None:
    import recframe.model.seq.nets.item_scores as item_scores

    monkeypatch.setattr(item_scores, "bf16_matmul_fast", lambda: True)
    table, bias, states = (torch.from_numpy(a) for a in _case(3_000, 16, 9, seed=6))
    scorer = ItemScorer()
    scratch = torch.empty((9, 3_000), dtype=torch.bfloat16)
    with torch.no_grad():
        first = scorer.top_k(states, table, bias, 5, scratch)
        table.mul_(-1.0)
        second = scorer.top_k(states, table, bias, 5, scratch)
    assert first is not None and second is not None
    want = _float32_top(states.numpy(), table.numpy(), bias.numpy(), 5)
    assert np.array_equal(second[1], want[1]) and not np.array_equal(first[1], second[1])
    with torch.enable_grad():  # autograd: the float32 product's business
        assert scorer.top_k(states, table.requires_grad_(), bias, 5, scratch) is None


@pytest.mark.parametrize("name", ["GRU4RecModel", "SASRecModel", "LSTMModel"])
def test_every_sequence_model_ranks_its_own_scores(name, monkeypatch) -> None:
    """``top_states`` of each network (bias or none) is the top-k of ``score_states``' scores."""
    import importlib

    import recframe.model.seq.nets.item_scores as item_scores

    monkeypatch.setattr(item_scores, "bf16_matmul_fast", lambda: True)
    module = {"GRU4RecModel": "gru", "SASRecModel": "sasrec", "LSTMModel": "lstm"}[name]
    model = getattr(importlib.import_module(f"recframe.model.seq.{module}"), name)()
    torch.manual_seed(7)
    model.vocab = ItemVocab([f"i{j}" for j in range(3_000)], [1] * 3_000)
    model.net = model.build_net(3_000).eval()
    rng = np.random.default_rng(7)
    states = model.next_states([rng.integers(0, 3_000, int(rng.integers(1, 6))) for _ in range(40)]) * 3
    scratch = torch.empty((40, 3_000), dtype=torch.bfloat16)
    with torch.inference_mode():
        found = model.top_states(states, 10, scratch)
        scores = model.score_states(states)
        want_values, want_idx = topk_rows(scores, 10)
    assert found is not None
    assert np.array_equal(found[1], want_idx.numpy())
    np.testing.assert_array_equal(found[0], want_values.numpy())
    assert model.top_states(states, 10, torch.empty((40, 2_999), dtype=torch.bfloat16)) is None
