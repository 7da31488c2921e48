"""The BLAS scoring path gives torch's scores, follows weight updates, and leaves autograd to torch."""

from __future__ import annotations

import pytest
import torch

from recframe.model.seq.nets.item_scores import ItemScorer


def _tables(n: int = 1_000, d: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randn(n, generator=g), torch.randn(7, d, generator=g)


def test_inference_scores_equal_torch_with_and_without_bias() -> None:
    table, bias, states = _tables()
    scorer = ItemScorer()
    with torch.inference_mode():
        got = scorer(states, table, bias)
        got_nobias = ItemScorer()(states, table, None)
    assert got.shape == (7, 1_000) and got.dtype == torch.float32
    torch.testing.assert_close(got, torch.addmm(bias, states, table.T), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_nobias, states @ table.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 511, 1_300])
def test_the_packed_table_is_the_transposed_table_over_the_bias_row(n: int) -> None:
    """Packed tile by tile: every item's column is its row of the table, exactly, the bias below."""
    table, bias, _ = _tables(n)
    packed = ItemScorer()._pack(table, bias)
    assert packed.shape == (17, n) and packed.flags.c_contiguous
    assert torch.equal(torch.from_numpy(packed[:16]), table.T) and torch.equal(torch.from_numpy(packed[16]), bias)
    assert torch.equal(torch.from_numpy(ItemScorer()._pack(table.T.contiguous().T, None)), table.T)


def test_packed_table_is_rebuilt_after_an_in_place_update() -> None:
    table, bias, states = _tables()
    scorer = ItemScorer()
    with torch.no_grad():
        before = scorer(states, table, bias)
        table.mul_(2.0)  # what an optimiser step does
        bias.add_(1.0)
        after = scorer(states, table, bias)
    torch.testing.assert_close(after, torch.addmm(bias, states, table.T), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after)


def test_training_keeps_the_autograd_path() -> None:
    table, bias, states = _tables()
    table.requires_grad_(True)
    out = ItemScorer()(states, table, bias)
    assert out.requires_grad
    out.sum().backward()
    assert table.grad is not None and table.grad.shape == table.shape


def test_a_scores_row_can_be_masked_in_place() -> None:
    table, bias, states = _tables()
    with torch.inference_mode():
        scores = ItemScorer()(states, table, bias)
        scores[0, 3] = -float("inf")  # the predictor masks seen items in the returned tensor
    assert scores[0, 3] == -float("inf")


def test_onednn_micro_batches_score_like_the_numpy_path(monkeypatch) -> None:
    """Micro-batches go through oneDNN, one state and big batches through numpy: same scores."""
    import recframe.model.seq.nets.item_scores as item_scores

    g = torch.Generator().manual_seed(1)
    table, bias, states = (
        torch.randn(3_000, 24, generator=g),
        torch.randn(3_000, generator=g),
        torch.randn(140, 24, generator=g),
    )
    fast = ItemScorer()
    with torch.inference_mode():
        got = {rows: fast(states[:rows], table, bias) for rows in (1, 2, 7, 128, 129)}
        monkeypatch.setattr(item_scores, "ONEDNN_ROWS", (10**9, 0))  # numpy for every size
        for rows, scores in got.items():
            torch.testing.assert_close(scores, ItemScorer()(states[:rows], table, bias), rtol=1e-5, atol=1e-5)
    if fast._onednn_ok:  # where torch has oneDNN, the micro-batches did use it
        assert fast._onednn is not None


@pytest.mark.parametrize("faster", ["numpy", "torch"])
def test_products_into_a_buffer_try_both_gemms_then_keep_the_faster(monkeypatch, faster) -> None:
    """Batch scoring's blocks: each GEMM on trial, then the one with the best time per row, same scores."""
    import recframe.model.seq.nets.item_scores as item_scores

    clock = [0.0]
    monkeypatch.setattr(item_scores, "perf_counter", lambda: clock[0])
    for name, gemm in list(item_scores.BLOCK_KERNELS.items()):

        def timed(x, packed, out, gemm=gemm, cost=1.0 if name == faster else 1.5):
            clock[0] += cost
            gemm(x, packed, out)

        monkeypatch.setitem(item_scores.BLOCK_KERNELS, name, timed)
    table, bias, states = _tables()
    want = torch.addmm(bias, states, table.T)
    scorer = ItemScorer()
    out = torch.empty(7, 1_000)
    with torch.inference_mode():
        for _ in range(2 * item_scores.KERNEL_TRIALS + 3):
            got = scorer(states, table, bias, out=out)
            assert got is out  # written into the caller's buffer, by whichever kernel
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert [len(t) for t in scorer._kernels.times.values()] == [item_scores.KERNEL_TRIALS] * 2
    assert scorer._kernels.chosen == faster
