"""Tests for complemjax.complementarity: overlap, unique hits, oracle bounds, buckets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complemjax.complementarity import (
    compare_rankers,
    item_popularity_buckets,
    pair_user_stats,
    user_activity_buckets,
)
from complemjax.data.padding import pad_item_sets
from complemjax.ranking import evaluate_topk, topk_from_embeddings

METRICS = ("recall", "ndcg", "precision", "hit", "mrr")


# ---------------------------------------------------------------------------
# NumPy reference of the per-user definitions
# ---------------------------------------------------------------------------


def np_pair(la, lb, test, k, item_mask=None):
    """Per-user reference (dict of arrays; NaN for skipped users)."""
    keep = (lambda i: i >= 0) if item_mask is None else (lambda i: i >= 0 and item_mask[i])
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    out = {
        n: [] for n in ("n_test", "shared", "unique_a", "unique_b", "union", "jaccard", "overlap")
    }
    out.update({f"{m}_{v}": [] for m in METRICS for v in ("a", "b", "best", "merge")})
    out["union_2k"] = []
    for a, b, t in zip(la, lb, test):
        A = [int(x) if keep(x) else -1 for x in a[:k]]
        B = [int(x) if keep(x) else -1 for x in b[:k]]
        T = {int(x) for x in t if keep(x)}
        SA, SB = {x for x in A if x >= 0}, {x for x in B if x >= 0}
        HA, HB = SA & T, SB & T
        out["n_test"].append(len(T))
        out["shared"].append(len(HA & HB))
        out["unique_a"].append(len(HA - HB))
        out["unique_b"].append(len(HB - HA))
        out["union"].append(len(HA | HB))
        lu = len(SA | SB)
        out["jaccard"].append(len(SA & SB) / lu if lu else np.nan)
        out["overlap"].append(len(SA & SB) / k)

        def metrics(L, T=T):
            rel = np.array([x in T for x in L], dtype=float)
            h = rel.sum()
            first = np.argmax(rel) if h else None
            idcg = disc[: min(k, len(T))].sum()
            return {
                "recall": h / len(T),
                "precision": h / k,
                "hit": float(h > 0),
                "mrr": 0.0 if first is None else 1 / (first + 1),
                "ndcg": (rel * disc).sum() / idcg,
            }

        if not T:
            for m in METRICS:
                for v in ("a", "b", "best", "merge"):
                    out[f"{m}_{v}"].append(np.nan)
            out["union_2k"].append(np.nan)
            continue
        ma, mb = metrics(A), metrics(B)
        h = min(len(HA | HB), k)
        merge = {
            "recall": h / len(T),
            "precision": h / k,
            "hit": float(h > 0),
            "mrr": float(h > 0),
            "ndcg": disc[:h].sum() / disc[: min(k, len(T))].sum(),
        }
        for m in METRICS:
            out[f"{m}_a"].append(ma[m])
            out[f"{m}_b"].append(mb[m])
            out[f"{m}_best"].append(max(ma[m], mb[m]))
            out[f"{m}_merge"].append(merge[m])
        out["union_2k"].append(len(HA | HB) / len(T))
    return {n: np.array(v, dtype=float) for n, v in out.items()}


def random_case(rng, n_users=40, n_items=25, kmax=6):
    la = np.stack([rng.permutation(n_items)[:kmax] for _ in range(n_users)])
    # B shares part of A's list so that overlaps are non-trivial
    lb = np.stack([rng.permutation(n_items)[:kmax] for _ in range(n_users)])
    mix = rng.random((n_users, 1)) < 0.4
    lb = np.where(mix, np.roll(la, 1, axis=1), lb)
    lb = np.stack([r if len(set(r)) == len(r) else rng.permutation(n_items)[:kmax] for r in lb])
    la[rng.random(la.shape) < 0.05] = -1
    test = pad_item_sets(
        rng.integers(0, n_users, 120), rng.integers(0, n_items, 120), n_users, max_len=n_items
    )
    return la, lb, np.asarray(test)  # fixed shapes: one compilation per k


def stats_dict(s):
    d = {
        "n_test": s.n_test,
        "shared": s.shared,
        "unique_a": s.unique_a,
        "unique_b": s.unique_b,
        "union": s.union,
        "jaccard": s.jaccard,
        "overlap": s.overlap,
        "union_2k": s.union_2k,
    }
    for m in METRICS:
        d[f"{m}_a"], d[f"{m}_b"] = s.a[m], s.b[m]
        d[f"{m}_best"], d[f"{m}_merge"] = s.best_of_two[m], s.merge[m]
    return {n: np.asarray(v, dtype=float) for n, v in d.items()}


# ---------------------------------------------------------------------------
# Hand-computed example, K = 3
# ---------------------------------------------------------------------------

LA = np.array([[1, 2, 3], [7, 8, 9], [1, 2, 3], [5, -1, -1]])
LB = np.array([[3, 4, 5], [7, 8, 9], [4, 5, 6], [5, 6, 7]])
TEST = np.array([[2, 3, 4, 9], [6, -1, -1, -1], [-1, -1, -1, -1], [5, 7, -1, -1]])


def test_pair_user_stats_hand_k3():
    s = pair_user_stats(jnp.asarray(LA), jnp.asarray(LB), jnp.asarray(TEST), k=3)
    np.testing.assert_array_equal(s.n_test, [4, 1, 0, 2])
    np.testing.assert_array_equal(s.list_inter, [1, 3, 0, 1])
    np.testing.assert_array_equal(s.list_union, [5, 3, 6, 3])
    np.testing.assert_allclose(s.jaccard, [1 / 5, 1.0, 0.0, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(s.overlap, [1 / 3, 1.0, 0.0, 1 / 3], rtol=1e-6)
    np.testing.assert_array_equal(s.shared, [1, 0, 0, 1])
    np.testing.assert_array_equal(s.unique_a, [1, 0, 0, 0])
    np.testing.assert_array_equal(s.unique_b, [1, 0, 0, 1])
    np.testing.assert_array_equal(s.union, [3, 0, 0, 2])
    l3, l4 = np.log2(3), np.log2(4)
    idcg3 = 1 + 1 / l3 + 1 / l4
    idcg2 = 1 + 1 / l3
    nan = np.nan
    np.testing.assert_allclose(s.a["recall"], [0.5, 0, nan, 0.5])
    np.testing.assert_allclose(s.b["recall"], [0.5, 0, nan, 1.0])
    np.testing.assert_allclose(s.best_of_two["recall"], [0.5, 0, nan, 1.0])
    np.testing.assert_allclose(s.merge["recall"], [0.75, 0, nan, 1.0])
    np.testing.assert_allclose(s.union_2k, [0.75, 0, nan, 1.0])
    np.testing.assert_allclose(s.a["precision"], [2 / 3, 0, nan, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(s.merge["precision"], [1.0, 0, nan, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(
        s.a["ndcg"], [(1 / l3 + 1 / l4) / idcg3, 0, nan, 1 / idcg2], rtol=1e-6
    )
    np.testing.assert_allclose(s.b["ndcg"], [(1 + 1 / l3) / idcg3, 0, nan, 1.5 / idcg2], rtol=1e-6)
    np.testing.assert_allclose(s.merge["ndcg"], [1.0, 0, nan, 1.0], rtol=1e-6)
    np.testing.assert_allclose(s.a["mrr"], [0.5, 0, nan, 1.0])
    np.testing.assert_allclose(s.b["mrr"], [1.0, 0, nan, 1.0])
    np.testing.assert_allclose(s.best_of_two["mrr"], [1.0, 0, nan, 1.0])
    np.testing.assert_allclose(s.merge["hit"], [1.0, 0, nan, 1.0])


def test_compare_rankers_hand_k3():
    df = compare_rankers(LA, LB, TEST, ks=(3,))
    v = df.set_index("metric")["value"]
    assert (df.bucket_type == "all").all() and (df.n_users == 3).all()
    assert np.isnan(df.ci_low).all()
    assert v["recall_a"] == pytest.approx(1 / 3)
    assert v["recall_b"] == pytest.approx(1 / 2)
    assert v["recall_best_of_two"] == pytest.approx(1 / 2)
    assert v["recall_merge"] == pytest.approx(7 / 12)
    assert v["recall_union_2k"] == pytest.approx(7 / 12)
    assert v["recall_merge_gain"] == pytest.approx(1 / 12)
    assert v["recall_merge_gain_rel"] == pytest.approx(1 / 6)
    assert v["recall_best_of_two_gain"] == pytest.approx(0.0, abs=1e-7)
    assert v["jaccard"] == pytest.approx((0.2 + 1 + 1 / 3) / 3)
    assert v["overlap"] == pytest.approx(5 / 9)
    assert v["shared_hits"] == pytest.approx(2 / 3)
    assert v["unique_a_hits"] == pytest.approx(1 / 3)
    assert v["unique_a_share_micro"] == pytest.approx(1 / 5)
    assert v["unique_b_share_micro"] == pytest.approx(2 / 5)
    assert v["shared_share_micro"] == pytest.approx(2 / 5)
    assert v["unique_a_share_per_user"] == pytest.approx(1 / 6)
    assert v["unique_b_share_per_user"] == pytest.approx(5 / 12)
    assert v["shared_share_per_user"] == pytest.approx(5 / 12)
    assert v["mrr_best_of_two"] == pytest.approx(2 / 3)
    assert list(df.columns) == [
        "k",
        "bucket_type",
        "bucket",
        "metric",
        "value",
        "ci_low",
        "ci_high",
        "n_users",
    ]


# ---------------------------------------------------------------------------
# Agreement with NumPy on random data
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 4, 6])
def test_pair_user_stats_matches_numpy(rng, k):
    la, lb, test = random_case(rng)
    mask = rng.random(25) < 0.4
    for m in (None, mask):
        got = stats_dict(
            pair_user_stats(la, lb, test, k=k, item_mask=None if m is None else jnp.asarray(m))
        )
        ref = np_pair(la, lb, test, k, m)
        for name, arr in ref.items():
            np.testing.assert_allclose(got[name], arr, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.slow
def test_compare_rankers_matches_evaluate_and_numpy(rng):
    la, lb, test = random_case(rng)
    pop = rng.integers(0, 50, 25)
    act = rng.integers(1, 30, 40)
    df = compare_rankers(la, lb, test, ks=(2, 6), user_activity=act, item_popularity=pop)
    ev = evaluate_topk(la, test, ks=(2, 6))
    for j, k in enumerate((2, 6)):
        row = df[(df.k == k) & (df.bucket_type == "all")].set_index("metric")["value"]
        for m in METRICS:
            assert row[f"{m}_a"] == pytest.approx(float(ev.mean(m)[j]), rel=1e-5)
    # user buckets: quantile rule reproduced with NumPy
    evaluated = (test >= 0).any(axis=1)
    edges = np.quantile(act[evaluated], [0, 1 / 3, 2 / 3, 1])
    ref = np_pair(la, lb, test, 6)
    sub = df[(df.k == 6) & (df.bucket_type == "user_activity")]
    assert sub.bucket.nunique() == 3
    for j, label in enumerate(sorted(sub.bucket.unique())):
        lo, hi = edges[j], edges[j + 1]
        members = (act <= hi) & ((act > lo) if j else (act >= lo)) & evaluated
        r = sub[sub.bucket == label].set_index("metric")
        assert int(r["n_users"].iloc[0]) == members.sum()
        assert r.loc["recall_b", "value"] == pytest.approx(ref["recall_b"][members].mean())
        micro = ref["unique_b"][members].sum() / ref["union"][members].sum()
        assert r.loc["unique_b_share_micro", "value"] == pytest.approx(micro)
    # item buckets: head = top 20% of items by popularity (ties to lower index)
    order = np.lexsort((np.arange(25), -pop))
    head = np.zeros(25, bool)
    head[order[:5]] = True
    for label, mask in (("head", head), ("tail", ~head)):
        r = df[(df.k == 6) & (df.bucket == label)].set_index("metric")
        refb = np_pair(la, lb, test, 6, mask)
        ok = refb["n_test"] > 0
        assert int(r["n_users"].iloc[0]) == ok.sum()
        for name, col in [
            ("recall_a", "recall_a"),
            ("ndcg_merge", "ndcg_merge"),
            ("jaccard", "jaccard"),
        ]:
            want = np.nanmean(refb[col][ok])
            assert r.loc[name, "value"] == pytest.approx(want, rel=1e-5), (label, name)


def test_bucket_helpers():
    labels, members = user_activity_buckets(np.array([1, 2, 3, 4, 5, 6]), np.ones(6, bool), 3)
    assert labels[0].startswith("Q1 [1")
    np.testing.assert_array_equal(members.sum(axis=1), [2, 2, 2])
    assert members.sum(axis=0).max() == 1
    labels, masks = item_popularity_buckets(np.array([5, 9, 9, 1, 0]), 0.4)
    assert labels == ["head", "tail"]
    np.testing.assert_array_equal(masks[0], [False, True, True, False, False])


# ---------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6))
def test_property_oracle_bounds_and_symmetry(seed, k):
    rng = np.random.default_rng(seed)
    la, lb, test = random_case(rng)
    s = pair_user_stats(la, lb, test, k=6 if k > 6 else k)
    ev = np.asarray(s.n_test) > 0
    for m in METRICS:
        a, b = np.asarray(s.a[m])[ev], np.asarray(s.b[m])[ev]
        best, merge = np.asarray(s.best_of_two[m])[ev], np.asarray(s.merge[m])[ev]
        assert (best >= a).all() and (best >= b).all()
        assert (merge >= best - 1e-6).all(), m
        assert ((merge >= 0) & (merge <= 1 + 1e-6)).all()
    assert (np.asarray(s.union_2k)[ev] >= np.asarray(s.merge["recall"])[ev] - 1e-7).all()
    t = pair_user_stats(lb, la, test, k=k)
    np.testing.assert_array_equal(s.jaccard, t.jaccard)
    np.testing.assert_array_equal(s.shared, t.shared)
    np.testing.assert_array_equal(s.unique_a, t.unique_b)
    np.testing.assert_array_equal(s.union, t.union)
    j = np.asarray(s.jaccard)
    assert ((j >= 0) & (j <= 1)).all()


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_property_identical_rankers(seed):
    rng = np.random.default_rng(seed)
    la, _, test = random_case(rng)
    s = pair_user_stats(la, la, test, k=5)
    has = (la[:, :5] >= 0).any(axis=1)
    np.testing.assert_array_equal(np.asarray(s.jaccard)[has], 1.0)
    assert int(s.unique_a.sum()) == 0 and int(s.unique_b.sum()) == 0
    for m in METRICS:
        np.testing.assert_array_equal(s.best_of_two[m], s.a[m])
        np.testing.assert_array_equal(s.b[m], s.a[m])
    for m in ("recall", "precision", "hit"):  # merging a list with itself adds no hit
        np.testing.assert_array_equal(s.merge[m], s.a[m])
    ev = np.asarray(s.n_test) > 0
    for m in ("ndcg", "mrr"):  # ... but the oracle may move the hits to the top
        assert (np.asarray(s.merge[m])[ev] >= np.asarray(s.a[m])[ev] - 1e-7).all()


@pytest.mark.slow
def test_jit_equals_eager_and_vmap_equals_loop(rng):
    la, lb, test = random_case(rng)
    masks = jnp.asarray(rng.random((3, 25)) < 0.5)
    jitted = stats_dict(pair_user_stats(la, lb, test, k=4, item_mask=masks[0]))
    with jax.disable_jit():
        eager = stats_dict(pair_user_stats(la, lb, test, k=4, item_mask=masks[0]))
    for n in jitted:
        np.testing.assert_allclose(jitted[n], eager[n], rtol=1e-6, err_msg=n)
    vm = jax.vmap(lambda m: pair_user_stats(la, lb, test, k=4, item_mask=m))(masks)
    for j in range(3):
        one = pair_user_stats(la, lb, test, k=4, item_mask=masks[j])
        np.testing.assert_array_equal(vm.union[j], one.union)
        np.testing.assert_array_equal(vm.merge["ndcg"][j], one.merge["ndcg"])


# ---------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_bootstrap_intervals(rng, key):
    n_users, n_items, k = 400, 60, 5
    u = rng.standard_normal((n_users, 4)).astype(np.float32)
    v = rng.standard_normal((n_items, 4)).astype(np.float32)
    test = pad_item_sets(rng.integers(0, n_users, 2000), rng.integers(0, n_items, 2000), n_users)
    a = topk_from_embeddings(u, v, k=k)
    b = topk_from_embeddings(u + rng.standard_normal(u.shape).astype(np.float32), v, k=k)
    df = compare_rankers(a, b, test, ks=(k,), key=key, n_boot=1000)
    again = compare_rankers(a, b, test, ks=(k,), key=key, n_boot=1000)
    np.testing.assert_array_equal(df.ci_low, again.ci_low)
    r = df.set_index("metric")
    # percentile CI of a mean ~ mean ± 1.96 sd / sqrt(n)
    rec = np.asarray(evaluate_topk(a, test, ks=(k,)).recall[0])
    rec = rec[~np.isnan(rec)]
    half = 1.96 * rec.std() / np.sqrt(rec.size)
    width = r.loc["recall_a", "ci_high"] - r.loc["recall_a", "ci_low"]
    assert width == pytest.approx(2 * half, rel=0.2)
    inside = (df.ci_low <= df.value + 1e-9) & (df.value <= df.ci_high + 1e-9)
    assert inside[np.isfinite(df.ci_low)].mean() > 0.9
    other = compare_rankers(a, b, test, ks=(k,), key=jax.random.key(1), n_boot=1000)
    assert not np.array_equal(other.ci_low, df.ci_low)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_compare_rankers_bad_input():
    with pytest.raises(ValueError, match="test"):
        compare_rankers(LA, LB, np.full((4, 2), -1), ks=(3,))
    with pytest.raises(ValueError, match="topk_b"):
        compare_rankers(LA, LB[:3], TEST, ks=(3,))
    with pytest.raises(ValueError, match="ks"):
        compare_rankers(LA, LB, TEST, ks=(4,))
    with pytest.raises(ValueError, match="topk_a"):
        compare_rankers(LA.astype(float), LB, TEST, ks=(3,))
    with pytest.raises(ValueError, match="item_popularity"):
        compare_rankers(LA, LB, TEST, ks=(3,), item_popularity=np.ones(5))
    with pytest.raises(ValueError, match="user_activity"):
        compare_rankers(LA, LB, TEST, ks=(3,), user_activity=np.ones(3))
    with pytest.raises(ValueError, match="head_fraction"):
        compare_rankers(LA, LB, TEST, ks=(3,), item_popularity=np.ones(10), head_fraction=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        compare_rankers(LA, LB, TEST, ks=(3,), key=jax.random.key(0), n_boot=0)
    with pytest.raises(ValueError, match="history"):
        compare_rankers(LA, LB, TEST, ks=(3,), history=np.full((3, 2), -1))
