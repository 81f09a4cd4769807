"""Tests for complemjax.recommenders: weighted profiles, item kNN, ranker selection, the
linear-map diagnostic, and index checks (NumPy references on small data)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from complemjax import probes, ranking
from complemjax import recommenders as rec
from complemjax.data import padding
from complemjax.semantic import PostProcess


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------- profiles
def test_user_profiles_matches_numpy(rng):
    emb = rng.normal(size=(6, 4)).astype(np.float32)
    u = np.array([0, 0, 2, 2, 2])
    i = np.array([1, 3, 0, 3, 5])
    prof = np.asarray(rec.user_profiles(emb, u, i, n_users=4))
    v = _unit(emb)
    np.testing.assert_allclose(prof[0], v[[1, 3]].mean(0), rtol=1e-5)
    np.testing.assert_allclose(prof[2], v[[0, 3, 5]].mean(0), rtol=1e-5)
    np.testing.assert_array_equal(prof[[1, 3]], 0.0)
    raw = np.asarray(rec.user_profiles(emb, u, i, n_users=4, normalize=False))
    np.testing.assert_allclose(raw[2], emb[[0, 3, 5]].mean(0), rtol=1e-5)
    w1 = np.ones(5, np.float32)
    jitted = jax.jit(lambda e: rec._profiles(e, u, i, w1, 4, True))(emb)
    np.testing.assert_allclose(jitted, prof, rtol=1e-6)
    with pytest.raises(ValueError, match="item_emb"):
        rec.user_profiles(emb.astype(int), u, i, n_users=4)


def test_weighted_profiles_match_numpy(rng):
    emb = rng.normal(size=(7, 3)).astype(np.float32)
    u = np.array([0, 0, 0, 1, 1, 2])
    i = np.array([1, 2, 6, 0, 2, 4])
    r = np.array([5.0, 1.0, 3.5, 4.0, 0.5, 2.0], np.float32)
    prof = np.asarray(rec.user_profiles(emb, u, i, n_users=4, weights=rec.rating_weights(r)))
    v = _unit(emb)
    for user in range(3):
        sel = u == user
        ref = (r[sel, None] * v[i[sel]]).sum(0) / r[sel].sum()
        np.testing.assert_allclose(prof[user], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(prof[3], 0.0)
    liked = np.asarray(rec.rating_weights(r, min_rating=3.5))
    np.testing.assert_array_equal(liked, [1, 0, 1, 1, 0, 0])
    # all-zero weights: the zero profile, not NaN
    p0 = np.asarray(rec.user_profiles(emb, u, i, n_users=4, weights=liked))
    np.testing.assert_array_equal(p0[2], 0.0)
    np.testing.assert_allclose(p0[0], v[[1, 6]].mean(0), rtol=1e-5)


def test_recency_weights_rank_from_end_with_ties():
    u = np.array([0, 0, 0, 0, 1, 1])
    t = np.array([10, 30, 20, 30, 5, 1])
    w = np.asarray(rec.recency_weights(u, t, n_users=2, half_life=1.0))
    # user 0: t=30 (x2) latest -> rank 0; t=20 -> 2 later; t=10 -> 3 later
    np.testing.assert_allclose(w, [2.0**-3, 1.0, 2.0**-2, 1.0, 1.0, 0.5])
    w2 = np.asarray(rec.recency_weights(u, t, n_users=2, half_life=2.0))
    np.testing.assert_allclose(w2, np.sqrt(w))
    with pytest.raises(ValueError, match="half_life"):
        rec.recency_weights(u, t, n_users=2, half_life=0.0)
    with pytest.raises(ValueError, match="timestamps"):
        rec.recency_weights(u, t[:3], n_users=2, half_life=1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"user_idx": np.array([0, -1])}, "user_idx"),
        ({"user_idx": np.array([0, 7])}, "user_idx.*n_users=1"),
        ({"user_idx": np.array([0.0, 0.0])}, "user_idx.*integer"),
        ({"item_idx": np.array([1, 3])}, "item_idx.*n_items=3"),
        ({"item_idx": np.array([-1, 1])}, "item_idx"),
        ({"item_idx": np.array([1.5, 1.0])}, "item_idx.*integer"),
        ({"item_idx": np.array([1, 2, 0])}, "equal length"),
        ({"weights": np.array([1.0, -1.0])}, "weights"),
        ({"weights": np.array([1.0, np.nan])}, "weights"),
    ],
)
def test_user_profiles_index_checks(kwargs, match):
    # issue 13 item 5: -1 used to wrap, ids >= n_users were dropped, floats truncated
    args = {"user_idx": np.array([0, 0]), "item_idx": np.array([1, 2])} | kwargs
    with pytest.raises(ValueError, match=match):
        rec.user_profiles(
            np.eye(3, dtype=np.float32), args["user_idx"], args["item_idx"], n_users=1,
            weights=args.get("weights"),
        )  # fmt: skip


def test_user_profiles_under_vmap_checks_only_dtypes(rng):
    # traced ids cannot be value-checked; ids == n_users (padding) are dropped, as the
    # synthetic study relies on
    emb = rng.normal(size=(5, 3)).astype(np.float32)
    sets = np.array([[[0, 2, -1], [1, -1, -1]], [[4, -1, -1], [3, 2, 1]]], np.int32)

    def prof(s):
        users = jnp.broadcast_to(jnp.arange(2)[:, None], s.shape)
        u = jnp.where(s >= 0, users, 2).ravel()
        return rec.user_profiles(emb, u, jnp.maximum(s, 0).ravel(), n_users=2)

    out = np.asarray(jax.vmap(prof)(jnp.asarray(sets)))
    for b in range(2):
        for user in range(2):
            items = sets[b, user][sets[b, user] >= 0]
            np.testing.assert_allclose(out[b, user], _unit(emb)[items].mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="user_idx"):
        jax.vmap(lambda s: rec.user_profiles(emb, s.astype(float), s, n_users=2))(
            jnp.zeros((2, 3), jnp.int32)
        )


# ---------------------------------------------------------------- item kNN
def _knn_reference(emb, hist_pairs, n_users, n_nb):
    v = _unit(emb.astype(np.float64))
    sim = v @ v.T
    n = len(emb)
    np.fill_diagonal(sim, -np.inf)
    nbrs = np.argsort(-sim, axis=1, kind="stable")[:, :n_nb]
    scores = np.zeros((n_users, n))
    for user in range(n_users):
        h = {int(i) for uu, i in hist_pairs if uu == user}
        for item in range(n):
            scores[user, item] = sum(sim[item, j] for j in nbrs[item] if int(j) in h)
    return nbrs, scores


def test_item_knn_matches_dense_numpy(rng):
    n_items, n_users, n_nb, k = 40, 9, 5, 7
    emb = rng.normal(size=(n_items, 6)).astype(np.float32)
    u = rng.integers(0, n_users, 60)
    i = rng.integers(0, n_items, 60)
    nbrs_ref, scores_ref = _knn_reference(emb, list(zip(u, i)), n_users, n_nb)
    nb = rec.item_neighbors(emb, n_neighbors=n_nb, item_chunk=16, user_chunk=8)
    np.testing.assert_array_equal(nb.items, nbrs_ref)
    hist = padding.pad_item_sets(u, i, n_users)
    fn = rec.item_knn_score_fn(nb, hist)
    scores = np.asarray(fn(np.arange(n_users, dtype=np.int32)))
    np.testing.assert_allclose(scores, scores_ref, rtol=1e-5, atol=1e-5)
    top = rec.semantic_topk(
        rec.SemanticRanker("item_knn", n_neighbors=n_nb), emb, u, i,
        n_users=n_users, k=k, exclude=hist, neighbors=nb,
    )  # fmt: skip
    ref = scores_ref.copy()
    for user in range(n_users):
        ref[user, np.asarray(hist[user])[np.asarray(hist[user]) >= 0]] = -np.inf
    ref_top = np.argsort(-ref, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(top.items, ref_top)
    # chunking of the users does not change the lists
    top2 = ranking.topk_from_score_fn(fn, n_users=n_users, n_items=n_items, k=k,
                                      exclude=hist, user_chunk=2)  # fmt: skip
    np.testing.assert_array_equal(top2.items, top.items)


def test_item_neighbors_checks(rng):
    emb = rng.normal(size=(5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="n_neighbors"):
        rec.item_neighbors(emb, n_neighbors=5)
    nb = rec.item_neighbors(emb, n_neighbors=4)
    assert not np.any(np.asarray(nb.items) == np.arange(5)[:, None])  # self excluded
    with pytest.raises(ValueError, match="history"):
        rec.item_knn_score_fn(nb, np.array([[0, 5]]))


# ---------------------------------------------------------------- profile rankers
def test_semantic_topk_profiles_match_numpy(rng):
    n_items, n_users, k = 30, 6, 5
    emb = rng.normal(size=(n_items, 4)).astype(np.float32)
    u = np.repeat(np.arange(n_users), 4)
    i = rng.permutation(n_items)[: u.size] % n_items
    r = rng.choice([1.0, 3.0, 5.0], size=u.size).astype(np.float32)
    t = rng.integers(0, 100, size=u.size)
    hist = padding.pad_item_sets(u, i, n_users)
    v = _unit(emb.astype(np.float64))
    for ranker, w in [
        (rec.SemanticRanker("mean"), np.ones(u.size)),
        (rec.SemanticRanker("rating"), r),
        (rec.SemanticRanker("recency", half_life=2.0),
         np.asarray(rec.recency_weights(u, t, n_users=n_users, half_life=2.0))),
    ]:  # fmt: skip
        top = rec.semantic_topk(ranker, emb, u, i, n_users=n_users, k=k, exclude=hist,
                                ratings=r, timestamps=t)  # fmt: skip
        for user in range(n_users):
            sel = u == user
            p = (w[sel, None] * v[i[sel]]).sum(0) / w[sel].sum()
            s = v @ (p / np.linalg.norm(p))
            s[i[sel]] = -np.inf
            np.testing.assert_array_equal(top.items[user], np.argsort(-s, kind="stable")[:k])
    with pytest.raises(ValueError, match="ratings"):
        rec.semantic_topk(rec.SemanticRanker("rating"), emb, u, i, n_users=n_users, k=k)


def test_semantic_ranker_config_checks():
    with pytest.raises(ValueError, match="kind"):
        rec.SemanticRanker("popular")
    with pytest.raises(ValueError, match="half_life"):
        rec.SemanticRanker("recency")
    with pytest.raises(ValueError, match="n_neighbors"):
        rec.SemanticRanker("item_knn")
    assert rec.SemanticRanker("item_knn", n_neighbors=5).describe() == "item_knn(N=5)"


def test_select_semantic_ranker_uses_validation_only(rng):
    # items in two clusters; each user's history and validation items come from one
    # cluster, so a semantic ranker must beat chance on validation
    n_items, n_users = 40, 12
    centers = rng.normal(size=(2, 8)) * 3
    cluster = np.arange(n_items) % 2
    emb = (centers[cluster] + rng.normal(size=(n_items, 8)) + 5.0).astype(np.float32)
    u, i, vu, vi = [], [], [], []
    for user in range(n_users):
        items = rng.permutation(np.flatnonzero(cluster == user % 2))[:6]
        u += [user] * 4
        i += list(items[:4])
        vu += [user] * 2
        vi += list(items[4:])
    u, i = np.array(u), np.array(i)
    valid = padding.pad_item_sets(np.array(vu), np.array(vi), n_users)
    pps = (PostProcess(), PostProcess(center=True))
    rankers = (rec.SemanticRanker("mean"), rec.SemanticRanker("item_knn", n_neighbors=5),
               rec.SemanticRanker("rating"))  # fmt: skip
    sel = rec.select_semantic_ranker(
        emb, u, i, n_users=n_users, valid_sets=valid, rankers=rankers, postprocesses=pps, k=5
    )
    assert len(sel.trials) == 6
    skipped = [t for t in sel.trials if t.get("skipped")]
    assert [t["ranker"] for t in skipped] == ["rating", "rating"]
    scores = [t["valid_recall"] for t in sel.trials if not t.get("skipped")]
    assert sel.valid_score == max(scores)
    assert sel.valid_score > 5 / 36  # well above random (5 of ~36 candidates)
    chosen = [t for t in sel.trials if t["postprocess"] == sel.postprocess.describe()
              and t["ranker"] == sel.ranker.describe()]  # fmt: skip
    assert chosen[0]["valid_recall"] == sel.valid_score


# ---------------------------------------------------------------- linear map diagnostic
def test_linear_map_matches_numpy_ridge_and_probes(rng):
    x = rng.normal(size=(50, 5)).astype(np.float32)
    a = rng.normal(size=(5, 3)).astype(np.float32)
    y = x @ a + 2.0 + 0.1 * rng.normal(size=(50, 3)).astype(np.float32)
    lam = 3.0
    m = rec.fit_linear_map(x, y, l2=lam)
    xc, yc = x - x.mean(0), y - y.mean(0)
    w_ref = np.linalg.solve(xc.T @ xc + lam * np.eye(5), xc.T @ yc)
    np.testing.assert_allclose(m.weight, w_ref, rtol=1e-4, atol=1e-5)
    pred = rec.apply_linear_map(m, x)
    np.testing.assert_allclose(pred, xc @ w_ref + y.mean(0), rtol=1e-4, atol=1e-4)
    p = probes.fit(jax.random.key(3), probes.Ridge(), x, y, probes.ProbeHParams(l2=lam))
    np.testing.assert_allclose(m.weight, p.weight, rtol=1e-6)
    # exact recovery without noise and l2 = 0, fitting on a subset of rows
    y_exact = x @ a - 1.0
    mask = np.arange(50) < 20
    m0 = rec.fit_linear_map(x, y_exact, l2=0.0, mask=mask)
    np.testing.assert_allclose(rec.apply_linear_map(m0, x), y_exact, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="x"):
        rec.fit_linear_map(x[:10], y, l2=1.0)
    with pytest.raises(ValueError, match="mask"):
        rec.fit_linear_map(x, y, l2=1.0, mask=np.zeros(50, bool))
    with pytest.raises(ValueError, match="l2"):
        rec.fit_linear_map(x, y, l2=-1.0)


def test_linear_map_onto_cf_shapes_and_alias(rng):
    sem = rng.normal(size=(8, 5)).astype(np.float32)
    cfe = rng.normal(size=(8, 3)).astype(np.float32)
    u = np.array([0, 0, 1])
    i = np.array([2, 4, 7])
    ue, ie, m = rec.linear_map_onto_cf(sem, cfe, u, i, n_users=2, l2=1.0)
    assert ue.shape == (2, 3) and ie.shape == (8, 3)
    z = np.asarray(rec.apply_linear_map(m, sem))
    np.testing.assert_allclose(ue[0], z[[2, 4]].mean(0), rtol=1e-5)
    assert not hasattr(rec, "mapped_recommender")  # one name, no deprecated alias
