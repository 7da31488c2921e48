"""GRU4Rec: batching, hidden resets, losses, optimiser, training, artifacts, resume."""

from __future__ import annotations

import platform
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from recframe.artifact import load_model, save_model
from recframe.evaluation import evaluate
from recframe.interfaces import ConfigError, FitContext
from recframe.model.pop import PopModel
from recframe.model.seq.cpu_memory import keep_freed_memory
from recframe.model.seq.data import PAD, NegativeSampler, session_parallel_schedule, sessions_in_time_order
from recframe.model.seq.gru import GRU4RecModel
from recframe.model.seq.nets.gru import GRU4RecNet, MaskDropout, lookup_unique
from recframe.model.seq.nets.sampled_losses import bpr_max, cross_entropy_logq
from recframe.model.seq.optim import IndexedAdagradMomentum
from recframe.vocab import ItemVocab


def markov_events(n_sessions: int, n_items: int, seed: int = 0, follow: float = 0.9) -> pd.DataFrame:
    """Sessions walking a sparse random Markov chain (3 successors per item) with Zipf restarts.

    A sequence model can learn the successors; popularity cannot, so the gap between the two is a
    direct check that training works. Shared with the other sequence-model tests.
    """
    rng = np.random.default_rng(seed)
    succ = rng.integers(0, n_items, size=(n_items, 3))
    pop = 1.0 / np.arange(1, n_items + 1)
    pop /= pop.sum()
    sids, items, ts = [], [], []
    for s in range(n_sessions):
        length = min(2 + int(rng.geometric(0.25)), 30)
        it = int(rng.choice(n_items, p=pop))
        for t in range(length):
            sids.append(f"s{s:06d}")
            items.append(f"i{it}")
            ts.append(s * 100 + t)
            it = int(succ[it, rng.integers(3)]) if rng.random() < follow else int(rng.choice(n_items, p=pop))
    return pd.DataFrame({"session_id": sids, "item_id": items, "ts": np.asarray(ts, dtype=np.int64)})


def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    sids = df["session_id"].unique()
    a, b = int(0.8 * len(sids)), int(0.9 * len(sids))
    return (
        df[df["session_id"].isin(sids[:a])],
        df[df["session_id"].isin(sids[a:b])],
        df[df["session_id"].isin(sids[b:])],
    )


SMALL = dict(layers=[32], batch_size=16, n_sample=32, learning_rate=0.1, steps_per_batch=16)


def cpu_ctx(tmp_path, epochs: int = 1, **kw) -> FitContext:
    trainer = dict(accelerator="cpu", devices=1, max_epochs=epochs, enable_checkpointing=True)
    trainer.update(kw)
    return FitContext(trainer=trainer, work_dir=tmp_path, seed=7, progress=False)


@pytest.fixture(scope="module")
def toy() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return split(markov_events(1500, 120, seed=1))


@pytest.fixture(scope="module")
def fitted(toy, tmp_path_factory) -> GRU4RecModel:
    train, valid, _ = toy
    return GRU4RecModel(**SMALL).fit(train, valid, cpu_ctx(tmp_path_factory.mktemp("fit"), epochs=2))


# --- data --------------------------------------------------------------------------------


def test_schedule_covers_every_transition_once_with_resets():
    sessions = [np.array([1, 2, 3]), np.array([4, 5]), np.array([9]), np.array([6, 7, 8, 0]), np.array([3, 3])]
    inputs, targets, starts = session_parallel_schedule(sessions, batch_size=2)
    pairs = sorted((int(i), int(t)) for i, t in zip(inputs.ravel(), targets.ravel(), strict=True) if t != PAD)
    expected = sorted((int(s[k]), int(s[k + 1])) for s in sessions for k in range(len(s) - 1))
    assert pairs == expected
    assert starts.sum() == 4  # the length-1 session is skipped
    # lane 0 plays [1,2,3] then takes the next free session; lane 1 plays [4,5] then [6,7,8,0]
    assert inputs[:, 1].tolist()[:4] == [4, 6, 7, 8]
    assert starts[:, 1].tolist()[:4] == [True, True, False, False]


def test_sessions_in_time_order_sorts_by_start():
    df = pd.DataFrame({"session_id": ["b", "b", "a", "a"], "item_id": ["x", "y", "y", "x"], "ts": [1, 2, 5, 6]})
    vocab = ItemVocab.from_events(df)
    out = sessions_in_time_order(df, vocab)
    assert [vocab.decode(s) for s in out] == [["x", "y"], ["y", "x"]]


def test_negative_sampler_follows_popularity_power():
    counts = np.array([1000, 10, 0, 1])
    sampler = NegativeSampler(counts, 1000, 1.0, 20_000, torch.Generator().manual_seed(0))
    draws = torch.cat([sampler.sample() for _ in range(20)]).numpy()
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert freq[2] == 0 and freq[0] > 0.97
    uniform = NegativeSampler(counts, 1000, 0.0, 20_000, torch.Generator().manual_seed(0))
    assert np.bincount(uniform.sample().numpy(), minlength=4).min() > 150


# --- network, losses, optimiser ----------------------------------------------------------


@pytest.mark.parametrize(
    "mode",
    [
        dict(constrained_embedding=True),
        dict(constrained_embedding=False, embedding=8),
        dict(constrained_embedding=False, embedding=0),
    ],
)
def test_hidden_reset_at_session_boundaries_matches_fresh_sessions(mode):
    """Stepping a session-parallel schedule with resets gives each session's from-scratch states."""
    torch.manual_seed(0)
    net = GRU4RecNet(30, [12, 10], **mode).eval()
    sessions = [np.array([1, 2, 3, 4]), np.array([5, 6]), np.array([7, 8, 9]), np.array([2, 2, 2])]
    inputs, targets, starts = (torch.from_numpy(a) for a in session_parallel_schedule(sessions, 2))
    hidden = net.init_hidden(2, "cpu")
    stepped = []
    with torch.no_grad():
        for t in range(len(inputs)):
            hidden = [h.masked_fill(starts[t].unsqueeze(1), 0.0) for h in hidden]
            scores, hidden = net.step(inputs[t].clamp(min=0), hidden, torch.arange(30))
            stepped.append(scores)
        for s in sessions:
            fresh = net.score_all(net.sequence_states(torch.from_numpy(s[None, :-1]))[0])
            hits = [
                (t, b)
                for t in range(len(inputs))
                for b in range(2)
                if targets[t, b] != PAD and int(inputs[t, b]) == s[0] and bool(starts[t, b])
            ]
            t0, b = hits[0]
            got = torch.stack([stepped[t0 + k][b] for k in range(len(s) - 1)])
            torch.testing.assert_close(got, fresh, atol=1e-5, rtol=1e-5)


def test_bpr_max_matches_its_definition():
    torch.manual_seed(0)
    scores = torch.randn(4, 9)
    got = bpr_max(scores, bpreg=0.7, elu_param=0.5)
    o = torch.nn.functional.elu(scores, 0.5)
    total = 0.0
    for i in range(4):
        neg = [j for j in range(9) if j != i]
        w = torch.softmax(o[i, neg], 0)
        total += -torch.log((torch.sigmoid(o[i, i] - o[i, neg]) * w).sum()) + 0.7 * (o[i, neg] ** 2 * w).sum()
    torch.testing.assert_close(got, total)


def test_cross_entropy_logq_is_shift_by_log_probability():
    torch.manual_seed(0)
    scores, log_q = torch.randn(3, 7), torch.randn(7)
    plain = cross_entropy_logq(scores - log_q, None)
    torch.testing.assert_close(cross_entropy_logq(scores, log_q, 1.0), plain)
    assert float(cross_entropy_logq(scores, log_q, 0.0)) == pytest.approx(float(cross_entropy_logq(scores)))


def test_indexed_adagrad_touches_only_sparse_rows_and_matches_dense():
    torch.manual_seed(0)
    sparse_emb = torch.nn.Embedding(10, 3, sparse=True)
    dense_emb = torch.nn.Embedding(10, 3)
    dense_emb.weight.data.copy_(sparse_emb.weight.data)
    opt_s = IndexedAdagradMomentum(sparse_emb.parameters(), lr=0.1, momentum=0.5)
    opt_d = IndexedAdagradMomentum(dense_emb.parameters(), lr=0.1, momentum=0.5)
    before = sparse_emb.weight.detach().clone()
    idx = torch.tensor([1, 4, 4])
    for _ in range(3):
        for emb, opt in ((sparse_emb, opt_s), (dense_emb, opt_d)):
            opt.zero_grad()
            emb(idx).pow(2).sum().backward()
            opt.step()
    torch.testing.assert_close(sparse_emb.weight[[1, 4]], dense_emb.weight[[1, 4]])
    untouched = [0, 2, 3, 5, 6, 7, 8, 9]
    torch.testing.assert_close(sparse_emb.weight[untouched], before[untouched])


def test_lookup_unique_matches_plain_indexing_values_and_gradient():
    torch.manual_seed(0)
    weight = torch.randn(20, 4, requires_grad=True)
    items = torch.tensor([3, 7, 3, 0, 19, 7, 7])
    rows = lookup_unique(weight, items)
    torch.testing.assert_close(rows, weight.detach()[items])
    (rows * torch.arange(28.0).view(7, 4)).sum().backward()
    expected = torch.zeros(20, 4).index_add_(0, items, torch.arange(28.0).view(7, 4))
    assert weight.grad.is_sparse
    torch.testing.assert_close(weight.grad.to_dense(), expected)


def test_mask_dropout_keeps_at_rate_scales_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = MaskDropout(0.3)
    x = torch.ones(400, 500, requires_grad=True)
    y = drop(x)
    kept = y.detach() != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # 200k draws: sd ~0.001
    torch.testing.assert_close(y.detach()[kept], torch.full((int(kept.sum()),), 1 / 0.7))
    y.sum().backward()  # the gradient flows through kept units only, with the same scale
    torch.testing.assert_close(x.grad, kept.float() / 0.7)
    drop.eval()
    assert drop(x) is x
    assert MaskDropout(0.0).train()(x) is x
    with pytest.raises(ValueError):
        MaskDropout(1.0)


def test_keep_freed_memory_is_idempotent_and_training_accepts_the_switch(toy, tmp_path):
    first = keep_freed_memory()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert first, "glibc accepts thresholds within its limits"
    assert keep_freed_memory() == first  # a second call changes nothing
    train, valid, _ = toy
    # recframe's own trainer keys never reach lightning.Trainer (which would reject them)
    model = GRU4RecModel(**SMALL).fit(train, valid, cpu_ctx(tmp_path, cpu_keep_memory=False, cpu_threads=1))
    assert model.fit_summary["epochs"] >= 1


# --- the model ---------------------------------------------------------------------------


def test_constructor_validates_with_config_keys():
    with pytest.raises(ConfigError, match="model.learning_rate"):
        GRU4RecModel(learning_rate=0)
    with pytest.raises(ConfigError, match="model.loss"):
        GRU4RecModel(loss="hinge")
    with pytest.raises(ConfigError, match="model.layers"):
        GRU4RecModel(layers=[])


def test_scores_have_vocab_shape_and_cold_sessions_get_popularity(fitted):
    n = len(fitted.vocab)
    out = fitted.score_next([np.array([0, 3]), np.array([], dtype=np.int64), np.array([5])])
    assert out.shape == (3, n)
    np.testing.assert_allclose(out[1], fitted.vocab.popularity())
    sessions = [np.array([1, 2, 3]), np.array([4, 5])]
    chunks = list(fitted.score_prefixes(sessions, batch_size=512))
    scores = torch.cat([torch.as_tensor(s) for s, _ in chunks])
    targets = np.concatenate([t for _, t in chunks])
    assert scores.shape == (3, n) and targets.tolist() == [2, 3, 5]
    # the prefix pass agrees with serving the same prefixes one by one
    np.testing.assert_allclose(
        scores.numpy(), fitted.score_next([np.array([1]), np.array([1, 2]), np.array([4])]), rtol=1e-4, atol=1e-5
    )
    assert fitted.item_embeddings().shape == (n, 32)


def test_training_beats_pop_and_writes_metrics_csv(toy, fitted):
    _, _, test = toy
    gru = evaluate(fitted, test)
    pop = evaluate(PopModel().fit(toy[0]), test)
    assert gru["hr@20"] > 2.0 * pop["hr@20"]
    assert fitted.fit_summary["best_val_mrr@20"] > 0


def test_save_load_round_trip_gives_identical_scores(fitted, tmp_path):
    save_model(fitted, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    sessions = [np.array([0, 1, 2]), np.array([7])]
    np.testing.assert_array_equal(loaded.score_next(sessions), fitted.score_next(sessions))
    assert loaded.hyperparameters() == fitted.hyperparameters()


def test_cpu_training_is_repeatable_with_a_seed(toy, tmp_path):
    train = toy[0].iloc[:3000]
    a = GRU4RecModel(**SMALL).fit(train, None, cpu_ctx(tmp_path / "a"))
    b = GRU4RecModel(**SMALL).fit(train, None, cpu_ctx(tmp_path / "b"))
    for (k, va), (_, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items(), strict=True):
        torch.testing.assert_close(va, vb, msg=k)


def test_bpr_max_loss_reduces_training_loss(toy, tmp_path):
    train, valid, _ = toy
    m = GRU4RecModel(**{**SMALL, "loss": "bpr-max", "momentum": 0.2, "dropout_p_embed": 0.2}).fit(
        train.iloc[:5000], valid, cpu_ctx(tmp_path, epochs=2)
    )
    rows = pd.read_csv(tmp_path / "metrics.csv")
    assert list(rows.columns) == ["epoch", "train_loss", "val_mrr@20", "val_hr@20"]
    assert rows["train_loss"].iloc[1] < rows["train_loss"].iloc[0]
    assert m.fit_summary["epochs"] == 2


def test_resume_continues_from_last_checkpoint(toy, tmp_path):
    train, valid, _ = toy
    train = train.iloc[:3000]
    GRU4RecModel(**SMALL).fit(train, valid, cpu_ctx(tmp_path, epochs=1))
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    m = GRU4RecModel(**SMALL).fit(train, valid, cpu_ctx(tmp_path, epochs=2))
    assert m.fit_summary["resumed_from"].endswith("last.ckpt")
    assert pd.read_csv(tmp_path / "metrics.csv")["epoch"].tolist() == [0, 1]
    # another architecture never loads that checkpoint: it starts fresh
    other = GRU4RecModel(**{**SMALL, "layers": [16]}).fit(train, valid, cpu_ctx(tmp_path, epochs=3))
    assert other.fit_summary["resumed_from"] is None
