"""GRU4Rec's packed last-state path (serving, batch scoring) against the padded ``sequence_states``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recframe.model.seq.data import PAD, pad_sessions
from recframe.model.seq.nets.gru import GRU4RecNet

MODES = {
    "constrained": {"constrained_embedding": True},
    "embedding": {"constrained_embedding": False, "embedding": 12},
    "onehot": {"constrained_embedding": False, "embedding": 0},
}


def _padded_last(net: GRU4RecNet, sessions: list[np.ndarray]) -> torch.Tensor:
    items = torch.from_numpy(pad_sessions(sessions))
    last = (items != PAD).sum(dim=1) - 1
    return net.sequence_states(items)[torch.arange(len(sessions)), last]


@pytest.mark.parametrize("layers", [[10], [10, 7]])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_last_states_equal_padded_states_at_each_sessions_end(mode, layers):
    torch.manual_seed(0)
    n_items = 50
    net = GRU4RecNet(n_items, layers, **MODES[mode]).eval()
    with torch.no_grad():  # non-zero biases, so a misplaced bias term cannot hide
        for name, p in net.named_parameters():
            if "bias" in name or name.endswith("bx"):
                p.uniform_(-0.5, 0.5)
    rng = np.random.default_rng(1)
    lengths = [1, 9, 3, 3, 1, 14, 2, 5, 9, 1]  # unsorted, with ties and singletons
    sessions = [rng.integers(0, n_items, n).astype(np.int64) for n in lengths]
    with torch.no_grad():
        fast = net.last_states(sessions)
        ref = _padded_last(net, sessions)
    assert fast is not None and fast.shape == (len(sessions), layers[-1])
    np.testing.assert_allclose(fast.numpy(), ref.numpy(), rtol=0, atol=1e-5)
    # one session at a time gives the same states as the batch (no leak between rows)
    with torch.no_grad():
        single = torch.cat([net.last_states([s]) for s in sessions])
    np.testing.assert_allclose(single.numpy(), fast.numpy(), rtol=0, atol=1e-6)


def test_last_states_defer_to_sequence_states_outside_cpu_inference():
    net = GRU4RecNet(20, [6])
    sessions = [np.array([1, 2, 3])]
    with torch.no_grad():
        assert net.last_states(sessions) is None  # training mode: dropout may apply
    net.eval()
    assert net.last_states(sessions) is None  # autograd on: gradients need the torch graph
    with torch.no_grad():
        assert net.last_states(sessions) is not None
    with torch.no_grad(), pytest.raises(ValueError, match="non-empty"):
        net.last_states([np.array([], dtype=np.int64)])


def test_cached_input_gates_follow_weight_changes():
    torch.manual_seed(1)
    net = GRU4RecNet(30, [8]).eval()
    sessions = [np.arange(i, i + 20) % 30 for i in range(3)]  # as many events as items: the table is built
    with torch.no_grad():
        before = net.last_states(sessions)
        assert getattr(net, "_input_gates_cache", None) is not None
        net.Wy.weight.mul_(1.5)  # an in-place step, as an optimiser makes
        net.grus[0].bias_ih_l0.add_(0.25)
        after = net.last_states(sessions)
        ref = _padded_last(net, sessions)
    assert not torch.allclose(before, after)
    np.testing.assert_allclose(after.numpy(), ref.numpy(), rtol=0, atol=1e-5)


def test_many_sessions_split_across_threads_give_the_same_states(monkeypatch):
    import recframe.model.seq.nets.gru_last_state as gls

    torch.manual_seed(0)
    net = GRU4RecNet(40, [8]).eval()
    rng = np.random.default_rng(2)
    sessions = [rng.integers(0, 40, int(n)).astype(np.int64) for n in rng.integers(1, 12, 300)]
    monkeypatch.setattr(gls, "SESSIONS_PER_WORKER", 50)  # 300 sessions: split whenever threads allow
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        with torch.no_grad():
            split = net.last_states(sessions)
        torch.set_num_threads(1)
        with torch.no_grad():
            whole = net.last_states(sessions)
    finally:
        torch.set_num_threads(before)
    assert split.shape == (len(sessions), 8)
    np.testing.assert_allclose(split.numpy(), whole.numpy(), rtol=0, atol=1e-6)
    with torch.no_grad():
        ref = _padded_last(net, sessions[:20])
    np.testing.assert_allclose(split[:20].numpy(), ref.numpy(), rtol=0, atol=1e-5)


def test_input_gate_rows_are_computed_for_the_items_met_and_kept(monkeypatch):
    import recframe.model.seq.nets.gru_last_state as gls

    monkeypatch.setattr(gls, "GATE_BLOCK", 8)
    torch.manual_seed(4)
    net = GRU4RecNet(60, [8]).eval()
    first = [np.array([1, 2, 3]), np.array([3, 4])]
    later = [np.array([4, 50, 51]), np.array([2])]
    with torch.no_grad():
        net.last_states(first)
        _, table, filled = net._input_gates_cache
        assert np.flatnonzero(filled).tolist() == list(range(8))  # only the block of the items met
        kept = table[:8].copy()
        got = net.last_states(later)
        assert net._input_gates_cache[1] is table  # the same table, extended
        assert np.flatnonzero(filled).tolist() == list(range(8)) + list(range(48, 56))
        np.testing.assert_array_equal(table[:8], kept)
        np.testing.assert_allclose(got.numpy(), _padded_last(net, later).numpy(), rtol=0, atol=1e-5)
        # a row's value does not depend on which items a call met first
        other = GRU4RecNet(60, [8]).eval()
        other.load_state_dict(net.state_dict())
        other.last_states(later[::-1] + first)
        np.testing.assert_array_equal(other._input_gates_cache[1][[1, 2, 3, 4, 50, 51]], table[[1, 2, 3, 4, 50, 51]])


def test_input_gate_blocks_filled_by_several_threads_equal_one_thread(monkeypatch):
    import recframe.model.seq.nets.gru_last_state as gls

    monkeypatch.setattr(gls, "GATE_BLOCK", 8)
    torch.manual_seed(5)
    net = GRU4RecNet(100, [8]).eval()
    items = np.arange(100)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = gls._input_gates(net, net.grus[0], items).copy()
        del net._input_gates_cache
        torch.set_num_threads(2)
        monkeypatch.setattr(gls, "FILL_BLOCKS_PER_WORKER", 1)  # 13 blocks: two threads share them
        shared = gls._input_gates(net, net.grus[0], items)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(shared, one)
    assert net._input_gates_cache[2].all()
