"""Tests for BPR-MF, its selection, EASE and popularity (complemjax.models.mf / ease /
popularity), through the compatibility names of complemjax.cf."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import cf, ranking
from complemjax.data import padding
from complemjax.models import bpr
from complemjax.models.mf import _bpr_loss, _train_epochs


def _synthetic(seed=0, n_users=160, n_items=120, rank=3, per_user=24):
    """Low-rank preferences, no popularity signal: each user samples items by softmax."""
    r = np.random.default_rng(seed)
    a = r.normal(size=(n_users, rank))
    b = r.normal(size=(n_items, rank))
    logits = 2.0 * a @ b.T
    users, items = [], []
    for u in range(n_users):
        p = np.exp(logits[u] - logits[u].max())
        p /= p.sum()
        chosen = r.choice(n_items, size=per_user, replace=False, p=p)
        users += [u] * per_user
        items += chosen.tolist()
    users, items = np.asarray(users, np.int32), np.asarray(items, np.int32)
    test = r.random(users.size) < 0.2
    return users[~test], items[~test], users[test], items[test], n_users, n_items


@pytest.fixture(scope="module")
def synth():
    return _synthetic()


def _recall20(user_emb, item_emb, tr_u, tr_i, te_u, te_i, n_users):
    ex = padding.pad_item_sets(tr_u, tr_i, n_users)
    te = padding.pad_item_sets(te_u, te_i, n_users)
    top = ranking.topk_from_embeddings(user_emb, item_emb, k=20, exclude=ex)
    return float(ranking.evaluate_topk(top.items, te, ks=(20,)).mean("recall")[0])


CFG = cf.BPRConfig(dim=16, n_epochs=30, batch_size=256)
HP = cf.BPRHParams(learning_rate=0.02, l2=1e-4)


@pytest.mark.slow
def test_bpr_beats_popularity_on_low_rank_data(synth):
    tr_u, tr_i, te_u, te_i, nu, ni = synth
    res = cf.fit_bpr(jax.random.key(0), tr_u, tr_i, n_users=nu, n_items=ni, config=CFG, hparams=HP)
    assert res.user_emb.shape == (nu, 16) and res.item_emb.shape == (ni, 16)
    assert res.losses.shape == (30,)
    assert float(res.losses[-1]) < 0.6 * float(res.losses[0])
    rec_bpr = _recall20(res.user_emb, res.item_emb, tr_u, tr_i, te_u, te_i, nu)
    pu, pi = cf.popularity_embeddings(tr_i, n_users=nu, n_items=ni)
    rec_pop = _recall20(pu, pi, tr_u, tr_i, te_u, te_i, nu)
    assert rec_bpr > rec_pop + 0.1, (rec_bpr, rec_pop)


@pytest.mark.slow
def test_bpr_deterministic_and_vmaps(synth):
    tr_u, tr_i, _, _, nu, ni = synth
    cfg = cf.BPRConfig(dim=8, n_epochs=2, batch_size=512)

    def fit(key, hp):
        return cf.fit_bpr(key, tr_u, tr_i, n_users=nu, n_items=ni, config=cfg, hparams=hp)

    keys = jax.random.split(jax.random.key(1), 3)
    grid = cf.BPRHParams(
        learning_rate=jnp.array([0.01, 0.02, 0.05]), l2=jnp.array([0.0, 1e-4, 1e-3])
    )
    batched = jax.vmap(fit)(keys, grid)
    singles = []
    for g in range(3):
        one = fit(keys[g], cf.BPRHParams(learning_rate=grid.learning_rate[g], l2=grid.l2[g]))
        singles.append(one)
        np.testing.assert_allclose(batched.item_emb[g], one.item_emb, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(batched.losses[g], one.losses, rtol=2e-5)
    hp0 = cf.BPRHParams(learning_rate=grid.learning_rate[0], l2=grid.l2[0])
    n_compiled = _train_epochs._cache_size()
    np.testing.assert_array_equal(fit(keys[0], hp0).user_emb, singles[0].user_emb)
    assert _train_epochs._cache_size() == n_compiled  # no retrace on a second call
    assert not np.allclose(singles[0].item_emb, singles[1].item_emb)
    # resumable training: 1 + 1 epochs == fit with n_epochs=2
    st = cf.bpr_init(keys[0], n_users=nu, n_items=ni, config=cfg)
    s1, la = cf.bpr_train_epochs(st, tr_u, tr_i, hp0, n_items=ni, config=cfg, n_epochs=1)
    s1, lb = cf.bpr_train_epochs(s1, tr_u, tr_i, hp0, n_items=ni, config=cfg, n_epochs=1)
    np.testing.assert_allclose(s1.params.item_emb, singles[0].item_emb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([la, lb]), singles[0].losses, rtol=1e-5)
    assert int(s1.epoch) == 2


@pytest.mark.parametrize("optimizer", ["lazy_adam", pytest.param("sgd", marks=pytest.mark.slow)])
def test_row_updates_under_vmap_equal_single_fits(optimizer, rng):
    # the unclamped row gathers/scatters (promise_in_bounds) under vmap must
    # give the single fits (up to float summation order), for one and two nested vmaps
    nu, ni = 40, 60
    u = jnp.asarray(rng.integers(0, nu, 600))
    i = jnp.asarray(rng.integers(0, ni, 600))
    cfg = cf.BPRConfig(dim=4, n_epochs=2, batch_size=64, optimizer=optimizer, kernel="xla")

    def fit(key, hp, u, i):
        return cf.fit_bpr(key, u, i, n_users=nu, n_items=ni, config=cfg, hparams=hp)

    keys = jax.random.split(jax.random.key(3), 2)
    grid = cf.BPRHParams(learning_rate=jnp.array([0.05, 0.2]), l2=jnp.array([0.0, 1e-2]))
    one = jax.jit(fit)
    both = jax.jit(jax.vmap(fit, in_axes=(0, 0, None, None)))(keys, grid, u, i)
    nested = jax.jit(
        jax.vmap(jax.vmap(fit, in_axes=(None, 0, None, None)), in_axes=(0, None, None, None))
    )(keys, grid, u, i)
    for s in range(2):
        hp = jax.tree.map(lambda x, s=s: x[s], grid)
        ref = one(keys[s], hp, u, i)
        np.testing.assert_allclose(both.item_emb[s], ref.item_emb, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(both.user_emb[s], ref.user_emb, rtol=2e-5, atol=2e-6)
        for h in range(2):
            ref = one(keys[s], jax.tree.map(lambda x, h=h: x[h], grid), u, i)
            np.testing.assert_allclose(nested.item_emb[s, h], ref.item_emb, rtol=2e-5, atol=2e-6)
    assert not np.allclose(both.item_emb[0], both.item_emb[1])


def test_bpr_loss_gradient_matches_numpy(rng):
    nu, ni, d, b = 5, 7, 3, 6
    p = rng.normal(size=(nu, d)).astype(np.float32)
    q = rng.normal(size=(ni, d)).astype(np.float32)
    u = rng.integers(0, nu, b)
    i = rng.integers(0, ni, b)
    j = rng.integers(0, ni, b)
    l2 = 0.1
    x = np.sum(p[u] * (q[i] - q[j]), 1)
    reg = (p[u] ** 2).sum(1) + (q[i] ** 2).sum(1) + (q[j] ** 2).sum(1)
    loss_ref = np.mean(np.log1p(np.exp(-x)) + l2 * reg)
    g = 1.0 / (1.0 + np.exp(x))  # sigma(-x)
    gp = np.zeros_like(p)
    gq = np.zeros_like(q)
    for k in range(b):
        gp[u[k]] += (-g[k] * (q[i[k]] - q[j[k]]) + 2 * l2 * p[u[k]]) / b
        gq[i[k]] += (-g[k] * p[u[k]] + 2 * l2 * q[i[k]]) / b
        gq[j[k]] += (g[k] * p[u[k]] + 2 * l2 * q[j[k]]) / b
    params = cf.BPRParams(jnp.asarray(p), jnp.asarray(q))
    loss, grads = jax.value_and_grad(_bpr_loss)(params, u, i, j, l2)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
    np.testing.assert_allclose(grads.user_emb, gp, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads.item_emb, gq, rtol=1e-4, atol=1e-6)
    jit_loss = jax.jit(_bpr_loss)(params, u, i, j, l2)
    np.testing.assert_allclose(jit_loss, loss, rtol=1e-6)


def test_positive_lookup():
    u = jnp.array([0, 0, 2, 1], jnp.int32)
    i = jnp.array([3, 1, 0, 4], jnp.int32)
    keys = jnp.sort(u * 5 + i)
    qu = jnp.array([0, 0, 2, 2, 1, 1])
    qi = jnp.array([3, 2, 0, 4, 4, 0])
    np.testing.assert_array_equal(
        bpr.is_positive(keys, qu, qi, 5), [True, False, True, False, True, False]
    )


def test_negatives_avoid_positives():
    # user 0 has every item but item 3: with rejection the only negative is item 3, so
    # BPR must push item 3 below every other item for that user.
    ni = 6
    u = np.array([0] * 5 + [1, 1], np.int32)
    i = np.array([0, 1, 2, 4, 5, 3, 0], np.int32)
    cfg = cf.BPRConfig(dim=4, n_epochs=40, batch_size=7, n_neg_retries=8)
    res = cf.fit_bpr(jax.random.key(0), u, i, n_users=2, n_items=ni, config=cfg, hparams=HP)
    s = np.asarray(res.user_emb[0] @ res.item_emb.T)
    assert s[3] < np.delete(s, 3).min()


def test_select_bpr(synth):
    tr_u, tr_i, te_u, te_i, nu, ni = synth
    val = padding.pad_item_sets(te_u, te_i, nu)
    grid = cf.BPRHParams(learning_rate=jnp.array([1e-4, 0.02]), l2=jnp.array([1e-4, 1e-4]))
    cfg = cf.BPRConfig(dim=16, n_epochs=20, batch_size=256)
    sel = cf.select_bpr(
        jax.random.key(0),
        tr_u,
        tr_i,
        val,
        n_users=nu,
        n_items=ni,
        config=cfg,
        grid=grid,
        eval_every=10,
    )
    assert sel.recall.shape == (2, 2) and list(sel.epochs) == [10, 20]
    assert sel.best == 1  # a tiny learning rate barely moves from the random init
    g, c = np.unravel_index(np.argmax(sel.recall), sel.recall.shape)
    assert (sel.best, sel.best_epoch) == (g, sel.epochs[c])
    rec = _recall20(sel.user_emb, sel.item_emb, tr_u, tr_i, te_u, te_i, nu)
    np.testing.assert_allclose(rec, sel.recall.max(), rtol=1e-6)
    assert float(sel.hparams.learning_rate) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="eval_every"):
        cf.select_bpr(
            jax.random.key(0),
            tr_u,
            tr_i,
            val,
            n_users=nu,
            n_items=ni,
            config=cfg,
            grid=grid,
            eval_every=3,
        )


def test_ease_matches_numpy(rng):
    nu, ni, lam = 40, 12, 5.0
    x = (rng.random((nu, ni)) < 0.3).astype(np.float64)
    u, i = np.nonzero(x)
    b = np.asarray(cf.fit_ease(u, i, n_users=nu, n_items=ni, l2=lam))
    p = np.linalg.inv(x.T @ x + lam * np.eye(ni))
    b_ref = np.eye(ni) - p / np.diag(p)[None, :]
    np.fill_diagonal(b_ref, 0.0)
    np.testing.assert_allclose(b, b_ref, rtol=1e-4, atol=1e-5)
    sets = padding.pad_item_sets(u, i, nu)
    fn = cf.ease_score_fn(b, sets)
    users = jnp.arange(nu, dtype=jnp.int32)
    np.testing.assert_allclose(fn(users), x @ b, rtol=1e-5, atol=1e-5)
    top = ranking.topk_from_score_fn(fn, n_users=nu, n_items=ni, k=3, exclude=sets)
    assert top.items.shape == (nu, 3)
    with pytest.raises(ValueError, match="l2"):
        cf.fit_ease(u, i, n_users=nu, n_items=ni, l2=0.0)
    with pytest.raises(ValueError, match="history_sets"):
        cf.ease_score_fn(b, sets[0])


def test_popularity():
    i = np.array([2, 2, 0, 2, 1, 0])
    np.testing.assert_array_equal(cf.popularity(i, n_items=4), [2, 1, 3, 0])
    ue, ie = cf.popularity_embeddings(i, n_users=2, n_items=4)
    ex = padding.pad_item_sets(np.array([1]), np.array([2]), 2)
    top = ranking.topk_from_embeddings(ue, ie, k=3, exclude=ex)
    np.testing.assert_array_equal(top.items, [[2, 0, 1], [0, 1, 3]])


def test_bpr_bad_input(synth):
    tr_u, tr_i, _, _, nu, ni = synth
    with pytest.raises(ValueError, match="optimizer"):
        cf.BPRConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="dim"):
        cf.BPRConfig(dim=0)
    with pytest.raises(ValueError, match="user_idx"):
        cf.fit_bpr(
            jax.random.key(0), tr_u + nu, tr_i, n_users=nu, n_items=ni, config=CFG, hparams=HP
        )
    with pytest.raises(ValueError, match="item_idx"):
        cf.fit_bpr(
            jax.random.key(0),
            tr_u,
            tr_i.astype(float),
            n_users=nu,
            n_items=ni,
            config=CFG,
            hparams=HP,
        )
    with pytest.raises(ValueError, match="reject_positives"):
        cf.fit_bpr(
            jax.random.key(0), tr_u, tr_i, n_users=2**20, n_items=2**12, config=CFG, hparams=HP
        )


def test_sgd_row_update_equals_dense_sgd_step(rng):
    # one epoch = one minibatch; replay the sampler's key usage to get the same triples
    nu, ni, n = 6, 9, 20
    u = jnp.asarray(rng.integers(0, nu, n), jnp.int32)
    i = jnp.asarray(rng.integers(0, ni, n), jnp.int32)
    cfg = cf.BPRConfig(dim=3, n_epochs=1, batch_size=n, optimizer="sgd", reject_positives=False)
    hp = cf.BPRHParams(learning_rate=0.7, l2=0.05)
    st = cf.bpr_init(jax.random.key(3), n_users=nu, n_items=ni, config=cfg)
    new, loss = cf.bpr_train_epochs(st, u, i, hp, n_items=ni, config=cfg, n_epochs=1)
    _, k_epoch = jax.random.split(st.key)
    uu, ii, j, _ = bpr.sample_bpr_triples(
        k_epoch, u, i, n_items=ni, n_draws=n, n_neg_retries=cfg.n_neg_retries
    )
    ref_loss, g = jax.value_and_grad(_bpr_loss)(st.params, uu, ii, j, 0.05)
    np.testing.assert_allclose(loss[0], ref_loss, rtol=1e-6)
    np.testing.assert_allclose(
        new.params.user_emb, st.params.user_emb - 0.7 * g.user_emb, atol=1e-6
    )
    np.testing.assert_allclose(
        new.params.item_emb, st.params.item_emb - 0.7 * g.item_emb, atol=1e-6
    )


# ----------------------------------------------------------------------------- new in models
@pytest.mark.slow
def test_lazy_adam_rows_match_dense_adam_on_touched_rows(rng):
    import optax

    from complemjax.models.mf import _lazy_adam_rows

    n, d = 8, 3
    table = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
    m0 = jnp.asarray(rng.normal(size=(n, d)) * 0.1, jnp.float32)
    v0 = jnp.asarray(rng.random((n, d)) * 0.1, jnp.float32)
    idx = jnp.array([1, 4, 6], jnp.int32)  # distinct rows: exactly Adam on those rows
    g = jnp.asarray(rng.normal(size=(3, d)), jnp.float32)
    dense_g = jnp.zeros((n, d)).at[idx].add(g)
    state = optax.ScaleByAdamState(count=jnp.asarray(4), mu=m0, nu=v0)
    direction, new = optax.scale_by_adam().update(dense_g, state)
    t, mv = _lazy_adam_rows(
        table, jnp.concatenate([m0, v0], 1), idx, g, 0.1, 1 - 0.9**5, 1 - 0.999**5
    )
    m, v = mv[:, :d], mv[:, d:]
    np.testing.assert_allclose(m[idx], new.mu[idx], rtol=1e-5)
    np.testing.assert_allclose(v[idx], new.nu[idx], rtol=1e-5)
    np.testing.assert_allclose(t[idx], (table - 0.1 * direction)[idx], rtol=1e-5, atol=1e-6)
    rest = np.setdiff1d(np.arange(n), np.asarray(idx))
    np.testing.assert_array_equal(t[rest], table[rest])  # lazy: untouched rows keep still
    np.testing.assert_array_equal(m[rest], m0[rest])
    # a repeated row gets the summed gradient in the first moment, once decayed
    dup = jnp.array([2, 2], jnp.int32)
    gd = jnp.asarray(rng.normal(size=(2, d)), jnp.float32)
    _, mv2 = _lazy_adam_rows(table, jnp.concatenate([m0, v0], 1), dup, gd, 0.1, 0.5, 0.5)
    m2, v2 = mv2[:, :d], mv2[:, d:]
    np.testing.assert_allclose(m2[2], 0.9 * m0[2] + 0.1 * gd.sum(0), rtol=1e-5)
    np.testing.assert_allclose(v2[2], 0.999 * v0[2] + 0.001 * (gd**2).sum(0), rtol=1e-5)


def test_fit_bpr_accepts_data_closed_over_by_a_jitted_function():
    # the range check must read concrete closed-over arrays on the host, not through a
    # staged min/max (which raised ConcretizationTypeError under jit + vmap)
    u, i = jnp.array([0, 1, 2, 1], jnp.int32), jnp.array([3, 0, 2, 1], jnp.int32)
    cfg = cf.BPRConfig(dim=4, n_epochs=1, batch_size=4, kernel="xla")

    def fit(lr):
        hp = cf.BPRHParams(learning_rate=lr, l2=0.0)
        return cf.fit_bpr(jax.random.key(0), u, i, n_users=3, n_items=4, config=cfg, hparams=hp)

    out = jax.jit(jax.vmap(fit))(jnp.array([0.01, 0.1]))
    assert out.user_emb.shape == (2, 3, 4)
    with pytest.raises(ValueError, match="item_idx"):
        cf.fit_bpr(jax.random.key(0), u, i + 1, n_users=3, n_items=4, config=cfg,
                   hparams=cf.BPRHParams())  # fmt: skip


def test_bpr_mask_drops_padding(synth):
    tr_u, tr_i, _, _, nu, ni = synth
    # user nu-1's entries become padding; junk padding pairs point at it as well
    real = tr_u != nu - 1
    u = np.concatenate([tr_u, np.full(10, nu - 1, np.int32)])
    i = np.concatenate([tr_i, np.arange(10, dtype=np.int32)])
    m = np.concatenate([real, np.zeros(10, bool)])
    cfg = cf.BPRConfig(dim=8, n_epochs=2, batch_size=256)
    res = cf.fit_bpr(
        jax.random.key(0), u, i, n_users=nu, n_items=ni, config=cfg, hparams=HP, mask=m
    )
    init = cf.bpr_init(jax.random.key(0), n_users=nu, n_items=ni, config=cfg)
    np.testing.assert_array_equal(res.user_emb[nu - 1], init.params.user_emb[nu - 1])
    assert not np.allclose(res.user_emb[0], init.params.user_emb[0])
    # the masked loss over a batch equals the plain mean over its real rows
    from complemjax.models.mf import _bpr_rows_loss

    rows = tuple(jnp.asarray(rng_) for rng_ in np.random.default_rng(1).normal(size=(3, 6, 4)))
    w = jnp.array([1, 0, 1, 1, 0, 1], jnp.float32)
    keep = np.asarray(w) > 0
    np.testing.assert_allclose(
        _bpr_rows_loss(rows, 0.1, w), _bpr_rows_loss(tuple(r[keep] for r in rows), 0.1), rtol=1e-6
    )
    with pytest.raises(ValueError, match="mask"):
        cf.fit_bpr(
            jax.random.key(0), u, i, n_users=nu, n_items=ni, config=cfg, hparams=HP, mask=m[:-1]
        )


@pytest.mark.parametrize(
    "hp, field",
    [
        (cf.BPRHParams(learning_rate=float("nan"), l2=1e-4), "learning_rate"),
        (cf.BPRHParams(learning_rate=0.0, l2=1e-4), "learning_rate"),
        (cf.BPRHParams(learning_rate=-1.0, l2=1e-4), "learning_rate"),
        (cf.BPRHParams(learning_rate=0.01, l2=-1e-4), "l2"),
        (cf.BPRHParams(learning_rate=0.01, l2=float("inf")), "l2"),
    ],
)
def test_bpr_hparams_validated(synth, hp, field):
    tr_u, tr_i, _, _, nu, ni = synth
    with pytest.raises(ValueError, match=rf"hparams\.{field}"):
        cf.fit_bpr(jax.random.key(0), tr_u, tr_i, n_users=nu, n_items=ni, config=CFG, hparams=hp)


@pytest.mark.parametrize(
    "items", [np.array([-1, 0, 1]), np.array([0, 3]), np.array([0.0, 1.0]), np.zeros((2, 2), int)]
)
def test_popularity_index_checks(items):
    with pytest.raises(ValueError, match="item_idx"):
        cf.popularity(items, n_items=3)


def test_select_ease(synth):
    tr_u, tr_i, te_u, te_i, nu, ni = synth
    val = padding.pad_item_sets(te_u, te_i, nu)
    sel = cf.select_ease(tr_u, tr_i, val, n_users=nu, n_items=ni, grid=[1000.0, 1.0, 50.0])
    np.testing.assert_array_equal(sel.grid, [1.0, 50.0, 1000.0])
    assert sel.l2 == sel.grid[sel.best] and sel.recall[sel.best] == sel.recall.max()
    b = cf.fit_ease(tr_u, tr_i, n_users=nu, n_items=ni, l2=sel.l2)
    np.testing.assert_allclose(sel.b, b, rtol=1e-5, atol=1e-6)
    ex = padding.pad_item_sets(tr_u, tr_i, nu)
    top = ranking.topk_from_score_fn(
        cf.ease_score_fn(b, ex), n_users=nu, n_items=ni, k=20, exclude=ex
    )
    rec = float(ranking.evaluate_topk(top.items, val, ks=(20,)).mean("recall")[0])
    assert rec == pytest.approx(sel.recall[sel.best], rel=1e-6)
    assert sel.row()["configs"] == 3
    with pytest.raises(ValueError, match="grid"):
        cf.select_ease(tr_u, tr_i, val, n_users=nu, n_items=ni, grid=[0.0, 1.0])
    with pytest.raises(ValueError, match="l2"):
        cf.fit_ease(tr_u, tr_i, n_users=nu, n_items=ni, l2=None)


@pytest.mark.slow
def test_bpr_family_through_protocol_equals_fit_bpr(synth):
    from complemjax.models import protocol

    tr_u, tr_i, te_u, te_i, nu, ni = synth
    cfg = cf.BPRConfig(dim=8, n_epochs=4, batch_size=256)
    data = protocol.make_train_data(tr_u, tr_i, n_users=nu, n_items=ni)
    val = padding.pad_item_sets(te_u, te_i, nu)
    fit = protocol.retrain(
        cf.BPR(cfg),
        jax.random.key(0),
        data,
        HP,
        valid_sets=val,
        exclude_sets=data.history,
        max_epochs=4,
        eval_every=4,
        patience=1,
    )
    ref = cf.fit_bpr(jax.random.key(0), tr_u, tr_i, n_users=nu, n_items=ni, config=cfg, hparams=HP)
    np.testing.assert_allclose(fit.user_emb, ref.user_emb, rtol=1e-4, atol=1e-5)
    assert fit.best_epoch == 4 and fit.method == "BPR-MF"
