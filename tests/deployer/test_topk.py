"""The block top-k must give exactly torch.topk's values, whatever the shape, k and -inf masking."""

import pytest
import torch

from recframe.deployer.topk import topk_rows


@pytest.mark.parametrize("m", [10, 1000, 5000, 43_000, 43_001])
@pytest.mark.parametrize("k", [1, 20, 100])
def test_same_values_as_torch_topk(m: int, k: int) -> None:
    if k > m:
        pytest.skip("k larger than the catalogue")
    g = torch.Generator().manual_seed(m * 1000 + k)
    scores = torch.randn(6, m, generator=g)
    scores[0] = -torch.inf  # every item excluded
    scores[1, ::3] = -torch.inf  # a third excluded
    scores[2, : m // 2] = 5.0  # ties at the top
    values, indices = topk_rows(scores, k)
    expected = torch.topk(scores, k, dim=1).values
    assert torch.equal(values, expected)
    assert torch.equal(scores.gather(1, indices), values)
    assert all(len(set(row.tolist())) == k for row in indices)  # no item twice


def test_best_item_in_last_ragged_block_is_found() -> None:
    scores = torch.zeros(2, 43_001)
    scores[0, -1] = 9.0
    scores[1, 64 * 100 + 3] = 9.0
    values, indices = topk_rows(scores, 5)
    assert indices[0, 0].item() == 43_000 and indices[1, 0].item() == 6403
    assert values[:, 0].tolist() == [9.0, 9.0]
