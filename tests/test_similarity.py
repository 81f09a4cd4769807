"""Tests for complemjax.similarity against independent NumPy / SciPy references."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import r2_score as sk_r2

from complemjax import similarity as S

# --------------------------------------------------------------------------- references


def _np_hsic_biased(K, L):
    n = K.shape[0]
    H = np.eye(n) - 1.0 / n
    return np.trace(K @ H @ L @ H)


def _np_cka_gram(K, L):
    return _np_hsic_biased(K, L) / np.sqrt(_np_hsic_biased(K, K) * _np_hsic_biased(L, L))


def _np_hsic_unbiased(K, L):
    """Song et al. (2012) Eq. 5 with explicit n x n matrices (diagonals zeroed)."""
    n = K.shape[0]
    Kt = K.copy()
    Lt = L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    one = np.ones(n)
    val = (
        np.trace(Kt @ Lt)
        + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    )
    return val / (n * (n - 3))


def _np_debiased_cka(X, Y):
    K, L = X @ X.T, Y @ Y.T  # uncentred on purpose: the estimator is centring-invariant
    return _np_hsic_unbiased(K, L) / np.sqrt(_np_hsic_unbiased(K, K) * _np_hsic_unbiased(L, L))


def _np_rbf_cka(X, Y, factor):
    def gram(A):
        D = np.sqrt(np.maximum(((A[:, None, :] - A[None, :, :]) ** 2).sum(-1), 0.0))
        med = np.median(D[np.triu_indices(A.shape[0], 1)])
        sigma = factor * med
        return np.exp(-(D**2) / (2 * sigma**2))

    return _np_cka_gram(gram(X), gram(Y))


def _np_knn(A, k):
    An = A / np.linalg.norm(A, axis=1, keepdims=True)
    Sm = An @ An.T
    np.fill_diagonal(Sm, -np.inf)
    return np.argsort(-Sm, axis=1, kind="stable")[:, :k]


def _np_mutual_knn(X, Y, k):
    a, b = _np_knn(X, k), _np_knn(Y, k)
    return np.mean([len(set(a[i]) & set(b[i])) / k for i in range(len(a))])


def _np_cknna(X, Y, k):
    """Dense re-implementation of the platonic-rep CKNNA (unbiased, distance-aware)."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    K, L = Xn @ Xn.T, Yn @ Yn.T
    n = K.shape[0]

    def mask(M):
        Mh = M.copy()
        np.fill_diagonal(Mh, -np.inf)
        idx = np.argsort(-Mh, axis=1, kind="stable")[:, :k]
        out = np.zeros((n, n))
        out[np.arange(n)[:, None], idx] = 1.0
        return out

    def hsic_u_literal(A, B):  # torch code: sum(A * B.T), 1ᵀA1, sum(A @ B)
        A = A.copy()
        B = B.copy()
        np.fill_diagonal(A, 0.0)
        np.fill_diagonal(B, 0.0)
        val = (
            np.sum(A * B.T) + A.sum() * B.sum() / ((n - 1) * (n - 2)) - 2 * np.sum(A @ B) / (n - 2)
        )
        return val / (n * (n - 3))

    mk, ml = mask(K), mask(L)
    m = mk * ml
    kl = hsic_u_literal(m * K, m * L)
    kk = hsic_u_literal(mk * K, mk * K)
    ll = hsic_u_literal(ml * L, ml * L)
    return kl / np.sqrt(kk * ll)


def _random_orthogonal(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _pair(rng, n=40, dx=6, dy=5, noise=0.7):
    X = rng.normal(size=(n, dx))
    Y = X @ rng.normal(size=(dx, dy)) + noise * rng.normal(size=(n, dy))
    return X.astype(np.float32), Y.astype(np.float32)


# --------------------------------------------------------------------------- R²


def test_r2_matches_sklearn(rng):
    y = rng.normal(size=(50, 4)) * np.array([1.0, 3.0, 0.2, 1.5])
    p = y + rng.normal(size=y.shape) * 0.5
    r = S.r2_score(y.astype(np.float32), p.astype(np.float32))
    assert np.isclose(r.uniform, sk_r2(y, p, multioutput="uniform_average"), atol=1e-5)
    assert np.isclose(r.variance_weighted, sk_r2(y, p, multioutput="variance_weighted"), atol=1e-5)
    np.testing.assert_allclose(r.per_dim, sk_r2(y, p, multioutput="raw_values"), atol=1e-5)
    assert int(r.n_constant) == 0


def test_r2_one_dim_and_constant_dims(rng):
    y = rng.normal(size=30).astype(np.float32)
    r = S.r2_score(y, y)
    assert np.isclose(r.uniform, 1.0) and r.per_dim.shape == (1,)
    y2 = np.stack([y, np.full(30, 3.7, np.float32)], axis=1)
    p2 = y2 + 0.1
    r2 = S.r2_score(y2, p2)
    assert int(r2.n_constant) == 1
    assert np.isnan(r2.per_dim[1])
    expected = 1 - np.sum((y - (y + 0.1)) ** 2) / np.sum((y - y.mean()) ** 2)
    assert np.isclose(r2.uniform, expected, atol=1e-5)
    assert np.isclose(r2.variance_weighted, expected, atol=1e-5)
    # A prediction worse than the mean is negative (no fitting).
    assert S.r2_score(y, -y).uniform < 0


def test_r2_bad_input():
    with pytest.raises(ValueError, match="y_pred"):
        S.r2_score(np.zeros((5, 2), np.float32), np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="y_true"):
        S.r2_score(np.zeros((5, 2), np.int32), np.zeros((5, 2), np.float32))
    bad = np.ones((5, 2), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`y_pred` contains 1 NaN"):
        S.r2_score(np.ones((5, 2), np.float32), bad)


# --------------------------------------------------------------------------- CKA


def test_linear_cka_equals_gram_space(rng):
    X, Y = _pair(rng)
    Xd, Yd = X.astype(np.float64), Y.astype(np.float64)
    ref = _np_cka_gram(Xd @ Xd.T, Yd @ Yd.T)
    assert np.isclose(S.linear_cka(X, Y), ref, atol=1e-5)


def test_linear_cka_wide_features(rng):
    X, Y = _pair(rng, n=12, dx=30, dy=25)
    Xd, Yd = X.astype(np.float64), Y.astype(np.float64)
    assert np.isclose(S.linear_cka(X, Y), _np_cka_gram(Xd @ Xd.T, Yd @ Yd.T), atol=1e-5)


def test_debiased_cka_matches_song_formula(rng):
    X, Y = _pair(rng, n=25)
    ref = _np_debiased_cka(X.astype(np.float64), Y.astype(np.float64))
    assert np.isclose(S.debiased_linear_cka(X, Y), ref, atol=1e-4)
    # n = 4 is the smallest allowed size.
    X4, Y4 = _pair(rng, n=4, dx=3, dy=3)
    ref4 = _np_debiased_cka(X4.astype(np.float64), Y4.astype(np.float64))
    assert np.isclose(S.debiased_linear_cka(X4, Y4), ref4, atol=1e-3)


@pytest.mark.parametrize("fn", [S.linear_cka, S.debiased_linear_cka])
def test_cka_invariances(rng, fn):
    X, Y = _pair(rng, n=50)
    base = fn(X, Y)
    Qx = _random_orthogonal(rng, X.shape[1]).astype(np.float32)
    Qy = _random_orthogonal(rng, Y.shape[1]).astype(np.float32)
    assert np.isclose(fn(X @ Qx, Y), base, atol=1e-5)
    assert np.isclose(fn(X, Y @ Qy), base, atol=1e-5)
    assert np.isclose(fn(3.5 * X, 0.2 * Y), base, atol=1e-5)
    assert np.isclose(fn(X + 4.0, Y - 1.0), base, atol=1e-4)
    assert np.isclose(fn(X, X @ Qx * 2.0), 1.0, atol=1e-5)


def test_debiased_unbiased_under_independence():
    """Across seeds, debiased CKA of independent inputs averages ~0; biased CKA does not."""
    keys = jax.random.split(jax.random.key(1), 200)
    n, d = 16, 8
    X = jax.vmap(lambda k: jax.random.normal(k, (n, d)))(keys)
    Y = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), (n, d)))(keys)
    deb = np.asarray(jax.vmap(S.debiased_linear_cka)(X, Y))
    bia = np.asarray(jax.vmap(S.linear_cka)(X, Y))
    se = deb.std() / np.sqrt(len(deb))
    assert abs(deb.mean()) < 4 * se
    assert bia.mean() > 0.3  # strong positive bias at n=16, d=8


def test_rbf_cka_matches_dense(rng):
    X, Y = _pair(rng, n=37)
    for factor in (0.5, 1.0):
        ref = _np_rbf_cka(X.astype(np.float64), Y.astype(np.float64), factor)
        got_blocked = S.rbf_cka(X, Y, sigma_factor=factor, block_size=8)
        got_one = S.rbf_cka(X, Y, sigma_factor=factor, block_size=64)
        assert np.isclose(got_blocked, ref, atol=1e-4)
        assert np.isclose(got_one, got_blocked, atol=1e-5)


def test_rbf_cka_subsampled_median(rng):
    X, Y = _pair(rng, n=30)
    idx = (np.arange(10) * 30) // 10
    Xd = X.astype(np.float64)
    D = np.sqrt(((Xd[idx, None] - Xd[None, idx]) ** 2).sum(-1))
    med = np.median(D[np.triu_indices(10, 1)])
    # With median_sample=10 the bandwidth comes from rows 0, 3, ..., 27: check via X = Y.
    got = S.rbf_cka(X, X, median_sample=10)
    assert np.isclose(got, 1.0, atol=1e-5)
    D_all = np.sqrt(((Xd[:, None] - Xd[None]) ** 2).sum(-1))
    K = np.exp(-(D_all**2) / (2 * med**2))
    Yd = Y.astype(np.float64)
    Dy = np.sqrt(((Yd[idx, None] - Yd[None, idx]) ** 2).sum(-1))
    medy = np.median(Dy[np.triu_indices(10, 1)])
    Dy_all = np.sqrt(((Yd[:, None] - Yd[None]) ** 2).sum(-1))
    L = np.exp(-(Dy_all**2) / (2 * medy**2))
    assert np.isclose(S.rbf_cka(X, Y, median_sample=10, block_size=7), _np_cka_gram(K, L), 1e-4)


# --------------------------------------------------------------------------- kNN


def test_mutual_knn_matches_dense_and_blockwise(rng):
    X, Y = _pair(rng, n=53, noise=1.0)
    for k, sizes in ((1, (7,)), (5, (7, 53)), (52, (1000,))):
        ref = _np_mutual_knn(X.astype(np.float64), Y.astype(np.float64), k)
        for bs in sizes:
            res = S.mutual_knn(X, Y, k=k, block_size=bs)
            assert np.isclose(res.score, ref, atol=1e-6), (k, bs)
        assert np.isclose(res.chance, k / 52)
        assert res.per_item.shape == (53,)
    assert np.isclose(S.mutual_knn(X, Y, k=52).score, 1.0)  # all other items


def test_knn_indices_identical_to_argsort(rng):
    X, Y = _pair(rng, n=41)
    from complemjax.similarity import _knn_blocked, _normalize_rows

    _, ix, _, iy = _knn_blocked(_normalize_rows(jnp.asarray(X)), _normalize_rows(Y), 6, 9)
    np.testing.assert_array_equal(np.asarray(ix), _np_knn(X.astype(np.float64), 6))
    np.testing.assert_array_equal(np.asarray(iy), _np_knn(Y.astype(np.float64), 6))


def test_mutual_knn_ties_break_to_lower_index():
    # Items 1, 2, 3 are exact duplicates: from item 0 all three tie.
    X = np.array([[1.0, 0.1], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    from complemjax.similarity import _knn_blocked, _normalize_rows

    _, ix, _, _ = _knn_blocked(_normalize_rows(jnp.asarray(X)), _normalize_rows(X), 2, 2)
    assert list(np.asarray(ix[0])) == [1, 2]
    assert list(np.asarray(ix[2])) == [1, 3]


def test_mutual_knn_identical_and_independent(rng):
    X = rng.normal(size=(300, 8)).astype(np.float32)
    assert np.isclose(S.mutual_knn(X, X, k=10).score, 1.0)
    # Cosine neighbours: invariant to per-item positive scaling and rotations.
    scale = rng.uniform(0.5, 2.0, size=(300, 1)).astype(np.float32)
    Q = _random_orthogonal(rng, 8).astype(np.float32)
    assert np.isclose(S.mutual_knn(X, scale * X @ Q, k=10).score, 1.0)
    Y = rng.normal(size=(300, 8)).astype(np.float32)
    res = S.mutual_knn(X, Y, k=10)
    # Independent: per-item overlaps have mean k/(n-1); SE of the mean ≈ sqrt(chance/(k n)).
    se = np.sqrt(float(res.chance) / (10 * 300))
    assert abs(float(res.score) - float(res.chance)) < 5 * se


def test_cknna_matches_dense(rng):
    X, Y = _pair(rng, n=45, noise=1.0)
    for k, bs in ((3, 8), (10, 45)):
        ref = _np_cknna(X.astype(np.float64), Y.astype(np.float64), k)
        assert np.isclose(S.cknna(X, Y, k=k, block_size=bs), ref, atol=1e-4), (k, bs)
    assert np.isclose(S.cknna(X, X, k=5), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- shape metrics


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_procrustes_zero_after_rotation_scaling(rng, alpha):
    X = rng.normal(size=(40, 5)).astype(np.float32)
    Q = _random_orthogonal(rng, 5).astype(np.float32)
    assert float(S.procrustes_distance(X, 2.5 * X @ Q + 1.0, alpha=alpha)) < 2e-3
    Y = rng.normal(size=(40, 5)).astype(np.float32)
    assert float(S.procrustes_distance(X, Y, alpha=alpha)) > 0.3


def test_procrustes_matches_formulas(rng):
    X, Y = _pair(rng, n=60, dx=6, dy=4)
    Xd, Yd = X.astype(np.float64), Y.astype(np.float64)
    Xc, Yc = Xd - Xd.mean(0), Yd - Yd.mean(0)
    # alpha = 1: arccos of the normalised nuclear norm (zero-padding to a common width).
    Yp = np.pad(Yc, ((0, 0), (0, 2)))
    nuc = np.linalg.svd(Xc.T @ Yp, compute_uv=False).sum()
    ref1 = np.arccos(nuc / (np.linalg.norm(Xc) * np.linalg.norm(Yc)))
    assert np.isclose(S.procrustes_distance(X, Y, alpha=1.0), ref1, atol=2e-3)
    # alpha = 0: arccos(Σ canonical correlations / sqrt(d_x d_y)); cos(angles) via scipy.
    cosines = np.cos(scipy.linalg.subspace_angles(Xc, Yc))
    ref0 = np.arccos(cosines.sum() / np.sqrt(6 * 4))
    assert np.isclose(S.procrustes_distance(X, Y, alpha=0.0), ref0, atol=2e-3)
    # Symmetric.
    d_xy = S.procrustes_distance(X, Y, alpha=0.5)
    assert np.isclose(S.procrustes_distance(Y, X, alpha=0.5), d_xy, atol=1e-4)


def test_procrustes_alpha_vmap_equals_loop(rng):
    X, Y = _pair(rng, n=30)
    alphas = jnp.linspace(0.0, 1.0, 5)
    got = jax.vmap(lambda a: S.procrustes_distance(X, Y, alpha=a))(alphas)
    loop = [S.procrustes_distance(X, Y, alpha=float(a)) for a in alphas]
    np.testing.assert_allclose(got, loop, atol=1e-5)


def test_svcca_matches_reference(rng):
    X, Y = _pair(rng, n=80, dx=7, dy=6)
    dims = 4

    def scores(A):
        Ac = A.astype(np.float64) - A.mean(0)
        U, s, _ = np.linalg.svd(Ac, full_matrices=False)
        return U[:, :dims] * s[:dims]

    rho = np.sort(np.cos(scipy.linalg.subspace_angles(scores(X), scores(Y))))[::-1]
    res = S.svcca(X, Y, dims=dims)
    np.testing.assert_allclose(res.correlations, rho, atol=1e-4)
    assert np.isclose(res.score, rho.mean(), atol=1e-4)


@pytest.mark.parametrize("center", [False, True])
def test_principal_angles_match_scipy(rng, center):
    X, Y = _pair(rng, n=30, dx=5, dy=3, noise=0.3)
    Xd, Yd = X.astype(np.float64), Y.astype(np.float64)
    if center:
        Xd, Yd = Xd - Xd.mean(0), Yd - Yd.mean(0)
    ref = np.sort(scipy.linalg.subspace_angles(Xd, Yd))
    np.testing.assert_allclose(S.principal_angles(X, Y, center=center), ref, atol=1e-4)
    np.testing.assert_allclose(S.principal_angles(Y, X, center=center), ref, atol=1e-4)
    # Top-r subspaces.
    Ux = np.linalg.svd(Xd, full_matrices=False)[0][:, :2]
    Uy = np.linalg.svd(Yd, full_matrices=False)[0][:, :2]
    ref2 = np.sort(scipy.linalg.subspace_angles(Ux, Uy))
    np.testing.assert_allclose(S.principal_angles(X, Y, rank=2, center=center), ref2, atol=1e-4)


def test_principal_angles_small_angles_accurate(rng):
    X = rng.normal(size=(50, 3))
    Y = X + 1e-4 * rng.normal(size=X.shape)
    ref = np.sort(scipy.linalg.subspace_angles(X, Y))
    got = S.principal_angles(X.astype(np.float32), Y.astype(np.float32))
    np.testing.assert_allclose(got, ref, atol=2e-5)


# --------------------------------------------------------------------------- attribution


def test_recovery_attribution(rng):
    n, d = 200, 4
    shared = rng.normal(size=(n, d))
    private = rng.normal(size=(n, d))
    A = rng.normal(size=(d, 3))
    pred = shared @ A  # spans only a 3-dim part of the shared variance
    res = S.recovery_attribution(
        pred.astype(np.float32), shared.astype(np.float32), private.astype(np.float32)
    )
    # Reference: OLS with intercept, variance-weighted in-sample R².
    D = np.column_stack([np.ones(n), pred])
    for part, got in ((shared, res.shared_explained), (private, res.private_explained)):
        fit = D @ np.linalg.lstsq(D, part, rcond=None)[0]
        ref = 1 - ((part - fit) ** 2).sum() / ((part - part.mean(0)) ** 2).sum()
        assert np.isclose(got, ref, atol=1e-4)
    assert res.private_explained < 0.1 < 0.5 < res.shared_explained
    # Direct R² of a perfect shared predictor.
    r = S.recovery_attribution(
        shared.astype(np.float32), shared.astype(np.float32), private.astype(np.float32)
    )
    assert np.isclose(r.shared_r2, 1.0) and np.isclose(r.shared_explained, 1.0, atol=1e-5)
    assert np.isclose(
        r.private_r2, S.r2_score(private.astype(np.float32), shared.astype(np.float32)).uniform
    )


def test_recovery_attribution_rank_deficient_pred(rng):
    n = 100
    shared = rng.normal(size=(n, 3)).astype(np.float32)
    private = rng.normal(size=(n, 3)).astype(np.float32)
    pred = np.column_stack([shared[:, 0], 2 * shared[:, 0], np.zeros(n)]).astype(np.float32)
    res = S.recovery_attribution(pred, shared, private)
    # Only the single direction shared[:, 0] may count (no spurious basis vectors).
    D = np.column_stack([np.ones(n), shared[:, 0]]).astype(np.float64)
    fit = D @ np.linalg.lstsq(D, shared, rcond=None)[0]
    ref = 1 - ((shared - fit) ** 2).sum() / ((shared - shared.mean(0)) ** 2).sum()
    assert np.isclose(res.shared_explained, ref, atol=1e-4)


def test_geometry_recovery(rng):
    X, Y = _pair(rng, n=60)
    g = S.geometry_recovery(X, Y, k=5)
    assert np.isclose(g.linear_cka, S.linear_cka(X, Y))
    assert np.isclose(g.debiased_cka, S.debiased_linear_cka(X, Y))
    assert np.isclose(g.mutual_knn, S.mutual_knn(X, Y, k=5).score)
    assert np.isclose(g.mutual_knn_chance, 5 / 59)


# --------------------------------------------------------------------------- uncertainty


def test_permutation_null_matches_loop(rng):
    X, Y = _pair(rng, n=30)
    key = jax.random.key(3)
    res = S.permutation_null(key, S.linear_cka, X, Y, n_permutations=8, batch_size=3)
    keys = jax.random.split(key, 8)
    loop = [S.linear_cka(X, Y[np.asarray(jax.random.permutation(k, 30))]) for k in keys]
    np.testing.assert_allclose(res.null, loop, atol=1e-6)
    expected_p = (1 + np.sum(np.asarray(loop) >= float(res.observed))) / 9
    assert np.isclose(res.p_value, expected_p)
    assert np.isclose(res.p_value, 1 / 9)  # strongly related inputs
    # Unrelated inputs: p-value is not tiny.
    Z = rng.normal(size=Y.shape).astype(np.float32)
    assert S.permutation_null(key, S.linear_cka, X, Z, n_permutations=50).p_value > 0.01


def test_bootstrap_interval_matches_loop(rng):
    X, Y = _pair(rng, n=40)
    key = jax.random.key(5)
    res = S.bootstrap_interval(key, S.debiased_linear_cka, X, Y, n_boot=10, level=0.8)
    keys = jax.random.split(key, 10)
    loop = []
    for k in keys:
        idx = np.asarray(jax.random.randint(k, (40,), 0, 40))
        loop.append(float(S.debiased_linear_cka(X[idx], Y[idx])))
    np.testing.assert_allclose(res.samples, loop, atol=1e-5)
    assert np.isclose(res.lower, np.quantile(loop, 0.1), atol=1e-5)
    assert np.isclose(res.upper, np.quantile(loop, 0.9), atol=1e-5)
    assert res.lower <= res.estimate <= res.upper


# --------------------------------------------------------------------------- jit / vmap


def _metrics():
    return {
        "linear_cka": S.linear_cka,
        "debiased": S.debiased_linear_cka,
        "rbf": functools.partial(S.rbf_cka, block_size=16),
        "mknn": lambda a, b: S.mutual_knn(a, b, k=4, block_size=16).score,
        "cknna": lambda a, b: S.cknna(a, b, k=4, block_size=16),
        "procrustes": functools.partial(S.procrustes_distance, alpha=0.3),
        "svcca": lambda a, b: S.svcca(a, b, dims=3).score,
        "angles": lambda a, b: S.principal_angles(a, b, rank=3),
        "r2": lambda a, b: S.r2_score(a[:, :3], b[:, :3]).uniform,
    }


@pytest.mark.parametrize("name", list(_metrics()))
def test_jit_equals_eager(rng, name):
    fn = _metrics()[name]
    X, Y = _pair(rng, n=35)
    np.testing.assert_allclose(jax.jit(fn)(X, Y), fn(X, Y), atol=1e-5)


@pytest.mark.parametrize("name", ["linear_cka", "debiased", "mknn", "cknna", "procrustes"])
def test_vmap_equals_loop(name):
    fn = _metrics()[name]
    rng = np.random.default_rng(7)
    pairs = [_pair(rng, n=30) for _ in range(3)]
    Xs = np.stack([p[0] for p in pairs])
    Ys = np.stack([p[1] for p in pairs])
    got = jax.vmap(fn)(Xs, Ys)
    np.testing.assert_allclose(got, [fn(x, y) for x, y in pairs], atol=1e-5)


def test_no_retrace_on_second_call(rng):
    traces = []

    @jax.jit
    def f(a, b):
        traces.append(1)
        return S.mutual_knn(a, b, k=3).score + S.debiased_linear_cka(a, b)

    X, Y = _pair(rng, n=20)
    f(X, Y)
    f(X + 1.0, Y)
    assert len(traces) == 1


# --------------------------------------------------------------------------- validation


def test_bad_inputs():
    X = np.ones((10, 3), np.float32)
    Y = np.ones((9, 3), np.float32)
    with pytest.raises(ValueError, match="`X` and `Y` must have the same number of rows"):
        S.linear_cka(X, Y)
    bad = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    bad[0, 0], bad[1, 1], bad[2, 2] = np.nan, np.inf, np.nan
    with pytest.raises(ValueError, match=r"`Y` contains 2 NaN and 1 inf"):
        S.debiased_linear_cka(X, bad)
    with pytest.raises(ValueError, match="`X` needs at least 4 rows"):
        S.debiased_linear_cka(X[:3], X[:3])
    with pytest.raises(ValueError, match="`X` must be a floating-point"):
        S.linear_cka(np.ones((10, 3), np.int64), X)
    with pytest.raises(ValueError, match="`Y` must have 2 dimensions"):
        S.linear_cka(X, np.ones(10, np.float32))
    with pytest.raises(ValueError, match="`k` must be < n = 10"):
        S.mutual_knn(X, X, k=10)
    with pytest.raises(ValueError, match="`k` must be >= 2"):
        S.cknna(X, X, k=1)
    with pytest.raises(ValueError, match="`k` must be an integer"):
        S.mutual_knn(X, X, k=2.0)
    with pytest.raises(ValueError, match="`dims` must be <= 3"):
        S.svcca(X, X, dims=4)
    with pytest.raises(ValueError, match="`rank` must be <= 3"):
        S.principal_angles(X, X, rank=4)
    with pytest.raises(ValueError, match="`alpha` must lie in"):
        S.procrustes_distance(X, X, alpha=1.5)
    with pytest.raises(ValueError, match="`sigma_factor`"):
        S.rbf_cka(X, X, sigma_factor=0.0)
    with pytest.raises(ValueError, match="`block_size`"):
        S.mutual_knn(X, X, k=2, block_size=0)
    with pytest.raises(ValueError, match="`level`"):
        S.bootstrap_interval(jax.random.key(0), S.linear_cka, X, X, n_boot=3, level=1.0)
    with pytest.raises(ValueError, match="`n_permutations`"):
        S.permutation_null(jax.random.key(0), S.linear_cka, X, X, n_permutations=0)
    with pytest.raises(ValueError, match="`metric_fn` must return a scalar"):
        S.permutation_null(
            jax.random.key(0),
            lambda a, b: S.svcca(a, b, dims=2).correlations,
            X,
            X,
            n_permutations=2,
        )
    with pytest.raises(ValueError, match="`private_part`"):
        S.recovery_attribution(X, X, X[:, :2])
    with pytest.raises(ValueError, match="`pred` and `target`"):
        S.geometry_recovery(X, Y)


# --------------------------------------------------------------------------- properties


_mat = st.integers(min_value=0, max_value=2**31 - 1)


@pytest.mark.slow
@settings(max_examples=12, deadline=None)
@given(seed=_mat, shape=st.sampled_from([(6, 1, 3), (12, 4, 4), (20, 6, 2)]))
def test_property_bounds_and_symmetry(seed, shape):
    n, dx, dy = shape
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, dx)).astype(np.float32)
    Y = (r.normal(size=(n, dy)) + r.uniform() * X[:, :1]).astype(np.float32)
    c = float(S.linear_cka(X, Y))
    assert -1e-6 <= c <= 1 + 1e-5
    assert np.isclose(c, S.linear_cka(Y, X), atol=1e-5)
    assert np.isclose(S.debiased_linear_cka(X, Y), S.debiased_linear_cka(Y, X), atol=1e-4)
    if dx == 1 and len(set(np.sign(X[:, 0]))) == 1:  # one direction: neighbours undefined
        with pytest.raises(ValueError, match="`X` is collapsed"):
            S.mutual_knn(X, Y, k=3)
    else:
        m = S.mutual_knn(X, Y, k=3)
        assert 0 <= float(m.score) <= 1
        assert np.isclose(m.score, S.mutual_knn(Y, X, k=3).score)
    p = float(S.procrustes_distance(X, Y))
    assert 0 <= p <= np.pi / 2 + 1e-6


def test_variance_share_reference_and_additivity():
    rng = np.random.default_rng(3)
    a, b, e = (rng.normal(size=(200, 4)) for _ in range(3))
    y = a + 0.5 * b + 0.1 * e
    x = a + rng.normal(size=(200, 4))
    pred = x @ np.linalg.lstsq(np.c_[x, np.ones(200)], y, rcond=None)[0][:4] + 0.0
    ref = lambda p, q: np.sum((p - p.mean(0)) * (q - q.mean(0))) / np.sum((p - p.mean(0)) ** 2)  # noqa: E731
    for part in (a, 0.5 * b):
        np.testing.assert_allclose(
            float(S.variance_share(part.astype(np.float32), pred.astype(np.float32))),
            ref(part, pred), rtol=1e-4, atol=1e-5,
        )  # fmt: skip
    total = sum(np.sum((p - p.mean(0)) ** 2) * ref(p, pred) for p in (a, 0.5 * b, 0.1 * e))
    np.testing.assert_allclose(total, np.sum((y - y.mean(0)) * (pred - pred.mean(0))), rtol=1e-8)
    with pytest.raises(ValueError, match="part"):
        S.variance_share(np.ones((5, 2), np.float32), np.ones((5, 3), np.float32))
