"""Tests for complemjax.models.lightgcn: the official loss, 0 layers == MF, padding == dropped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import ranking
from complemjax.data import padding
from complemjax.models import lightgcn as L
from complemjax.models import protocol as P


def _softplus(x):
    return np.logaddexp(0.0, x)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    nu, ni = 9, 11
    pairs = sorted(
        {(int(a), int(b)) for a, b in zip(rng.integers(0, 8, 40), rng.integers(0, 10, 40))}
    )
    u, i = map(lambda x: np.asarray(x, np.int32), zip(*pairs))  # user 8, item 10: no edges
    return P.make_train_data(u, i, n_users=nu, n_items=ni), u, i, nu, ni


def _dense_norm_adj(u, i, nu, ni):
    n = nu + ni
    a = np.zeros((n, n))
    a[u, nu + i] = a[nu + i, u] = 1.0
    d = a.sum(1)
    inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1)), 0.0)
    return inv[:, None] * a * inv[None, :]


@pytest.mark.slow
def test_loss_matches_numpy_reference(toy):
    data, u, i, nu, ni = toy
    cfg = L.LightGCN(dim=4, max_layers=3)
    state = L.lightgcn_init(jax.random.key(0), data, cfg)
    hp = L.LightGCNHParams(learning_rate=1e-3, l2=0.3, n_layers=2)
    tr = L.sample_triples(jax.random.key(1), data, L.positive_keys(data), 16, 8)
    loss, (bpr, reg) = L.lightgcn_loss(state.params, data, hp, tr, cfg.max_layers)
    e0 = np.concatenate([np.asarray(state.params.user_emb), np.asarray(state.params.item_emb)])
    a = _dense_norm_adj(u, i, nu, ni)
    e = (e0 + a @ e0 + a @ a @ e0) / 3
    uu, ii, jj, w = (np.asarray(x) for x in tr)
    x = (e[uu] * e[nu + ii]).sum(1) - (e[uu] * e[nu + jj]).sum(1)
    n = max(w.sum(), 1)
    ref_bpr = (w * _softplus(-x)).sum() / n
    sq = (e0[uu] ** 2).sum(1) + (e0[nu + ii] ** 2).sum(1) + (e0[nu + jj] ** 2).sum(1)
    ref_reg = 0.5 * (w * sq).sum() / n
    np.testing.assert_allclose(float(bpr), ref_bpr, rtol=1e-5)
    np.testing.assert_allclose(float(reg), ref_reg, rtol=1e-5)
    np.testing.assert_allclose(float(loss), ref_bpr + 0.3 * ref_reg, rtol=1e-5)


def test_sampler_triples_are_valid(toy):
    data, u, i, nu, _ = toy
    pos = set(zip(u.tolist(), i.tolist()))
    uu, ii, jj, w = (
        np.asarray(x)
        for x in L.sample_triples(jax.random.key(2), data, L.positive_keys(data), 500, 40)
    )
    has = np.bincount(u, minlength=nu) > 0
    np.testing.assert_array_equal(w, has[uu].astype(w.dtype))
    for a, b, c, ww in zip(uu, ii, jj, w):
        if ww:
            assert (a, b) in pos
            assert (a, c) not in pos  # 40 rejection rounds: failure odds < 1e-3 here
    assert len(set(uu.tolist())) == nu  # users uniform over all users (500 draws, 9 users)


def _mf_same_loss(key, data, cfg, hp, n_epochs):
    """Reference: MF trained with LightGCN's loss without any propagation."""
    state = L.lightgcn_init(key, data, cfg)
    sk = L.positive_keys(data)
    steps, b = L.n_steps_per_epoch(data, cfg.batch_size)

    def loss(params, tr):
        u, i, j, w = tr
        p, qi, qj = params.user_emb[u], params.item_emb[i], params.item_emb[j]
        x = jnp.sum(p * qi, -1) - jnp.sum(p * qj, -1)
        n = jnp.maximum(w.sum(), 1.0)
        reg = 0.5 * jnp.sum(w * ((p * p).sum(-1) + (qi * qi).sum(-1) + (qj * qj).sum(-1))) / n
        return jnp.sum(w * jax.nn.softplus(-x)) / n + hp.l2 * reg

    @jax.jit
    def step(params, opt, key):
        key, k = jax.random.split(key)
        tr = L.sample_triples(k, data, sk, b, cfg.n_neg_retries)
        params, opt = L.lightgcn_step(params, opt, jax.grad(loss)(params, tr), hp.learning_rate)
        return params, opt, key

    params, opt, key = state.params, state.opt_state, state.key
    for _ in range(n_epochs * steps):
        params, opt, key = step(params, opt, key)
    return params


def test_zero_layers_equals_mf_with_same_loss(toy):
    data = toy[0]
    cfg = L.LightGCN(dim=4, max_layers=2, batch_size=16)
    hp = L.LightGCNHParams(learning_rate=0.05, l2=1e-2, n_layers=0)
    state, losses = cfg.train_epochs(cfg.init(jax.random.key(5), data, hp), data, hp, 3)
    ref = _mf_same_loss(jax.random.key(5), data, cfg, hp, 3)
    np.testing.assert_allclose(state.params.user_emb, ref.user_emb, atol=1e-5)
    np.testing.assert_allclose(state.params.item_emb, ref.item_emb, atol=1e-5)
    eu, ei = cfg.embeddings(state, data, hp)  # 0 layers: the ego embeddings themselves
    np.testing.assert_allclose(eu, state.params.user_emb, atol=1e-6)
    np.testing.assert_allclose(ei, state.params.item_emb, atol=1e-6)
    assert losses.shape == (3,)


def test_padding_equals_dropped(toy):
    data, u, i, nu, ni = toy
    pad = 7
    up = np.concatenate([u, np.full(pad, 3, np.int32)])
    ip = np.concatenate([i, np.arange(pad, dtype=np.int32)])  # junk pairs, masked out
    m = np.r_[np.ones(u.size, bool), np.zeros(pad, bool)]
    dp = P.make_train_data(up, ip, n_users=nu, n_items=ni, mask=m)
    np.testing.assert_array_equal(dp.history, data.history)
    kp, kd = np.asarray(L.positive_keys(dp)), np.asarray(L.positive_keys(data))
    np.testing.assert_array_equal(kp[kp >= 0], kd)
    tp = L.sample_triples(jax.random.key(4), dp, L.positive_keys(dp), 64, 8)
    td = L.sample_triples(jax.random.key(4), data, L.positive_keys(data), 64, 8)
    for a, b in zip(tp, td):
        np.testing.assert_array_equal(a, b)
    cfg = L.LightGCN(dim=4, max_layers=3)
    st = L.lightgcn_init(jax.random.key(0), data, cfg)
    hp = L.LightGCNHParams(n_layers=3)
    lp = L.lightgcn_loss(st.params, dp, hp, tp, 3)[0]
    ld = L.lightgcn_loss(st.params, data, hp, td, 3)[0]
    np.testing.assert_allclose(lp, ld, rtol=1e-6)


@pytest.mark.slow
def test_degree_zero_rows_finite_and_jit_equals_eager(toy):
    data = toy[0]
    cfg = L.LightGCN(dim=4, max_layers=3, batch_size=16)
    hp = L.LightGCNHParams(learning_rate=0.05, l2=1e-4, n_layers=3)
    st, _ = cfg.train_epochs(cfg.init(jax.random.key(0), data, hp), data, hp, 2)
    eu, ei = cfg.embeddings(st, data, hp)
    assert np.isfinite(eu).all() and np.isfinite(ei).all()
    # user 8 has no edges and is never sampled: its ego row and readout stay put
    st0 = cfg.init(jax.random.key(0), data, hp)
    np.testing.assert_allclose(st.params.user_emb[8], st0.params.user_emb[8])
    np.testing.assert_allclose(eu[8], st0.params.user_emb[8] / 4, rtol=1e-6)
    tr = L.sample_triples(jax.random.key(1), data, L.positive_keys(data), 16, 8)
    with jax.disable_jit():
        eager = L.lightgcn_loss(st.params, data, hp, tr, 3)[0]
    np.testing.assert_allclose(
        jax.jit(L.lightgcn_loss, static_argnums=4)(st.params, data, hp, tr, 3)[0], eager, rtol=1e-5
    )


def test_bad_hparams_named(toy):
    data = toy[0]
    cfg = L.LightGCN(dim=4, max_layers=2)
    valid = jnp.full((data.n_users, 1), -1).at[0, 0].set(10)
    for hp, name in [
        (L.LightGCNHParams(learning_rate=0.0), "learning_rate"),
        (L.LightGCNHParams(learning_rate=float("nan")), "learning_rate"),
        (L.LightGCNHParams(l2=-1.0), "l2"),
        (L.LightGCNHParams(n_layers=3), "n_layers"),
        (L.LightGCNHParams(n_layers=1.5), "n_layers"),
    ]:
        with pytest.raises(ValueError, match=name):
            P.retrain(
                cfg,
                jax.random.key(0),
                data,
                hp,
                valid_sets=valid,
                exclude_sets=data.history,
                max_epochs=2,
                eval_every=1,
                patience=1,
                k=5,
            )
    with pytest.raises(ValueError, match="dim"):
        L.LightGCN(dim=0)


@pytest.mark.slow
def test_lightgcn_learns_low_rank_preferences():
    from test_models_mf import _synthetic

    tr_u, tr_i, te_u, te_i, nu, ni = _synthetic()
    data = P.make_train_data(tr_u, tr_i, n_users=nu, n_items=ni)
    valid = padding.pad_item_sets(te_u, te_i, nu)
    grid = P.stack_hparams(
        [L.LightGCNHParams(learning_rate=1e-2, l2=1e-4, n_layers=k) for k in (0, 2)]
    )
    sel = P.select(
        L.LightGCN(dim=16, max_layers=2, batch_size=256),
        jax.random.key(0),
        data,
        grid,
        valid_sets=valid,
        exclude_sets=data.history,
        max_epochs=40,
        eval_every=5,
        patience=3,
    )
    from complemjax.models.popularity import popularity_embeddings

    pu, pi = popularity_embeddings(tr_i, n_users=nu, n_items=ni)
    top = ranking.topk_from_embeddings(pu, pi, k=20, exclude=data.history)
    pop = float(ranking.evaluate_topk(top.items, valid, ks=(20,)).mean("recall")[0])
    assert sel.valid_score > pop + 0.1, (sel.valid_score, pop)
