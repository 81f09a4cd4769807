"""Tests for complemjax.models.rlmrec: the official alignment loss, weight 0 == LightGCN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import ranking
from complemjax.data import padding
from complemjax.models.contrastive import mlp2_init
from complemjax.models.lightgcn import LightGCN, LightGCNHParams, sample_triples
from complemjax.models.protocol import make_train_data, stack_hparams
from complemjax.models.rlmrec import RLMRec, RLMRecHParams, rlmrec_align_loss, rlmrec_grid

BACKBONE = LightGCN(dim=8, max_layers=2, batch_size=32)
FAM = RLMRec(backbone=BACKBONE)


def _np_mlp(p, x):
    h = x @ np.asarray(p["w1"]) + np.asarray(p["b1"])
    h = np.where(h >= 0, h, 0.01 * h)
    return h @ np.asarray(p["w2"]) + np.asarray(p["b2"])


def _official_infonce(e1, e2, all2, temp):
    """``cal_infonce_loss`` of HKUDS/RLMRec (encoder/models/loss_utils.py), in NumPy."""
    n1 = e1 / np.sqrt(1e-8 + (e1**2).sum(-1, keepdims=True))
    n2 = e2 / np.sqrt(1e-8 + (e2**2).sum(-1, keepdims=True))
    na = all2 / np.sqrt(1e-8 + (all2**2).sum(-1, keepdims=True))
    nume = -(n1 * n2 / temp).sum(-1)
    deno = np.log(np.exp(n1 @ na.T / temp).sum(-1))
    return (nume + deno).sum()


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    n_users, n_items = 14, 24
    pairs = {
        (int(a), int(b)) for a, b in zip(rng.integers(0, n_users, 90), rng.integers(0, n_items, 90))
    }
    u, i = map(np.array, zip(*sorted(pairs)))
    x = rng.normal(size=(n_items, 6)).astype(np.float32)
    return u, i, x, make_train_data(u, i, n_users=n_users, n_items=n_items, item_features=x)


def test_align_loss_matches_official_numpy(toy, key):
    u, i, x, data = toy
    rng = np.random.default_rng(1)
    nu, d = data.n_users, 5
    eu = rng.normal(size=(nu, d)).astype(np.float32)
    ei = rng.normal(size=(data.n_items, d)).astype(np.float32)
    mlp = mlp2_init(key, x.shape[1], 5, d, weights="xavier_uniform")
    xu = np.stack([x[i[u == k]].mean(0) for k in range(nu)])  # every toy user has items
    bu = np.array([0, 3, 3, 7, 13])
    bi = np.array([i[u == k][0] for k in bu])
    bj = rng.integers(0, data.n_items, 5)
    t = 0.2
    su, si = _np_mlp(mlp, xu), _np_mlp(mlp, x)
    want = (
        _official_infonce(eu[bu], su[bu], su, t)
        + _official_infonce(ei[bi], si[bi], si[bi], t)
        + _official_infonce(ei[bj], si[bj], si[bj], t)
    ) / 5
    triples = (bu, bi, bj, np.ones(5, np.float32))
    got = rlmrec_align_loss(eu, ei, mlp, xu.astype(np.float32), x, triples, t)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # rows with weight 0 (users without training items) do not count
    w = np.array([1, 1, 1, 1, 0], np.float32)
    part = rlmrec_align_loss(eu, ei, mlp, xu.astype(np.float32), x, (bu, bi, bj, w), t)
    assert not np.isclose(part, got)


@pytest.mark.slow
def test_weight_zero_is_exactly_lightgcn(toy, key):
    data = toy[3]
    lh = LightGCNHParams(learning_rate=1e-2, l2=1e-4, n_layers=2)
    s = BACKBONE.init(key, data, lh)
    s, losses = BACKBONE.train_epochs(s, data, lh, 3)
    ue, ie = BACKBONE.embeddings(s, data, lh)
    rh = RLMRecHParams(learning_rate=1e-2, l2=1e-4, n_layers=2, align_weight=0.0)
    r = FAM.init(key, data, rh)
    r, rlosses = FAM.train_epochs(r, data, rh, 3)
    ru, ri = FAM.embeddings(r, data, rh)
    np.testing.assert_array_equal(ru, ue)  # bit for bit
    np.testing.assert_array_equal(ri, ie)
    np.testing.assert_array_equal(rlosses, losses)
    # the same sampler stream afterwards
    np.testing.assert_array_equal(jax.random.key_data(r.backbone.key), jax.random.key_data(s.key))
    # a positive weight changes the CF embeddings (the alignment term is wired in)
    r2 = FAM.init(key, data, rh.replace(align_weight=0.1))
    r2, _ = FAM.train_epochs(r2, data, rh.replace(align_weight=0.1), 3)
    assert np.abs(np.asarray(FAM.embeddings(r2, data, rh)[0]) - np.asarray(ue)).max() > 1e-3


def test_initial_state_shares_the_backbone_init(toy, key):
    data = toy[3]
    r = FAM.init(key, data, RLMRecHParams(n_layers=2))
    s = BACKBONE.init(key, data, LightGCNHParams(n_layers=2))
    np.testing.assert_array_equal(r.backbone.params.user_emb, s.params.user_emb)
    # official MLP: hidden (D + d) // 2, xavier-uniform weights
    d_in = data.item_features.shape[1]
    assert r.mlp["w1"].shape == (d_in, (d_in + 8) // 2)
    assert np.abs(r.mlp["w1"]).max() <= np.sqrt(6 / (d_in + (d_in + 8) // 2))


def test_grid_has_weight_zero_once():
    g = rlmrec_grid(LightGCNHParams(n_layers=2))
    w, t = np.asarray(g.align_weight), np.asarray(g.temperature)
    assert w.shape == (7,)
    assert (w == 0).sum() == 1
    got = sorted(zip(w[w > 0].tolist(), t[w > 0].tolist()))
    want = sorted((a, b) for a in (1e-3, 1e-2, 1e-1) for b in (0.1, 0.2))
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-6)
    assert (np.asarray(g.n_layers) == 2).all()


@pytest.mark.slow
def test_vmap_over_grid_equals_loop(toy, key):
    data = toy[3]
    configs = [
        RLMRecHParams(learning_rate=1e-2, n_layers=k, align_weight=w, temperature=t)
        for k, w, t in [(2, 0.0, 0.2), (1, 1e-2, 0.1), (2, 1e-1, 0.2)]
    ]
    grid = stack_hparams(configs)
    s = jax.vmap(FAM.init, in_axes=(None, None, 0))(key, data, grid)
    s, losses = jax.vmap(lambda s, h: FAM.train_epochs(s, data, h, 3))(s, grid)
    ue, _ = jax.vmap(lambda s, h: FAM.embeddings(s, data, h))(s, grid)
    for g, hp in enumerate(configs):
        s1, l1 = FAM.train_epochs(FAM.init(key, data, hp), data, hp, 3)
        np.testing.assert_allclose(losses[g], l1, rtol=1e-5)
        np.testing.assert_allclose(ue[g], FAM.embeddings(s1, data, hp)[0], rtol=1e-4, atol=1e-6)


def test_bad_inputs_raise(toy, key):
    u, i, _, data = toy
    with pytest.raises(ValueError, match="align_weight"):
        FAM.init(key, data, RLMRecHParams(n_layers=2, align_weight=-1.0))
    with pytest.raises(ValueError, match="temperature"):
        FAM.init(key, data, RLMRecHParams(n_layers=2, temperature=0.0))
    with pytest.raises(ValueError, match="n_layers"):
        FAM.init(key, data, RLMRecHParams(n_layers=3))
    with pytest.raises(ValueError, match="item_features"):
        FAM.init(key, make_train_data(u, i, n_users=14, n_items=24), RLMRecHParams(n_layers=2))
    with pytest.raises(ValueError, match="backbone"):
        RLMRec(backbone="lightgcn")


def test_sampled_triples_feed_the_alignment_with_real_positives(toy, key):
    u, i, _, data = toy
    from complemjax.models.lightgcn import positive_keys

    tu, ti, _, w = sample_triples(key, data, positive_keys(data), 64, 8)
    train = set(zip(u.tolist(), i.tolist()))
    assert all((a, b) in train for a, b in zip(np.asarray(tu), np.asarray(ti)))
    assert np.asarray(w).min() == 1.0


@pytest.mark.slow
def test_training_improves_validation_recall(key):
    rng = np.random.default_rng(2)
    n_users, n_items, n_clusters = 60, 80, 4
    cu = rng.integers(0, n_clusters, n_users)
    ci = np.arange(n_items) % n_clusters
    tr, va = [], []
    for uu in range(n_users):
        own = rng.permutation(np.flatnonzero(ci == cu[uu]))[:12]
        tr += [(uu, j) for j in own[:-3]]
        va += [(uu, j) for j in own[-3:]]
    tu, ti = map(np.array, zip(*tr))
    vu, vi = map(np.array, zip(*va))
    x = rng.normal(size=(n_items, 8)).astype(np.float32)
    data = make_train_data(tu, ti, n_users=n_users, n_items=n_items, item_features=x)
    valid = padding.pad_item_sets(vu, vi, n_users, n_items=n_items)
    fam = RLMRec(backbone=LightGCN(dim=16, max_layers=2, batch_size=64))
    hp = RLMRecHParams(learning_rate=5e-2, l2=1e-4, n_layers=2, align_weight=0.1)

    def recall(s):
        ue, ie = fam.embeddings(s, data, hp)
        top = ranking.topk_from_embeddings(ue, ie, k=10, exclude=data.history)
        return float(ranking.evaluate_topk(top.items, valid, ks=(10,)).mean("recall")[0])

    s = fam.init(key, data, hp)
    before = recall(s)
    s, losses = fam.train_epochs(s, data, hp, 30)
    after = recall(s)
    assert losses[-1] < losses[0]
    assert after > before + 0.1, (before, after)
    assert jnp.isfinite(losses).all()
