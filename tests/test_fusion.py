"""Tests for complemjax.fusion: rules (vs NumPy/ranx-style references and hand-worked
examples), tuning, the learned gate, the shared-plus-private model and alignment baselines."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import fusion, ranking
from complemjax.data import padding
from complemjax.fusion import (
    RuleConfig,
    RuleHParams,
)

# ----------------------------------------------------------------------------- references


def np_normalize(s, method):
    s = np.asarray(s, np.float64)
    if method == "none":
        return s
    if method == "minmax":
        return (s - s.min()) / max(s.max() - s.min(), 1e-9)
    if method == "zscore":
        return (s - s.mean()) / max(s.std(), 1e-9)
    pos = np.empty(len(s), int)
    pos[np.lexsort((np.arange(len(s)), -s))] = np.arange(len(s))
    return 1.0 - pos / len(s)


def np_fuse_runs(run_a, run_b, method, norm, w=0.5, k=60.0):
    """Literal per-user reference of ranx's definitions. run: list of (item, score), sorted."""

    def normd(run):
        vals = np_normalize([v for _, v in run], norm)
        return {it: float(v) for (it, _), v in zip(run, vals)}

    pos_a = {it: r for r, (it, _) in enumerate(run_a)}
    pos_b = {it: r for r, (it, _) in enumerate(run_b)}
    cands = sorted(set(pos_a) | set(pos_b))
    na, nb = normd(run_a), normd(run_b)
    out = {}
    for i in cands:
        if method == "wsum":
            out[i] = w * na.get(i, 0.0) + (1 - w) * nb.get(i, 0.0)
        elif method == "combsum":
            out[i] = na.get(i, 0.0) + nb.get(i, 0.0)
        elif method == "combmnz":
            out[i] = (na.get(i, 0.0) + nb.get(i, 0.0)) * ((i in na) + (i in nb))
        elif method == "rrf":
            out[i] = sum(1.0 / (k + p[i] + 1) for p in (pos_a, pos_b) if i in p)
        elif method == "borda":
            nc = len(cands)
            out[i] = sum(nc - p[i] if i in p else (nc - len(p) + 1) / 2 for p in (pos_a, pos_b))
    return out


def random_runs(rng, n_users, n_items, depth):
    sa = rng.normal(size=(n_users, n_items))
    sb = rng.normal(size=(n_users, n_items))
    ia = np.argsort(-sa, axis=1, kind="stable")[:, :depth]
    ib = np.argsort(-sb, axis=1, kind="stable")[:, :depth]
    return (
        ia.astype(np.int32),
        np.take_along_axis(sa, ia, 1).astype(np.float32),
        ib.astype(np.int32),
        np.take_along_axis(sb, ib, 1).astype(np.float32),
    )


# ----------------------------------------------------------------------------- normalisation


def test_normalize_hand_worked():
    s = jnp.array([[1.0, 3.0, 2.0]])
    np.testing.assert_allclose(fusion.normalize_scores(s, method="minmax"), [[0, 1, 0.5]])
    z = np.sqrt(1.5)
    np.testing.assert_allclose(fusion.normalize_scores(s, method="zscore"), [[-z, z, 0]], rtol=1e-6)
    np.testing.assert_allclose(
        fusion.normalize_scores(s, method="rank"), [[1 / 3, 1, 2 / 3]], rtol=1e-6
    )
    # ties -> lower index ranks first
    np.testing.assert_allclose(
        fusion.normalize_scores(jnp.array([[2.0, 2.0]]), method="rank"), [[1.0, 0.5]]
    )
    # a constant row does not divide by zero
    np.testing.assert_allclose(fusion.normalize_scores(jnp.ones((1, 3)), method="minmax"), 0)


@pytest.mark.parametrize("method", fusion.NORM_METHODS)
def test_normalize_matches_numpy_with_mask(rng, method):
    s = rng.normal(size=(4, 9)).astype(np.float32)
    valid = rng.random((4, 9)) < 0.7
    valid[:, 0] = True
    got = np.asarray(fusion.normalize_scores(s, method=method, valid=valid))
    for u in range(4):
        ref = np_normalize(s[u][valid[u]], method)
        np.testing.assert_allclose(got[u][valid[u]], ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got[u][~valid[u]], 0.0)


# ----------------------------------------------------------------------------- rule fusion


HAND = {
    # run A = [10 (3.0), 20 (2.0), 30 (1.0)], run B = [20 (5.0), 40 (1.0)]
    ("rrf", "none", 0.5, 1.0): {20: 1 / 3 + 1 / 2, 10: 0.5, 40: 1 / 3, 30: 0.25},
    ("borda", "none", 0.5, 60.0): {20: 7.0, 10: 5.5, 40: 4.0, 30: 3.5},
    ("combmnz", "minmax", 0.5, 60.0): {20: 3.0, 10: 1.0, 30: 0.0, 40: 0.0},
    ("wsum", "minmax", 0.25, 60.0): {20: 0.875, 10: 0.25, 30: 0.0, 40: 0.0},
    ("combsum", "rank", 0.5, 60.0): {20: 2 / 3 + 1, 10: 1.0, 40: 0.5, 30: 1 / 3},
}


@pytest.mark.parametrize("case", list(HAND))
def test_fuse_runs_hand_worked(case):
    method, norm, w, k = case
    ia = jnp.array([[10, 20, 30]], jnp.int32)
    sa = jnp.array([[3.0, 2.0, 1.0]])
    ib = jnp.array([[20, 40, -1]], jnp.int32)
    sb = jnp.array([[5.0, 1.0, 0.0]])
    out = fusion.fuse_runs(
        ia, sa, ib, sb, RuleHParams(weight=w, rrf_k=k), config=RuleConfig(method, norm), k=4
    )
    want = HAND[case]
    order = sorted(want, key=lambda i: (-want[i], i))  # ties -> lower item id
    np.testing.assert_array_equal(out.items[0], order)
    np.testing.assert_allclose(out.scores[0], [want[i] for i in order], rtol=1e-6)


@pytest.mark.parametrize("method", ["rrf", "combsum"])
def test_fuse_runs_large_ids_fallback_matches_packed(rng, method):
    ia, sa, ib, sb = random_runs(rng, 4, 30, 8)
    cfg, prm = RuleConfig(method, "rank"), RuleHParams(rrf_k=2.0)
    small = fusion.fuse_runs(ia, sa, ib, sb, prm, config=cfg, k=10)  # packed id sort
    scale = 2**25  # ids too large to pack with the slot index -> stable argsort path
    large = fusion.fuse_runs(ia * scale, sa, ib * scale, sb, prm, config=cfg, k=10)
    np.testing.assert_array_equal(np.asarray(large.items), np.asarray(small.items) * scale)
    np.testing.assert_array_equal(large.scores, small.scores)


def test_signed_zero_is_a_tie_broken_to_lower_id():
    ids = jnp.array([[1, 0]], jnp.int32)
    s = jnp.array([[0.0, -0.0]])
    out = fusion.fuse_runs(ids, s, ids, s, config=RuleConfig("combsum", "none"), k=2)
    np.testing.assert_array_equal(out.items, [[0, 1]])


@pytest.mark.parametrize("method", fusion.FUSION_METHODS)
@pytest.mark.parametrize("norm", fusion.NORM_METHODS)
def test_fuse_runs_matches_reference(rng, method, norm):
    ia, sa, ib, sb = random_runs(rng, 6, 30, 8)
    ib[1, 6:] = -1  # a shorter run
    w, k = 0.3, 5.0
    out = fusion.fuse_runs(
        ia, sa, ib, sb, RuleHParams(weight=w, rrf_k=k), config=RuleConfig(method, norm), k=10
    )
    for u in range(6):
        ra = list(zip(ia[u].tolist(), sa[u].tolist()))
        rb = [(i, s) for i, s in zip(ib[u].tolist(), sb[u].tolist()) if i >= 0]
        ref = np_fuse_runs(ra, rb, method, norm, w, k)
        ref_sorted = sorted(ref.values(), reverse=True)[:10]
        np.testing.assert_allclose(out.scores[u], ref_sorted, rtol=1e-5, atol=1e-6)
        # our list is a valid ordering of the reference scores
        np.testing.assert_allclose(
            [ref[int(i)] for i in out.items[u]], ref_sorted, rtol=1e-5, atol=1e-6
        )


@pytest.mark.slow
@pytest.mark.parametrize("method", fusion.FUSION_METHODS)
def test_dense_depth_equals_runs(rng, method):
    s_a = rng.normal(size=(5, 40)).astype(np.float32)
    s_b = rng.normal(size=(5, 40)).astype(np.float32)
    cfg = RuleConfig(method, "minmax", depth=7)
    prm = RuleHParams(weight=0.7, rrf_k=3.0)
    dense = fusion.fuse_scores(s_a, s_b, prm, config=cfg)
    top_s, top_i = jax.lax.top_k(dense, 6)
    ia = np.argsort(-s_a, 1, kind="stable")[:, :7].astype(np.int32)
    ib = np.argsort(-s_b, 1, kind="stable")[:, :7].astype(np.int32)
    runs = fusion.fuse_runs(
        ia,
        np.take_along_axis(s_a, ia, 1),
        ib,
        np.take_along_axis(s_b, ib, 1),
        prm,
        config=cfg,
        k=6,
    )
    np.testing.assert_array_equal(top_i, runs.items)
    np.testing.assert_allclose(top_s, runs.scores, rtol=1e-6)


def test_fuse_scores_full_row_reference_and_jit(rng):
    s_a = rng.normal(size=(3, 12)).astype(np.float32)
    s_b = rng.normal(size=(3, 12)).astype(np.float32)
    cfg = RuleConfig("wsum", "zscore")
    got = fusion.fuse_scores(s_a, s_b, RuleHParams(weight=0.2), config=cfg)
    ref = np.stack(
        [
            0.2 * np_normalize(s_a[u], "zscore") + 0.8 * np_normalize(s_b[u], "zscore")
            for u in range(3)
        ]
    )
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    jitted = jax.jit(lambda a, b, p: fusion.fuse_scores(a, b, p, config=cfg))
    np.testing.assert_allclose(jitted(s_a, s_b, RuleHParams(weight=0.2)), got, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def views():
    """Two views as score functions (Partials), with a training history to exclude."""
    rng = np.random.default_rng(1)
    n_users, n_items, d = 40, 60, 6
    u = rng.normal(size=(n_users, d)).astype(np.float32)
    va = rng.normal(size=(n_items, d)).astype(np.float32)
    vb = rng.normal(size=(n_items, d)).astype(np.float32)
    hist_u = np.repeat(np.arange(n_users), 5)
    hist_i = rng.integers(0, n_items, n_users * 5)
    hist = padding.pad_item_sets(hist_u, hist_i, n_users)
    dot = jax.tree_util.Partial(lambda p, idx: p[0][idx] @ p[1].T)
    fa = jax.tree_util.Partial(dot.func, (jnp.asarray(u), jnp.asarray(va)))
    fb = jax.tree_util.Partial(dot.func, (jnp.asarray(u), jnp.asarray(vb)))
    # validation items: top items of a mixture of the two views (so the weight matters)
    true = u @ (0.8 * va + 0.2 * vb).T
    val = np.argsort(-true, 1)[:, :3]
    val_pad = padding.pad_item_sets(np.repeat(np.arange(n_users), 3), val.ravel(), n_users)
    return dict(
        fa=fa,
        fb=fb,
        hist=hist,
        val=val_pad,
        n_users=n_users,
        n_items=n_items,
        u=u,
        va=va,
        vb=vb,
        hist_u=hist_u,
        hist_i=hist_i,
    )


@pytest.mark.parametrize(
    ("norm", "depth"),
    [("minmax", None), ("zscore", None), ("rank", None), ("minmax", 15), ("rank", 15)],
)
def test_weight_one_zero_reproduces_each_view(views, norm, depth):
    """w = 1 (0) gives view A's (B's) top-K. With a top-N cut this needs a normalisation whose
    run minimum is >= 0 (min-max, rank): absent items contribute 0, which is above a present
    item's negative z-score, so z-score + depth does not reproduce the view (ranx convention).
    """
    v = views
    kw = dict(n_users=v["n_users"], n_items=v["n_items"], k=10, exclude=v["hist"])
    for w, f in ((1.0, v["fa"]), (0.0, v["fb"])):
        fused = fusion.fuse_score_fns(
            v["fa"],
            v["fb"],
            RuleHParams(weight=w),
            config=RuleConfig("wsum", norm, depth),
            n_items=v["n_items"],
            exclude=v["hist"],
        )
        np.testing.assert_array_equal(
            ranking.topk_from_score_fn(fused, **kw).items,
            ranking.topk_from_score_fn(f, **kw).items,
        )


def test_tune_rule_matches_loop_and_selects_best(views):
    v = views
    grid = fusion.rule_grid(weights=[0.0, 0.5, 0.8, 1.0])
    cfg = RuleConfig("wsum", "zscore")
    res = fusion.tune_rule(
        v["fa"],
        v["fb"],
        grid,
        config=cfg,
        valid_padded=v["val"],
        exclude=v["hist"],
        n_items=v["n_items"],
        k=10,
        user_chunk=16,
    )
    loop = []
    for w in [0.0, 0.5, 0.8, 1.0]:
        fused = fusion.fuse_score_fns(
            v["fa"],
            v["fb"],
            RuleHParams(weight=w),
            config=cfg,
            n_items=v["n_items"],
            exclude=v["hist"],
        )
        top = ranking.topk_from_score_fn(
            fused, n_users=v["n_users"], n_items=v["n_items"], k=10, exclude=v["hist"]
        )
        loop.append(float(ranking.evaluate_topk(top.items, v["val"], ks=(10,)).mean("recall")[0]))
    np.testing.assert_allclose(res.values, loop, rtol=1e-5)
    assert res.best_index == int(np.argmax(loop))
    assert float(res.best_hparams.weight) == pytest.approx([0.0, 0.5, 0.8, 1.0][res.best_index])
    assert res.best_index != 0  # view A generated most of the validation items


def test_rrf_grid_tuning_runs(views):
    v = views
    grid = fusion.rule_grid(rrf_ks=[1.0, 10.0, 60.0])
    res = fusion.tune_rule(
        v["fa"],
        v["fb"],
        grid,
        config=RuleConfig("rrf", "none", depth=20),
        valid_padded=v["val"],
        exclude=v["hist"],
        n_items=v["n_items"],
        k=5,
        metric="ndcg",
    )
    assert res.values.shape == (3,)
    assert np.all((np.asarray(res.values) >= 0) & (np.asarray(res.values) <= 1))


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_raise():
    a = jnp.zeros((2, 5))
    with pytest.raises(ValueError, match="scores_a"):
        fusion.fuse_scores(a, jnp.zeros((2, 4)), config=RuleConfig())
    with pytest.raises(ValueError, match="scores_b"):
        fusion.fuse_scores(a, a.at[0, 0].set(jnp.nan), config=RuleConfig())
    with pytest.raises(ValueError, match="rrf_k"):
        fusion.fuse_scores(a, a, RuleHParams(rrf_k=0.0), config=RuleConfig("rrf"))
    with pytest.raises(ValueError, match="weight"):
        fusion.fuse_scores(a, a, RuleHParams(weight=1.5), config=RuleConfig())
    with pytest.raises(ValueError, match="weight"):
        fusion.fuse_scores(a, a, RuleHParams(weight=-0.1), config=RuleConfig())
    with pytest.raises(ValueError, match="method"):
        RuleConfig("combmax")
    with pytest.raises(ValueError, match="norm"):
        RuleConfig("wsum", "l2")
    with pytest.raises(ValueError, match="depth"):
        RuleConfig("wsum", "minmax", 0)
    with pytest.raises(ValueError, match="scores"):
        fusion.normalize_scores(jnp.array([[1.0, jnp.inf]]))
    ids = jnp.zeros((2, 3), jnp.int32)
    with pytest.raises(ValueError, match="scores_b"):
        fusion.fuse_runs(ids, jnp.zeros((2, 3)), ids, jnp.zeros((2, 2)), config=RuleConfig(), k=2)
    with pytest.raises(ValueError, match="items_a"):
        fusion.fuse_runs(
            ids.astype(float),
            jnp.zeros((2, 3)),
            ids,
            jnp.zeros((2, 3)),
            config=RuleConfig(),
            k=2,
        )
    with pytest.raises(ValueError, match="k"):
        fusion.fuse_runs(ids, jnp.zeros((2, 3)), ids, jnp.zeros((2, 3)), config=RuleConfig(), k=7)
    with pytest.raises(ValueError, match="weights"):
        fusion.rule_grid(weights=[0.5, 2.0])
    with pytest.raises(ValueError, match="rrf_ks"):
        fusion.rule_grid(rrf_ks=[-1.0])


# ----------------------------------------------------------------------------- learned gate


@pytest.fixture(scope="module")
def gate_setup(views):
    v = views
    uf = fusion.gate_user_features(
        v["fa"],
        v["fb"],
        n_users=v["n_users"],
        n_items=v["n_items"],
        exclude=v["hist"],
        top_m=5,
    )
    itf = fusion.gate_item_features(np.bincount(v["hist_i"], minlength=v["n_items"]))
    vu = np.repeat(np.arange(v["n_users"]), 3).astype(np.int32)
    vi = np.asarray(v["val"]).ravel()
    return dict(uf=uf, itf=itf, vu=vu[vi >= 0], vi=vi[vi >= 0])


def test_gate_features_shapes(views, gate_setup):
    assert gate_setup["uf"].shape == (views["n_users"], 4)
    assert gate_setup["itf"].shape == (views["n_items"], 1)
    assert np.all(np.isfinite(gate_setup["uf"]))
    np.testing.assert_allclose(np.mean(gate_setup["uf"], 0), 0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["zscore", "minmax"])
def test_gate_at_init_equals_equal_weight_sum(views, gate_setup, norm):
    v, g = views, gate_setup
    cfg = fusion.GateConfig(norm=norm, per_item=True)
    gate_fn = fusion.gate_score_fn(
        fusion.gate_init(4, 1),
        v["fa"],
        v["fb"],
        g["uf"],
        g["itf"],
        config=cfg,
        n_items=v["n_items"],
        exclude=v["hist"],
    )
    rule_fn = fusion.fuse_score_fns(
        v["fa"],
        v["fb"],
        RuleHParams(weight=0.5),
        config=RuleConfig("wsum", norm),
        n_items=v["n_items"],
        exclude=v["hist"],
    )
    users = jnp.arange(v["n_users"], dtype=jnp.int32)
    np.testing.assert_allclose(gate_fn(users), rule_fn(users), rtol=1e-6, atol=1e-6)


GATE_CFG = fusion.GateConfig(steps=30, batch_size=32)


@pytest.mark.slow
def test_gate_training_lowers_loss_and_vmap_equals_loop(views, gate_setup):
    v, g = views, gate_setup
    fit_one = lambda k: fusion.fit_gate(  # noqa: E731
        k,
        v["fa"],
        v["fb"],
        g["uf"],
        g["itf"],
        g["vu"],
        g["vi"],
        config=GATE_CFG,
        n_items=v["n_items"],
        exclude=v["hist"],
        hparams=fusion.GateHParams(learning_rate=0.1),
    )
    keys = jax.random.split(jax.random.key(0), 2)
    batched = jax.vmap(fit_one)(keys)
    for s in range(2):
        single = fit_one(keys[s])
        np.testing.assert_allclose(batched.losses[s], single.losses, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(
            batched.params.w_user[s], single.params.w_user, rtol=1e-4, atol=1e-6
        )
    # loss on a fixed batch (all validation pairs, fixed negatives) goes down
    rng = np.random.default_rng(3)
    neg = jnp.asarray(rng.integers(0, v["n_items"], g["vu"].shape[0]), jnp.int32)

    def fixed_loss(p):
        return fusion.gate_loss(
            p,
            v["fa"],
            v["fb"],
            g["uf"],
            g["itf"],
            v["hist"],
            jnp.asarray(g["vu"]),
            jnp.asarray(g["vi"]),
            neg,
            config=GATE_CFG,
            n_items=v["n_items"],
        )

    trained = jax.tree.map(lambda x: x[0], batched.params)
    assert float(fixed_loss(trained)) < float(fixed_loss(fusion.gate_init(4, 1)))


def test_gate_bad_inputs(views, gate_setup):
    v, g = views, gate_setup
    with pytest.raises(ValueError, match="learning_rate"):
        fusion.fit_gate(
            jax.random.key(0),
            v["fa"],
            v["fb"],
            g["uf"],
            g["itf"],
            g["vu"],
            g["vi"],
            config=GATE_CFG,
            n_items=v["n_items"],
            hparams=fusion.GateHParams(learning_rate=0.0),
        )
    with pytest.raises(ValueError, match="item_features"):
        fusion.fit_gate(
            jax.random.key(0),
            v["fa"],
            v["fb"],
            g["uf"],
            g["itf"][:5],
            g["vu"],
            g["vi"],
            config=GATE_CFG,
            n_items=v["n_items"],
        )
    with pytest.raises(ValueError, match="train_items"):
        fusion.fit_gate(
            jax.random.key(0),
            v["fa"],
            v["fb"],
            g["uf"],
            g["itf"],
            g["vu"],
            g["vi"] + 1000,
            config=GATE_CFG,
            n_items=v["n_items"],
        )
    with pytest.raises(ValueError, match="norm"):
        fusion.GateConfig(norm="rank")


# ----------------------------------------------------------------------------- shared-private


@pytest.fixture(scope="module")
def item_views():
    """Synthetic shared-plus-private item views and interactions driven by both."""
    rng = np.random.default_rng(2)
    n_users, n_items = 50, 80
    s, p, q = (rng.normal(size=(n_items, 3)) for _ in range(3))
    x = (np.concatenate([s, p], 1) @ rng.normal(size=(6, 10))).astype(np.float32)
    y = np.concatenate([s, q], 1).astype(np.float32)
    u = rng.normal(size=(n_users, 9))
    pref = u @ np.concatenate([s, p, q], 1).T + rng.gumbel(size=(n_users, n_items))
    top = np.argsort(-pref, 1)[:, :8]
    tu = np.repeat(np.arange(n_users), 8).astype(np.int32)
    ti = top.ravel().astype(np.int32)
    return dict(
        x=x,
        y=y,
        tu=tu,
        ti=ti,
        n_users=n_users,
        n_items=n_items,
        hist=padding.pad_item_sets(tu, ti, n_users),
    )


SP_CFG = fusion.SharedPrivateConfig(shared_dim=3, private_dim=3, steps=250, batch_size=64)
ORTH_TOL = 0.05


@pytest.mark.slow
def test_shared_private_orthogonal_after_training(item_views):
    iv = item_views
    x, y = jnp.asarray(iv["x"]), jnp.asarray(iv["y"])
    # one vmapped call trains with and without the orthogonality penalty
    hps = jax.tree.map(lambda v: jnp.full(2, v), fusion.SharedPrivateHParams(learning_rate=0.02))
    hps = hps.replace(orth_weight=jnp.array([10.0, 0.0]))
    fits = jax.vmap(
        lambda h: fusion.fit_shared_private(
            jax.random.key(0),
            x,
            y,
            iv["tu"],
            iv["ti"],
            n_users=iv["n_users"],
            config=SP_CFG,
            hparams=h,
        )
    )(hps)

    def orth(j):
        p = jax.tree.map(lambda t: t[j], fits.params)
        s, px, py = fusion.shared_private_parts(p, x, y)
        return max(float(fusion.orthogonality(s, px)), float(fusion.orthogonality(s, py)))

    assert orth(0) <= ORTH_TOL, orth(0)
    assert orth(1) > 2 * ORTH_TOL, orth(1)  # the penalty is what makes it orthogonal
    # training lowers the loss on a fixed batch
    fit = jax.tree.map(lambda t: t[0], fits.params)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, iv["tu"].shape[0], 128)
    neg = jnp.asarray(rng.integers(0, iv["n_items"], 128), jnp.int32)
    hp = fusion.SharedPrivateHParams(orth_weight=10.0)
    init = fusion.shared_private_init(
        jax.random.split(jax.random.key(0))[0], iv["n_users"], 10, 6, SP_CFG
    )
    args = (x, y, jnp.asarray(iv["tu"][idx]), jnp.asarray(iv["ti"][idx]), neg, hp)
    before = fusion.shared_private_loss(init, *args)[0]
    after = fusion.shared_private_loss(fit, *args)[0]
    assert float(after) < float(before)
    ue, ie = fusion.shared_private_embeddings(fit, x, y)
    assert ue.shape == (iv["n_users"], 9) and ie.shape == (iv["n_items"], 9)


def test_shared_private_bad_inputs(item_views):
    iv = item_views
    with pytest.raises(ValueError, match="y"):
        fusion.fit_shared_private(
            jax.random.key(0), iv["x"], iv["y"][:-1], iv["tu"], iv["ti"], n_users=iv["n_users"]
        )
    with pytest.raises(ValueError, match="x"):
        fusion.fit_shared_private(
            jax.random.key(0),
            iv["x"] * np.nan,
            iv["y"],
            iv["tu"],
            iv["ti"],
            n_users=iv["n_users"],
        )
    with pytest.raises(ValueError, match="orth_weight"):
        fusion.fit_shared_private(
            jax.random.key(0),
            iv["x"],
            iv["y"],
            iv["tu"],
            iv["ti"],
            n_users=iv["n_users"],
            hparams=fusion.SharedPrivateHParams(orth_weight=-1.0),
        )
