"""Tests for complemjax.models.alpharec and the shared pieces in complemjax.models.contrastive."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import ranking
from complemjax.data import padding
from complemjax.models import contrastive
from complemjax.models.alpharec import (
    AlphaRec,
    AlphaRecHParams,
    alpharec_loss,
    sample_negatives,
)
from complemjax.models.contrastive import info_nce, mean_history_features, mlp2_apply, mlp2_init
from complemjax.models.protocol import make_train_data, stack_hparams


# ----------------------------------------------------------------------------- references
def _np_unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _np_info_nce(a, cand, labels, t):
    """Per-row −log softmax(cos/τ)[label], candidates [B, M, d]."""
    logits = np.einsum("bd,bmd->bm", _np_unit(a), _np_unit(cand)) / t
    m = logits.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(1))
    return lse - logits[np.arange(len(a)), labels]


def _np_mlp(p, x):
    h = x @ np.asarray(p["w1"]) + np.asarray(p["b1"])
    h = np.where(h >= 0, h, 0.01 * h)
    return h @ np.asarray(p["w2"]) + np.asarray(p["b2"])


def _np_norm_adj(u, i, nu, ni):
    n = nu + ni
    a = np.zeros((n, n))
    a[u, nu + i] = 1
    a[nu + i, u] = 1
    d = a.sum(1)
    inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1)), 0)
    return inv[:, None] * a * inv[None, :]


def _toy(rng, n_users=12, n_items=20, n=60, d=6):
    pairs = {
        (int(a), int(b))
        for a, b in zip(rng.integers(0, n_users - 1, n), rng.integers(0, n_items, n))
    }
    u, i = map(np.array, zip(*sorted(pairs)))  # the last user has no training items
    x = rng.normal(size=(n_items, d)).astype(np.float32)
    return u, i, x, make_train_data(u, i, n_users=n_users, n_items=n_items, item_features=x)


def _clustered(rng, n_users=60, n_items=80, n_clusters=4, per_user=12, d=16):
    """Users like items of their cluster. The item "text" embedding holds the cluster in 2
    of its d dimensions, under much larger noise in the others, so a random map scores
    poorly and a trained one well."""
    cu = rng.integers(0, n_clusters, n_users)
    ci = np.arange(n_items) % n_clusters
    centers = rng.normal(size=(n_clusters, 2))
    noise = 2.0 * rng.normal(size=(n_items, d - 2))
    x = np.concatenate([centers[ci], noise], 1).astype(np.float32)
    tr, va = [], []
    for u in range(n_users):
        own = rng.permutation(np.flatnonzero(ci == cu[u]))[:per_user]
        tr += [(u, j) for j in own[:-3]]
        va += [(u, j) for j in own[-3:]]
    tu, ti = map(np.array, zip(*tr))
    vu, vi = map(np.array, zip(*va))
    data = make_train_data(tu, ti, n_users=n_users, n_items=n_items, item_features=x)
    valid = padding.pad_item_sets(vu, vi, n_users, n_items=n_items)
    return data, valid


def _recall(ue, ie, data, valid, k=10):
    top = ranking.topk_from_embeddings(ue, ie, k=k, exclude=data.history)
    return float(ranking.evaluate_topk(top.items, valid, ks=(k,)).mean("recall")[0])


#: one small configuration shared by the unit tests (one compilation per program)
FAM = AlphaRec(hidden=8, dim=4, batch_size=16, n_negatives=5, max_layers=2)


@pytest.fixture(scope="module")
def toy():
    return _toy(np.random.default_rng(0))


# ----------------------------------------------------------------------------- contrastive
def test_info_nce_hand_computed():
    # anchor (1, 0); candidates (3, 0) [positive] and (0, 2); τ = 0.5 → logits (2, 0)
    a = jnp.array([[1.0, 0.0]])
    c = jnp.array([[[3.0, 0.0], [0.0, 2.0]]])
    got = info_nce(a, c, jnp.array([0]), 0.5)
    np.testing.assert_allclose(got, [np.log(np.exp(2.0) + 1.0) - 2.0], rtol=1e-6)
    # label 1: the orthogonal candidate is the positive
    got = info_nce(a, c, jnp.array([1]), 0.5)
    np.testing.assert_allclose(got, [np.log(np.exp(2.0) + 1.0)], rtol=1e-6)


def test_info_nce_three_forms_match_numpy(rng):
    b, m, d, t = 5, 7, 4, 0.3
    a = rng.normal(size=(b, d)).astype(np.float32)
    shared = rng.normal(size=(m, d)).astype(np.float32)
    idx = rng.integers(0, m, (b, 3))
    labels = rng.integers(0, 3, b)
    ref = _np_info_nce(a, shared[idx], labels, t)
    np.testing.assert_allclose(info_nce(a, shared[idx], labels, t), ref, rtol=1e-5, atol=1e-6)
    got = info_nce(a, shared, labels, t, candidate_idx=idx)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    lab_shared = rng.integers(0, m, b)
    ref_shared = _np_info_nce(a, np.broadcast_to(shared, (b, m, d)), lab_shared, t)
    np.testing.assert_allclose(info_nce(a, shared, lab_shared, t), ref_shared, rtol=1e-5)
    with jax.disable_jit():
        eager = info_nce(a, shared, labels, t, candidate_idx=idx)
    np.testing.assert_allclose(eager, ref, rtol=1e-5, atol=1e-6)


def test_info_nce_gather_path_equals_dense_path(rng, monkeypatch):
    a = rng.normal(size=(6, 3)).astype(np.float32)
    c = rng.normal(size=(9, 3)).astype(np.float32)
    idx = rng.integers(0, 9, (6, 4))
    dense = info_nce(a, c, np.zeros(6, np.int32), 0.2, candidate_idx=idx)
    monkeypatch.setattr(contrastive, "_DENSE_LIMIT", 0)
    contrastive._info_nce.clear_cache()
    gathered = info_nce(a, c, np.zeros(6, np.int32), 0.2, candidate_idx=idx)
    contrastive._info_nce.clear_cache()
    np.testing.assert_allclose(gathered, dense, rtol=1e-5)


def test_info_nce_invariant_to_candidate_scale_and_rejects_bad_input(rng):
    a = rng.normal(size=(3, 4)).astype(np.float32)
    c = rng.normal(size=(3, 5, 4)).astype(np.float32)
    y = np.array([0, 2, 4])
    np.testing.assert_allclose(info_nce(a, c, y, 0.1), info_nce(7 * a, 0.5 * c, y, 0.1), rtol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        info_nce(a, c, y, 0.0)
    with pytest.raises(ValueError, match="labels"):
        info_nce(a, c, y[:2], 0.1)
    with pytest.raises(ValueError, match="candidates"):
        info_nce(a, c[:, :, :3], y, 0.1)
    with pytest.raises(ValueError, match="candidate_idx"):
        info_nce(a, c, y, 0.1, candidate_idx=np.zeros((3, 2), np.int32))


def test_info_nce_gradient_is_finite_at_a_zero_row():
    # moved from tests/test_fusion.py (the old fusion._train.info_nce): unit_rows must not
    # give a NaN gradient for an all-zero row (sqrt'(0))
    a = jnp.asarray([[0.0, 0.0], [1.0, 2.0], [0.5, -1.0]])
    b = jnp.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    g = jax.grad(lambda x: jnp.mean(info_nce(x, b, jnp.arange(3), 0.5)))(a)
    assert np.all(np.isfinite(np.asarray(g)))
    g = jax.grad(lambda y: jnp.mean(info_nce(b, y, jnp.arange(3), 0.5)))(a)
    assert np.all(np.isfinite(np.asarray(g)))


def test_mlp_matches_numpy_and_torch_default_bounds(rng, key):
    p = mlp2_init(key, 10, 30, 4)
    assert p["w1"].shape == (10, 30) and p["w2"].shape == (30, 4)
    assert np.abs(p["w1"]).max() <= 1 / np.sqrt(10) and np.abs(p["b2"]).max() <= 1 / np.sqrt(30)
    assert np.abs(p["w1"]).max() > 0.8 / np.sqrt(10)  # uniform over the whole range
    x = rng.normal(size=(8, 10)).astype(np.float32)
    np.testing.assert_allclose(mlp2_apply(p, x), _np_mlp(p, x), rtol=1e-5, atol=1e-6)
    px = mlp2_init(key, 10, 30, 4, weights="xavier_uniform")
    assert np.abs(px["w1"]).max() <= np.sqrt(6 / 40) and np.abs(px["w1"]).max() > 0.8 * np.sqrt(
        6 / 40
    )
    with pytest.raises(ValueError, match="weights"):
        mlp2_init(key, 2, 2, 2, weights="he")


def test_mean_history_features_matches_numpy(toy):
    u, i, x, data = toy
    got = mean_history_features(x, data.user_idx, data.item_idx, data.mask, 12)
    for uu in range(12):
        items = i[u == uu]
        want = x[items].mean(0) if len(items) else np.zeros(x.shape[1])
        np.testing.assert_allclose(got[uu], want, rtol=1e-5, atol=1e-6)
    # masked (padding) entries are ignored
    pad_u = np.concatenate([u, [0, 0]])
    pad_i = np.concatenate([i, [5, 6]])
    mask = np.concatenate([np.ones(len(u), bool), [False, False]])
    got_pad = mean_history_features(x, pad_u, pad_i, mask, 12)
    np.testing.assert_allclose(got_pad, got, rtol=1e-6)


# ----------------------------------------------------------------------------- sampler
def test_negatives_avoid_history_and_are_uniform_on_the_rest(toy, key):
    u, i, _, data = toy
    users = jnp.repeat(jnp.arange(12), 1)
    neg = np.asarray(sample_negatives(key, data.history, users, 20, 4000))
    for uu in range(12):
        hist = set(i[u == uu])
        assert not hist & set(neg[uu]), uu
        assert neg[uu].min() >= 0 and neg[uu].max() < 20
        allowed = sorted(set(range(20)) - hist)
        counts = np.bincount(neg[uu], minlength=20)[allowed]
        expected = 4000 / len(allowed)
        # every allowed item is drawn, each within 5 binomial sd of its expectation
        sd = np.sqrt(expected * (1 - 1 / len(allowed)))
        assert np.all(np.abs(counts - expected) < 5 * sd), (uu, counts)


# ----------------------------------------------------------------------------- loss
def test_alpharec_loss_matches_numpy_reference(rng, key, toy):
    u, i, x, data = toy
    nu, ni = 12, 20
    p = mlp2_init(key, x.shape[1], 9, 5)
    xu = np.stack(
        [x[i[u == k]].mean(0) if (u == k).any() else np.zeros(x.shape[1]) for k in range(nu)]
    )
    users = np.array([0, 3, 3, 5])
    pos = np.array([i[u == k][0] for k in users])
    neg = rng.integers(0, ni, (4, 6))
    a = _np_norm_adj(u, i, nu, ni)
    h = np.concatenate([_np_mlp(p, xu), _np_mlp(p, x)])
    e = (h + a @ h + a @ a @ h) / 3
    eu, ei = e[:nu], e[nu:]
    cand = np.concatenate([ei[pos][:, None], ei[neg]], 1)
    want = _np_info_nce(eu[users], cand, np.zeros(4, int), 0.15).mean()
    # the same numbers written out as the official exp / sum form
    un, cn = _np_unit(eu[users]), _np_unit(cand)
    s = np.einsum("bd,bmd->bm", un, cn) / 0.15
    official = np.mean(-np.log(np.exp(s[:, 0]) / (np.exp(s[:, 0]) + np.exp(s[:, 1:]).sum(1))))
    np.testing.assert_allclose(want, official, rtol=1e-6)
    got = alpharec_loss(
        p, xu.astype(np.float32), x, data.graph, users, pos, neg, 0.15, 2, max_layers=3
    )
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_embeddings_are_unit_rows_and_user_is_mlp_of_mean_history(key, toy):
    u, i, x, data = toy
    fam = FAM
    hp = AlphaRecHParams(n_layers=0)
    state = fam.init(key, data, hp)
    ue, ie = fam.embeddings(state, data, hp)
    np.testing.assert_allclose(np.linalg.norm(ue, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ie, axis=1), 1.0, rtol=1e-5)
    # with 0 layers: user 0 = normalised MLP(mean of its training item embeddings)
    want = _np_unit(_np_mlp(state.params, x[i[u == 0]].mean(0, keepdims=True)))
    np.testing.assert_allclose(ue[0], want[0], rtol=1e-4, atol=1e-6)
    # no ID embeddings: the only parameters are the MLP's
    assert set(state.params) == {"w1", "b1", "w2", "b2"}


# ----------------------------------------------------------------------------- family
@pytest.mark.slow
def test_vmap_over_grid_equals_loop(key, toy):
    data = toy[3]
    fam = FAM
    configs = [
        AlphaRecHParams(temperature=t, learning_rate=lr, n_layers=k)
        for t, lr, k in [(0.1, 1e-2, 0), (0.2, 3e-3, 2), (0.15, 1e-3, 1)]
    ]
    grid = stack_hparams(configs)
    s = jax.vmap(fam.init, in_axes=(None, None, 0))(key, data, grid)
    s, losses = jax.vmap(lambda s, h: fam.train_epochs(s, data, h, 2))(s, grid)
    ue, _ = jax.vmap(lambda s, h: fam.embeddings(s, data, h))(s, grid)
    for g, hp in enumerate(configs):
        s1 = fam.init(key, data, hp)
        s1, l1 = fam.train_epochs(s1, data, hp, 2)
        np.testing.assert_allclose(losses[g], l1, rtol=1e-5)
        np.testing.assert_allclose(ue[g], fam.embeddings(s1, data, hp)[0], rtol=1e-4, atol=1e-5)


def test_training_is_resumable_and_deterministic(key, toy):
    data = toy[3]
    fam = FAM
    hp = AlphaRecHParams(learning_rate=1e-2)
    s = fam.init(key, data, hp)
    a, la = fam.train_epochs(s, data, hp, 2)
    b, lb1 = fam.train_epochs(s, data, hp, 1)
    b, lb2 = fam.train_epochs(b, data, hp, 1)
    np.testing.assert_allclose(la, np.concatenate([lb1, lb2]), rtol=1e-6)
    np.testing.assert_allclose(a.params["w2"], b.params["w2"], rtol=1e-6)
    assert int(a.epoch) == 2


def test_bad_inputs_raise(key, toy):
    u, i, _, data = toy
    fam = FAM
    with pytest.raises(ValueError, match="temperature"):
        fam.init(key, data, AlphaRecHParams(temperature=0.0))
    with pytest.raises(ValueError, match="n_layers"):
        fam.init(key, data, AlphaRecHParams(n_layers=4))
    with pytest.raises(ValueError, match="learning_rate"):
        fam.check_hparams(stack_hparams([AlphaRecHParams(), AlphaRecHParams(learning_rate=-1.0)]))
    no_feat = make_train_data(u, i, n_users=12, n_items=20)
    with pytest.raises(ValueError, match="item_features"):
        fam.init(key, no_feat, AlphaRecHParams())
    with pytest.raises(ValueError, match="n_negatives"):
        AlphaRec(n_negatives=0)
    assert AlphaRec(hidden=None).hidden_width(3072) == 1536  # official text-embedding-3 width


@pytest.mark.slow
def test_training_improves_validation_recall(key):
    data, valid = _clustered(np.random.default_rng(1))
    fam = AlphaRec(hidden=32, dim=16, batch_size=128, n_negatives=16)
    hp = AlphaRecHParams(learning_rate=1e-2, temperature=0.15)
    s = fam.init(key, data, hp)
    before = _recall(*fam.embeddings(s, data, hp), data, valid)
    s, losses = fam.train_epochs(s, data, hp, 10)
    after = _recall(*fam.embeddings(s, data, hp), data, valid)
    assert losses[-1] < losses[0]
    assert after > before + 0.1, (before, after)
