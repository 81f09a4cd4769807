"""Tests for complemjax.ranking: top-K lists, history masking, ties, metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complemjax.data.padding import pad_item_lists, pad_item_sets
from complemjax.ranking import (
    TopK,
    evaluate_topk,
    item_coverage,
    per_user_metrics,
    relevance_matrix,
    topk_from_embeddings,
    topk_from_score_fn,
)

# ---------------------------------------------------------------------------
# NumPy references
# ---------------------------------------------------------------------------


def np_topk(scores, exclude, k):
    """Reference: mask, then sort by (score desc, item asc); -1 for -inf slots."""
    scores = np.array(scores, dtype=np.float64)
    n_users, n_items = scores.shape
    items = np.full((n_users, k), -1)
    for u in range(n_users):
        s = scores[u].copy()
        ex = exclude[u][exclude[u] >= 0]
        s[ex] = -np.inf
        order = np.lexsort((np.arange(n_items), -s))[:k]
        keep = np.isfinite(s[order])
        items[u, : keep.sum()] = order[keep]
    return items


def np_metrics(lists, test, k):
    """Reference per-user metrics (dict of arrays, NaN when the test set is empty)."""
    out = {m: [] for m in ("recall", "ndcg", "precision", "hit", "mrr")}
    for L, T in zip(lists, test):
        T = set(int(t) for t in T if t >= 0)
        if not T:
            for m in out:
                out[m].append(np.nan)
            continue
        L = [int(x) for x in L[:k]]
        rel = [1.0 if (x >= 0 and x in T) else 0.0 for x in L]
        hits = sum(rel)
        dcg = sum(r / np.log2(i + 2) for i, r in enumerate(rel))
        idcg = sum(1 / np.log2(i + 2) for i in range(min(k, len(T))))
        first = next((i for i, r in enumerate(rel) if r), None)
        out["recall"].append(hits / len(T))
        out["precision"].append(hits / k)
        out["hit"].append(float(hits > 0))
        out["mrr"].append(0.0 if first is None else 1.0 / (first + 1))
        out["ndcg"].append(dcg / idcg)
    return {m: np.array(v) for m, v in out.items()}


def int_embeddings(rng, n, d, lo=-3, hi=4):
    """Small-integer embeddings: dot products are exact in float32 (many exact ties)."""
    return rng.integers(lo, hi, size=(n, d)).astype(np.float32)


# ---------------------------------------------------------------------------
# Padded item sets
# ---------------------------------------------------------------------------


def test_pad_item_sets_hand():
    out = pad_item_sets([0, 0, 2, 0, 2], [5, 1, 3, 5, 0], 3)
    np.testing.assert_array_equal(out, [[1, 5], [-1, -1], [0, 3]])
    assert out.dtype == jnp.int32
    out = pad_item_sets([0], [4], 2, max_len=3)
    np.testing.assert_array_equal(out, [[4, -1, -1], [-1, -1, -1]])
    out = pad_item_sets([], [], 2)
    np.testing.assert_array_equal(out, [[-1], [-1]])


def test_pad_item_sets_bad_input():
    with pytest.raises(ValueError, match="user_idx"):
        pad_item_sets([0, 3], [1, 2], 3)
    with pytest.raises(ValueError, match="user_idx"):
        pad_item_sets([-1], [1], 3)
    with pytest.raises(ValueError, match="item_idx"):
        pad_item_sets([0], [-2], 3)
    with pytest.raises(ValueError, match="item_idx"):
        pad_item_sets([0], [7], 3, n_items=5)
    with pytest.raises(ValueError, match="max_len"):
        pad_item_sets([0, 0], [1, 2], 3, max_len=1)
    with pytest.raises(ValueError, match="item_idx"):
        pad_item_sets([0, 1], [1], 3)


def test_pad_item_lists_keeps_order():
    out = pad_item_lists([np.array([3, 1]), np.array([], dtype=int), np.array([2])])
    np.testing.assert_array_equal(out, [[3, 1], [-1, -1], [2, -1]])
    with pytest.raises(ValueError, match="max_len"):
        pad_item_lists([np.array([1, 2])], max_len=1)
    with pytest.raises(ValueError, match=r"lists\[0\]"):
        pad_item_lists([np.array([-3])])


# ---------------------------------------------------------------------------
# Top-K
# ---------------------------------------------------------------------------


def test_topk_hand_ties_and_exclusion():
    # scores for the single user: [1, 3, 3, 2, 3]
    u = np.array([[1.0]], dtype=np.float32)
    v = np.array([[1.0], [3.0], [3.0], [2.0], [3.0]], dtype=np.float32)
    top = topk_from_embeddings(u, v, k=3)
    np.testing.assert_array_equal(top.items, [[1, 2, 4]])
    np.testing.assert_array_equal(top.scores, [[3.0, 3.0, 3.0]])
    top = topk_from_embeddings(u, v, k=3, exclude=np.array([[2, -1]]))
    np.testing.assert_array_equal(top.items, [[1, 4, 3]])
    np.testing.assert_array_equal(top.scores, [[3.0, 3.0, 2.0]])


def test_topk_all_ties_lower_index_wins():
    u = np.ones((2, 3), dtype=np.float32)
    v = np.zeros((6, 3), dtype=np.float32)
    top = topk_from_embeddings(u, v, k=3, exclude=np.array([[0, 2], [-1, -1]]))
    np.testing.assert_array_equal(top.items, [[1, 3, 4], [0, 1, 2]])
    # the same through item chunks of 2 (the merge must keep the lower index)
    top = topk_from_embeddings(u, v, k=3, exclude=np.array([[0, 2], [-1, -1]]), item_chunk=2)
    np.testing.assert_array_equal(top.items, [[1, 3, 4], [0, 1, 2]])


def test_topk_negative_zero_ties_with_zero():
    # 1 * -0.0 = -0.0 and 1 * 0.0 = 0.0 must tie (lower index first), as in NumPy.
    u = np.array([[1.0]], dtype=np.float32)
    v = np.array([[-1.0], [-0.0], [0.0], [-0.0]], dtype=np.float32)
    top = topk_from_embeddings(u, v, k=3)
    np.testing.assert_array_equal(top.items, [[1, 2, 3]])


def test_topk_fewer_candidates_than_k():
    u = np.ones((2, 2), dtype=np.float32)
    v = np.arange(8, dtype=np.float32).reshape(4, 2)
    ex = np.array([[0, 1, 2], [3, -1, -1]])
    for ic in (None, 3):
        top = topk_from_embeddings(u, v, k=3, exclude=ex, item_chunk=ic)
        np.testing.assert_array_equal(top.items, [[3, -1, -1], [2, 1, 0]])
        assert np.isneginf(np.asarray(top.scores)[0, 1:]).all()


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_topk_matches_numpy_reference(rng, similarity):
    n_users, n_items, d, k = 23, 41, 4, 7
    u = int_embeddings(rng, n_users, d)
    v = int_embeddings(rng, n_items, d)
    ex = pad_item_sets(rng.integers(0, n_users, 150), rng.integers(0, n_items, 150), n_users)
    top = topk_from_embeddings(u, v, k=k, exclude=ex, similarity=similarity)
    if similarity == "dot":
        s = u.astype(np.float64) @ v.T.astype(np.float64)
        np.testing.assert_array_equal(top.items, np_topk(s, np.asarray(ex), k))
    else:
        un = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-30)
        vn = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-30)
        s = un @ vn.T
        ref = np_topk(s, np.asarray(ex), k)
        # cosine values are rounded differently: compare scores, and items where no near-tie
        got_s = np.take_along_axis(s, np.maximum(np.asarray(top.items), 0), axis=1)
        ref_s = np.take_along_axis(s, ref, axis=1)
        np.testing.assert_allclose(got_s, ref_s, atol=1e-5)
        np.testing.assert_allclose(top.scores, ref_s, atol=1e-5)


CHUNKINGS = [(5, None), (37, 10), (4, 7), (1, 53), (64, 1000), (3, 1)]


@pytest.mark.slow
def test_topk_chunking_equals_one_shot_exact_scores(rng):
    # Integer-valued embeddings: every score is exact, so lists must match bit for bit
    # (and the heavy ties exercise the lower-index rule across chunk boundaries).
    n_users, n_items, d, k = 37, 53, 6, 9
    u = int_embeddings(rng, n_users, d, -2, 3)
    v = int_embeddings(rng, n_items, d, -2, 3)
    ex = pad_item_sets(rng.integers(0, n_users, 300), rng.integers(0, n_items, 300), n_users)
    one = topk_from_embeddings(u, v, k=k, exclude=ex)
    s = u.astype(np.float64) @ v.T.astype(np.float64)
    np.testing.assert_array_equal(one.items, np_topk(s, np.asarray(ex), k))
    for uc, ic in CHUNKINGS:
        got = topk_from_embeddings(u, v, k=k, exclude=ex, user_chunk=uc, item_chunk=ic)
        np.testing.assert_array_equal(got.items, one.items)
        np.testing.assert_array_equal(got.scores, one.scores)


def test_topk_chunking_float_scores_agree_to_rounding(rng):
    # Generic floats: XLA may round a matmul differently for different chunk shapes
    # (last ulp), so only near-tied items may swap; the scores of the lists must agree.
    n_users, n_items, d, k = 37, 53, 6, 9
    u = rng.standard_normal((n_users, d)).astype(np.float32)
    v = rng.standard_normal((n_items, d)).astype(np.float32)
    ex = pad_item_sets(rng.integers(0, n_users, 300), rng.integers(0, n_items, 300), n_users)
    s = u.astype(np.float64) @ v.T.astype(np.float64)
    ref = np_topk(s, np.asarray(ex), k)
    for uc, ic in [(None, None), *CHUNKINGS]:
        got = topk_from_embeddings(u, v, k=k, exclude=ex, user_chunk=uc, item_chunk=ic)
        got_s = np.take_along_axis(s, np.asarray(got.items), axis=1)
        np.testing.assert_allclose(got_s, np.take_along_axis(s, ref, axis=1), atol=1e-5)
        np.testing.assert_allclose(got.scores, got_s, atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_topk_block_selection_long_rows(rng, k):
    # n_items large relative to k: the two-stage (block max) selection is used; with
    # heavy ties it must still equal the plain sort by (score desc, item asc).
    from complemjax.ranking import _block_size

    n_users, n_items = 30, 997
    assert _block_size(n_items, k) > 0
    u = int_embeddings(rng, n_users, 3, -1, 2)
    v = int_embeddings(rng, n_items, 3, -1, 2)
    ex = pad_item_sets(rng.integers(0, n_users, 3000), rng.integers(0, n_items, 3000), n_users)
    top = topk_from_embeddings(u, v, k=k, exclude=ex, user_chunk=7)
    s = u.astype(np.float64) @ v.T.astype(np.float64)
    np.testing.assert_array_equal(top.items, np_topk(s, np.asarray(ex), k))
    # all scores equal: the k lowest non-excluded indices
    top = topk_from_embeddings(np.zeros((2, 3), np.float32), v, k=k, exclude=ex[:2])
    for r in range(2):
        allowed = np.setdiff1d(np.arange(n_items), np.asarray(ex[r]))
        np.testing.assert_array_equal(top.items[r], allowed[:k])


@pytest.mark.parametrize(
    "seed,n_items,k",
    [
        pytest.param(0, 2000, 1, marks=pytest.mark.slow),
        (1, 2000, 10),
        (2, 1999, 50),
        pytest.param(3, 4001, 20, marks=pytest.mark.slow),
        pytest.param(4, 1500, 7, marks=pytest.mark.slow),
    ],
)
def test_topk_randomized_equals_numpy_reference(seed, n_items, k):
    # Long rows (the two-stage block selection, with and without a ragged last block),
    # history masking and heavy ties: the lists equal the NumPy sort by
    # (score desc, item asc) exactly, for every CPU row split of the user chunk.
    from complemjax import ranking

    rng = np.random.default_rng(seed)
    n_users, d = 41, 4
    u = int_embeddings(rng, n_users, d, -2, 3)
    v = int_embeddings(rng, n_items, d, -2, 3)
    ex = pad_item_sets(rng.integers(0, n_users, 2000), rng.integers(0, n_items, 2000), n_users)
    assert ranking._block_size(n_items, k) > 0
    want = np_topk(u.astype(np.float64) @ v.T.astype(np.float64), np.asarray(ex), k)
    top = topk_from_embeddings(u, v, k=k, exclude=ex, user_chunk=16)
    np.testing.assert_array_equal(top.items, want)
    for n_split in (1, 3):
        cfg = ranking._TopKConfig(
            k=k,
            n_users=n_users,
            n_items=n_items,
            user_chunk=16,
            item_chunk=n_items,
            n_split=n_split,
        )
        _, items, _ = ranking._topk_embeddings_core(
            jnp.asarray(u), jnp.asarray(v), jnp.asarray(ex), cfg
        )
        np.testing.assert_array_equal(items, want)


def _sub_catalogue_reference(u, v, ex, idx, k):
    """Rank the sub-catalogue v[idx] with history re-indexed, map back to global ids."""
    local = {int(g): j for j, g in enumerate(idx)}
    ex_local = [[local[i] for i in row if i >= 0 and int(i) in local] for row in np.asarray(ex)]
    ex_local = np.asarray(pad_item_lists([np.asarray(r, int) for r in ex_local]))
    s = u.astype(np.float64) @ v[idx].T.astype(np.float64)
    items = np_topk(s, ex_local, k)
    return np.where(items >= 0, idx[np.maximum(items, 0)], -1)


@pytest.mark.parametrize(
    "n_items,n_cand,k", [(60, 25, 8), pytest.param(3000, 1400, 10, marks=pytest.mark.slow)]
)
def test_candidates_equal_sub_catalogue_ranking(rng, n_items, n_cand, k):
    n_users, d = 23, 3
    u = int_embeddings(rng, n_users, d, -2, 3)
    v = int_embeddings(rng, n_items, d, -2, 3)
    idx = np.sort(rng.choice(n_items, n_cand, replace=False))
    ex = pad_item_sets(
        rng.integers(0, n_users, 40 * n_users), rng.integers(0, n_items, 40 * n_users), n_users
    )
    want = _sub_catalogue_reference(u, v, ex, idx, k)
    mask = np.zeros(n_items, bool)
    mask[idx] = True
    for cands in (mask, idx, rng.permutation(idx)):
        got = topk_from_embeddings(u, v, k=k, exclude=ex, candidates=cands)
        np.testing.assert_array_equal(got.items, want)
        assert set(np.asarray(got.items).ravel()) - {-1} <= set(idx.tolist())
    got = topk_from_embeddings(u, v, k=k, exclude=ex, candidates=mask, item_chunk=7, user_chunk=5)
    np.testing.assert_array_equal(got.items, want)
    uj, vj = jnp.asarray(u), jnp.asarray(v)
    got = topk_from_score_fn(
        lambda i: uj[i] @ vj.T, n_users=n_users, n_items=n_items, k=k, exclude=ex, candidates=idx
    )
    np.testing.assert_array_equal(got.items, want)


def test_candidates_ignore_nan_outside_and_bad_input(rng):
    u = jnp.asarray(int_embeddings(rng, 4, 2))
    v = jnp.asarray(int_embeddings(rng, 10, 2))
    mask = np.arange(10) < 6

    def nan_outside(i):
        return jnp.where(jnp.arange(10) >= 6, jnp.nan, u[i] @ v.T)

    got = topk_from_score_fn(nan_outside, n_users=4, n_items=10, k=3, candidates=mask)
    want = topk_from_embeddings(u, v, k=3, candidates=mask)
    np.testing.assert_array_equal(got.items, want.items)
    with pytest.raises(ValueError, match="`k`"):
        topk_from_embeddings(u, v, k=7, candidates=mask)
    with pytest.raises(ValueError, match="`k`"):
        topk_from_score_fn(lambda i: u[i] @ v.T, n_users=4, n_items=10, k=3, candidates=[1, 2])
    for bad, msg in [
        (np.ones(9, bool), "length"),
        (np.zeros(10, bool), "no item"),
        (np.array([1, 1, 2]), "distinct"),
        (np.array([0, 10]), r"\[0, 10\)"),
        (np.ones((2, 5), bool), "1-D"),
        (np.array([0.5, 1.0]), "mask or int"),
    ]:
        with pytest.raises(ValueError, match=msg):
            topk_from_embeddings(u, v, k=1, candidates=bad)
    with pytest.raises(ValueError, match="concrete"):
        jax.jit(lambda a, b, m: topk_from_embeddings(a, b, k=1, candidates=m).items)(u, v, mask)


def test_nan_scores_detected_in_long_rows():
    uu = jnp.ones((3, 2))
    vv = jnp.ones((2000, 2))

    def nan_scores(idx):
        return (uu[idx] @ vv.T).at[1, 1234].set(jnp.nan)

    with pytest.raises(ValueError, match="score_fn"):
        topk_from_score_fn(nan_scores, n_users=3, n_items=2000, k=5)
    big = np.full((1, 2), 3e38, np.float32)
    with pytest.raises(ValueError, match="user_emb"):
        topk_from_embeddings(big, np.array([[3e38, -3e38]] * 2000, np.float32), k=5)


def test_item_chunk_smaller_than_k(rng):
    u = int_embeddings(rng, 6, 3)
    v = int_embeddings(rng, 20, 3)
    one = topk_from_embeddings(u, v, k=8)
    got = topk_from_embeddings(u, v, k=8, item_chunk=3, user_chunk=4)
    np.testing.assert_array_equal(got.items, one.items)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_property_no_history_item_in_topk(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = 9, 12
    u = int_embeddings(rng, n_users, 3, -1, 2)
    v = int_embeddings(rng, n_items, 3, -1, 2)
    ex = pad_item_sets(rng.integers(0, n_users, 60), rng.integers(0, n_items, 60), n_users)
    ex = pad_item_lists([r[r >= 0] for r in np.asarray(ex)], max_len=n_items)
    for ic in (None, 5):
        top = topk_from_embeddings(u, v, k=6, exclude=ex, item_chunk=ic, user_chunk=4)
        items, exn = np.asarray(top.items), np.asarray(ex)
        for r in range(n_users):
            assert not set(items[r][items[r] >= 0]) & set(exn[r][exn[r] >= 0])
            # valid entries are distinct, and -1 only where candidates ran out
            valid = items[r][items[r] >= 0]
            assert len(set(valid)) == len(valid)
            n_cand = n_items - len(set(exn[r][exn[r] >= 0]))
            assert len(valid) == min(6, n_cand)
        s = u.astype(np.float64) @ v.T.astype(np.float64)
        np.testing.assert_array_equal(items, np_topk(s, exn, 6))


def test_score_fn_matches_embeddings_and_no_retrace(rng):
    n_users, n_items, d, k = 29, 31, 5, 6
    u = jnp.asarray(int_embeddings(rng, n_users, d))
    v = jnp.asarray(int_embeddings(rng, n_items, d))
    ex = pad_item_sets(rng.integers(0, n_users, 100), rng.integers(0, n_items, 100), n_users)

    def score(params, idx):
        uu, vv = params
        return uu[idx] @ vv.T

    want = topk_from_embeddings(u, v, k=k, exclude=ex)
    fn = jax.tree_util.Partial(score, (u, v))
    got = topk_from_score_fn(fn, n_users=n_users, n_items=n_items, k=k, exclude=ex, user_chunk=8)
    np.testing.assert_array_equal(got.items, want.items)
    np.testing.assert_array_equal(got.scores, want.scores)
    # new parameters, same function: the compiled program is reused
    from complemjax import ranking

    size = ranking._topk_score_fn_core._cache_size()
    fn2 = jax.tree_util.Partial(score, (u + 1.0, v))
    topk_from_score_fn(fn2, n_users=n_users, n_items=n_items, k=k, exclude=ex, user_chunk=8)
    assert ranking._topk_score_fn_core._cache_size() == size
    # a plain closure works too
    got = topk_from_score_fn(lambda idx: u[idx] @ v.T, n_users=n_users, n_items=n_items, k=k)
    np.testing.assert_array_equal(got.items, topk_from_embeddings(u, v, k=k).items)


@pytest.mark.slow
def test_jit_equals_eager(rng):
    u = int_embeddings(rng, 7, 3)
    v = int_embeddings(rng, 11, 3)
    ex = pad_item_sets(rng.integers(0, 7, 20), rng.integers(0, 11, 20), 7)
    test = pad_item_sets(rng.integers(0, 7, 20), rng.integers(0, 11, 20), 7)
    jitted = topk_from_embeddings(u, v, k=4, exclude=ex, user_chunk=4, item_chunk=6)
    m_jit = evaluate_topk(jitted.items, test, ks=(2, 4))
    with jax.disable_jit():
        eager = topk_from_embeddings(u, v, k=4, exclude=ex, user_chunk=4, item_chunk=6)
        m_eager = evaluate_topk(eager.items, test, ks=(2, 4))
    np.testing.assert_array_equal(jitted.items, eager.items)
    np.testing.assert_array_equal(jitted.scores, eager.scores)
    for m in ("recall", "ndcg", "precision", "hit", "mrr"):
        np.testing.assert_allclose(getattr(m_jit, m), getattr(m_eager, m), rtol=1e-6)


def test_topk_bad_input(rng):
    u = rng.standard_normal((4, 3)).astype(np.float32)
    v = rng.standard_normal((5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="`k`"):
        topk_from_embeddings(u, v, k=6)
    with pytest.raises(ValueError, match="`k`"):
        topk_from_embeddings(u, v, k=0)
    with pytest.raises(ValueError, match="item_emb"):
        topk_from_embeddings(u, v[:, :2], k=2)
    bad = u.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="user_emb"):
        topk_from_embeddings(bad, v, k=2)
    badv = v.copy()
    badv[0, 0] = np.inf
    with pytest.raises(ValueError, match="item_emb"):
        topk_from_embeddings(u, badv, k=2)
    with pytest.raises(ValueError, match="exclude"):
        topk_from_embeddings(u, v, k=2, exclude=np.array([[5]] * 4))
    with pytest.raises(ValueError, match="exclude"):
        topk_from_embeddings(u, v, k=2, exclude=np.array([[-2]] * 4))
    with pytest.raises(ValueError, match="exclude"):
        topk_from_embeddings(u, v, k=2, exclude=np.array([[1]] * 3))
    with pytest.raises(ValueError, match="exclude"):
        topk_from_embeddings(u, v, k=2, exclude=np.array([[1.0]] * 4))
    with pytest.raises(ValueError, match="similarity"):
        topk_from_embeddings(u, v, k=2, similarity="l2")
    with pytest.raises(ValueError, match="user_emb"):
        topk_from_embeddings(u.astype(np.int32), v, k=2)
    with pytest.raises(ValueError, match="item_chunk"):
        topk_from_embeddings(u, v, k=2, item_chunk=0)


def test_score_fn_bad_input():
    uu = jnp.ones((4, 2))
    vv = jnp.ones((5, 2))

    def nan_scores(idx):
        s = uu[idx] @ vv.T
        return s.at[:, 1].set(jnp.nan)

    with pytest.raises(ValueError, match="score_fn"):
        topk_from_score_fn(nan_scores, n_users=4, n_items=5, k=2)
    with pytest.raises(ValueError, match="score_fn"):
        topk_from_score_fn(lambda idx: uu[idx] @ vv[:3].T, n_users=4, n_items=5, k=2)
    with pytest.raises(ValueError, match="score_fn"):
        topk_from_score_fn("not callable", n_users=4, n_items=5, k=2)
    with pytest.raises(ValueError, match="`k`"):
        topk_from_score_fn(lambda idx: uu[idx] @ vv.T, n_users=4, n_items=5, k=9)
    with pytest.raises(ValueError, match="exclude"):
        topk_from_score_fn(
            lambda idx: uu[idx] @ vv.T, n_users=4, n_items=5, k=2, exclude=np.full((4, 1), 5)
        )


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def test_evaluate_hand_k3():
    lists = np.array([[4, 2, 7], [1, 2, 3], [5, 6, 8], [9, -1, -1]])
    test = np.array([[2, 7, 9, 11], [-1, -1, -1, -1], [5, -1, -1, -1], [0, -1, -1, -1]])
    m = evaluate_topk(lists, test, ks=(1, 3))
    log = np.log2
    # user 0: hits at ranks 2, 3; |T| = 4
    assert m.n_evaluated == 3 and m.n_skipped == 1
    np.testing.assert_allclose(m.recall[1, 0], 2 / 4)
    np.testing.assert_allclose(m.precision[1, 0], 2 / 3)
    np.testing.assert_allclose(m.hit[1, 0], 1.0)
    np.testing.assert_allclose(m.mrr[1, 0], 1 / 2)
    dcg = 1 / log(3) + 1 / log(4)
    idcg = 1 + 1 / log(3) + 1 / log(4)
    np.testing.assert_allclose(m.ndcg[1, 0], dcg / idcg, rtol=1e-6)
    # K = 1: no hit for user 0
    assert float(m.recall[0, 0]) == 0.0 and float(m.mrr[0, 0]) == 0.0
    # user 1 skipped -> NaN
    assert np.isnan(m.recall[:, 1]).all()
    # user 2: hit at rank 1, |T| = 1 -> everything 1 except precision@3
    np.testing.assert_allclose(m.ndcg[:, 2], [1.0, 1.0])
    np.testing.assert_allclose(m.precision[:, 2], [1.0, 1 / 3])
    # user 3: no hit
    np.testing.assert_allclose(m.recall[:, 3], [0.0, 0.0])
    # means over evaluated users
    np.testing.assert_allclose(m.mean("recall")[1], (0.5 + 1.0 + 0.0) / 3, rtol=1e-6)
    np.testing.assert_allclose(m.mean("mrr")[1], (0.5 + 1.0 + 0.0) / 3, rtol=1e-6)
    df = m.to_frame()
    assert list(df.columns) == ["k", "metric", "value", "n_users"]
    assert len(df) == 10 and (df.n_users == 3).all()
    assert m.summary()["hit@3"] == pytest.approx(2 / 3)


def test_evaluate_duplicates_in_test_counted_once():
    m = evaluate_topk(np.array([[3, 1, 0]]), np.array([[3, 3, 5]]), ks=(3,))
    np.testing.assert_allclose(m.recall[0, 0], 1 / 2)
    np.testing.assert_array_equal(m.n_test, [2])


def test_evaluate_matches_numpy(rng):
    n_users, n_items, kmax = 60, 30, 10
    lists = np.stack([rng.permutation(n_items)[:kmax] for _ in range(n_users)])
    lists[rng.random(lists.shape) < 0.05] = -1
    test = pad_item_sets(rng.integers(0, n_users, 150), rng.integers(0, n_items, 150), n_users)
    m = evaluate_topk(TopK(jnp.asarray(lists), jnp.zeros(lists.shape)), test, ks=(1, 3, 10))
    for j, k in enumerate((1, 3, 10)):
        ref = np_metrics(lists, np.asarray(test), k)
        for name, arr in ref.items():
            np.testing.assert_allclose(getattr(m, name)[j], arr, rtol=1e-5, atol=1e-7)


def test_per_user_metrics_vmap_equals_loop(rng):
    lists = np.stack([np.stack([rng.permutation(20)[:5] for _ in range(8)]) for _ in range(3)])
    test = pad_item_sets(rng.integers(0, 8, 30), rng.integers(0, 20, 30), 8)
    vm = jax.vmap(lambda L: per_user_metrics(L, test, ks=(2, 5))["ndcg"])(jnp.asarray(lists))
    for j in range(3):
        one = evaluate_topk(lists[j], test, ks=(2, 5)).ndcg
        np.testing.assert_allclose(vm[j], one, rtol=1e-6)


def test_relevance_matrix():
    rel, n = relevance_matrix(jnp.array([[3, -1, 2]]), jnp.array([[2, -1, 2, 3]]))
    np.testing.assert_array_equal(rel, [[True, False, True]])
    np.testing.assert_array_equal(n, [2])


def test_evaluate_bad_input():
    lists = np.array([[1, 2, 3]])
    with pytest.raises(ValueError, match="test"):
        evaluate_topk(lists, np.array([[-1, -1]]), ks=(3,))
    with pytest.raises(ValueError, match="ks"):
        evaluate_topk(lists, np.array([[1]]), ks=(4,))
    with pytest.raises(ValueError, match="test"):
        evaluate_topk(lists, np.array([[1], [2]]), ks=(3,))
    with pytest.raises(ValueError, match="topk_items"):
        evaluate_topk(lists.astype(float), np.array([[1]]), ks=(3,))
    with pytest.raises(ValueError, match="topk_items"):
        evaluate_topk(np.array([[-4, 1, 2]]), np.array([[1]]), ks=(3,))


def test_item_coverage():
    lists = np.array([[0, 1, 2], [1, 3, -1]])
    assert float(item_coverage(lists, 5, 1)) == pytest.approx(2 / 5)
    assert float(item_coverage(lists, 5, 3)) == pytest.approx(4 / 5)
    with pytest.raises(ValueError, match="n_items"):
        item_coverage(lists, 3, 2)
    with pytest.raises(ValueError, match="`k`"):
        item_coverage(lists, 5, 4)
