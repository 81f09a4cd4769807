"""Representation similarity between two embedding sets of the same items.

Conventions for every function: ``X`` is ``[n, d_x]`` and ``Y`` is ``[n, d_y]``; row ``i`` of
both is the same item. Inputs must be floating point and finite (checked with a count of the
bad entries before any work, when the inputs are concrete). Every function is a pure function
of arrays; integer settings that fix shapes (``k``, ``dims``, ``rank``, ``block_size``) are
Python ints and must be marked static under :func:`jax.jit`, e.g.
``jax.jit(mutual_knn, static_argnames=("k", "block_size"))``. Continuous settings
(``alpha``, ``sigma_factor``) may be traced and vmapped.

Memory: nothing here builds an ``n x n`` matrix. Linear CKA (biased and debiased), SVCCA,
Procrustes, principal angles and R² work in feature space (cost ``O(n d²)``); RBF CKA, mutual
kNN and CKNNA work on blocks of ``block_size`` rows against all ``n`` items (peak memory
``O(block_size · n)``).

References:
    Kornblith, Norouzi, Lee, Hinton (2019). Similarity of Neural Network Representations
    Revisited. ICML.
    Song, Smola, Gretton, Bedo, Borgwardt (2012). Feature Selection via Dependence
    Maximization. JMLR 13 (Eq. 5: unbiased HSIC).
    Huh, Cheung, Wang, Isola (2024). The Platonic Representation Hypothesis. ICML.
    Williams, Kunz, Kornblith, Linderman (2021). Generalized Shape Metrics on Neural
    Representations. NeurIPS.
    Raghu, Gilmer, Yosinski, Sohl-Dickstein (2017). SVCCA. NeurIPS.
    Björck, Golub (1973). Numerical methods for computing angles between linear subspaces.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from complemjax._checks import (
    as_float_array,
    check_finite,
    check_in_range,
    check_matrix,
    check_positive_int,
    check_same_rows,
)
from complemjax.stats import resample_map

__all__ = [
    "BootstrapInterval",
    "GeometryRecovery",
    "MutualKNN",
    "PermutationTest",
    "R2Score",
    "RecoveryAttribution",
    "SVCCAResult",
    "bootstrap_interval",
    "cknna",
    "debiased_linear_cka",
    "geometry_recovery",
    "linear_cka",
    "mutual_knn",
    "permutation_null",
    "principal_angles",
    "procrustes_distance",
    "r2_score",
    "rbf_cka",
    "recovery_attribution",
    "svcca",
    "variance_share",
]

_DEFAULT_BLOCK = 1024
_MEDIAN_SAMPLE = 1024


# --------------------------------------------------------------------------- results


class R2Score(NamedTuple):
    """Coefficient of determination of a prediction.

    Attributes:
        uniform: ``[]`` mean over non-constant output dims of ``1 − SSE_j / SST_j``.
        variance_weighted: ``[]`` ``1 − Σ_j SSE_j / Σ_j SST_j`` over non-constant dims.
        per_dim: ``[d]`` ``1 − SSE_j / SST_j``; NaN for constant target dims.
        n_constant: ``[]`` int, number of target dims treated as constant (excluded).
    """

    uniform: jax.Array
    variance_weighted: jax.Array
    per_dim: jax.Array
    n_constant: jax.Array


class MutualKNN(NamedTuple):
    """Mutual k-nearest-neighbour agreement.

    Attributes:
        score: ``[]`` mean over items of ``|N_X(i) ∩ N_Y(i)| / k``.
        chance: ``[]`` expected score for independent neighbour sets, ``k / (n − 1)``.
        per_item: ``[n]`` ``|N_X(i) ∩ N_Y(i)| / k`` for each item.
    """

    score: jax.Array
    chance: jax.Array
    per_item: jax.Array


class SVCCAResult(NamedTuple):
    """SVCCA similarity.

    Attributes:
        score: ``[]`` mean canonical correlation.
        correlations: ``[dims]`` canonical correlations, descending.
    """

    score: jax.Array
    correlations: jax.Array


class RecoveryAttribution(NamedTuple):
    """How much of each ground-truth part of a target a prediction recovers.

    Attributes:
        shared_r2: ``[]`` ``r2_score(shared_part, pred).uniform`` (direct, no read-out).
        private_r2: ``[]`` ``r2_score(private_part, pred).uniform`` (direct, no read-out).
        shared_explained: ``[]`` fraction of the shared part's centred variance lying in the
            span of the centred prediction (best linear read-out, in-sample).
        private_explained: ``[]`` the same for the private part.
    """

    shared_r2: jax.Array
    private_r2: jax.Array
    shared_explained: jax.Array
    private_explained: jax.Array


class GeometryRecovery(NamedTuple):
    """Summary of how well a prediction recovers a target's geometry.

    Attributes:
        linear_cka: ``[]`` biased linear CKA (:func:`linear_cka`).
        debiased_cka: ``[]`` debiased linear CKA (:func:`debiased_linear_cka`).
        mutual_knn: ``[]`` mutual kNN@k score (:func:`mutual_knn`).
        mutual_knn_chance: ``[]`` its chance level ``k / (n − 1)``.
    """

    linear_cka: jax.Array
    debiased_cka: jax.Array
    mutual_knn: jax.Array
    mutual_knn_chance: jax.Array


class PermutationTest(NamedTuple):
    """Permutation test of a similarity metric.

    Attributes:
        observed: ``[]`` the metric on the aligned rows.
        null: ``[n_permutations]`` the metric with the rows of ``Y`` permuted.
        p_value: ``[]`` one-sided, ``(1 + #{null ≥ observed}) / (1 + n_permutations)``.
    """

    observed: jax.Array
    null: jax.Array
    p_value: jax.Array


class BootstrapInterval(NamedTuple):
    """Percentile bootstrap interval over items.

    Attributes:
        estimate: ``[]`` the metric on the full data.
        lower: ``[]`` the ``(1 − level) / 2`` quantile of the bootstrap samples.
        upper: ``[]`` the ``(1 + level) / 2`` quantile of the bootstrap samples.
        samples: ``[n_boot]`` the metric on each resample.
    """

    estimate: jax.Array
    lower: jax.Array
    upper: jax.Array
    samples: jax.Array


# --------------------------------------------------------------------------- helpers


def _pair(X, Y, *, names=("X", "Y"), min_rows: int = 2) -> tuple[jax.Array, jax.Array]:
    """Validate a pair of ``[n, d]`` float matrices with the same rows; common dtype."""
    X = check_matrix(names[0], X, min_rows=min_rows)
    Y = check_matrix(names[1], Y, min_rows=min_rows)
    check_same_rows(names[0], X, names[1], Y)
    dtype = jnp.result_type(X.dtype, Y.dtype)
    return X.astype(dtype), Y.astype(dtype)


def _center(A: jax.Array) -> jax.Array:
    return A - jnp.mean(A, axis=0, keepdims=True)


def _sq_frob(A: jax.Array) -> jax.Array:
    return jnp.sum(A * A)


def _normalize_rows(A: jax.Array) -> jax.Array:
    """Unit-norm rows; rows of zero norm stay zero (cosine similarity 0 to everything)."""
    norms = jnp.sqrt(jnp.sum(A * A, axis=1, keepdims=True))
    return A / jnp.where(norms > 0, norms, 1.0)


def _block_layout(n: int, block_size: int) -> tuple[int, int]:
    """Return ``(rows per block, number of blocks)`` for ``n`` rows."""
    b = min(block_size, n)
    return b, -(-n // b)


def _pad_rows(A: jax.Array, total: int) -> jax.Array:
    return jnp.pad(A, ((0, total - A.shape[0]), (0, 0)))


def _check_block_size(block_size) -> int:
    return check_positive_int("block_size", block_size)


# --------------------------------------------------------------------------- R²


def r2_score(y_true: ArrayLike, y_pred: ArrayLike) -> R2Score:
    """Coefficient of determination of ``y_pred`` for ``y_true``, per output dim.

    For each output dim ``j``::

        SST_j = Σ_i (y_ij − ȳ_j)²,   SSE_j = Σ_i (y_ij − ŷ_ij)²,   R²_j = 1 − SSE_j / SST_j

    ``uniform`` is the mean of ``R²_j`` over dims and ``variance_weighted`` is
    ``1 − Σ_j SSE_j / Σ_j SST_j`` (= the SST-weighted mean of ``R²_j``). There is no fitting: a
    prediction worse than the target mean gets a negative R². This is the R² of the library.

    Zero-variance target dims: dim ``j`` is treated as constant when
    ``sqrt(SST_j / n) <= 64 · eps(dtype) · max_i |y_ij|`` (exactly constant columns up to
    rounding). Its ``per_dim`` entry is NaN, it is excluded from both averages, and
    ``n_constant`` counts such dims. If every dim is constant both averages are NaN.

    Args:
        y_true: ``[n]`` or ``[n, d]`` target, ``n >= 2``.
        y_pred: same shape as ``y_true``.

    Returns:
        :class:`R2Score` ``(uniform, variance_weighted, per_dim [d], n_constant)``.

    Example:
        >>> r = r2_score(y, y_hat)
        >>> float(r.uniform), float(r.variance_weighted)

    References:
        Same definitions as ``sklearn.metrics.r2_score`` with ``multioutput`` set to
        ``"uniform_average"`` / ``"variance_weighted"`` (constant dims handled as above).
    """
    y_true = as_float_array("y_true", y_true, ndim=(1, 2))
    y_pred = as_float_array("y_pred", y_pred, ndim=(1, 2))
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"`y_pred` must have the same shape as `y_true`: got y_true.shape={y_true.shape} "
            f"and y_pred.shape={y_pred.shape}"
        )
    if y_true.shape[0] < 2:
        raise ValueError(f"`y_true` needs at least 2 rows, got shape {y_true.shape}")
    check_finite("y_true", y_true)
    check_finite("y_pred", y_pred)
    dtype = jnp.result_type(y_true.dtype, y_pred.dtype)
    n = y_true.shape[0]
    return _r2_impl(y_true.astype(dtype).reshape(n, -1), y_pred.astype(dtype).reshape(n, -1))


@jax.jit
def _r2_impl(yt: jax.Array, yp: jax.Array) -> R2Score:
    n, dtype = yt.shape[0], yt.dtype
    sst = jnp.sum((yt - jnp.mean(yt, axis=0)) ** 2, axis=0)
    sse = jnp.sum((yt - yp) ** 2, axis=0)
    scale = jnp.max(jnp.abs(yt), axis=0)
    tol = 64.0 * jnp.finfo(dtype).eps * scale
    constant = sst <= n * tol * tol
    safe_sst = jnp.where(constant, 1.0, sst)
    per_dim = jnp.where(constant, jnp.nan, 1.0 - sse / safe_sst)
    n_ok = jnp.sum(~constant)
    uniform = jnp.sum(jnp.where(constant, 0.0, per_dim)) / n_ok
    vw = 1.0 - jnp.sum(jnp.where(constant, 0.0, sse)) / jnp.sum(jnp.where(constant, 0.0, sst))
    return R2Score(uniform, vw, per_dim, jnp.sum(constant))


# --------------------------------------------------------------------------- linear CKA


def linear_cka(X: ArrayLike, Y: ArrayLike) -> jax.Array:
    """Linear CKA (biased HSIC) computed in feature space.

    With ``X_c``, ``Y_c`` the column-centred inputs::

        CKA = ‖Y_cᵀ X_c‖²_F / (‖X_cᵀ X_c‖_F · ‖Y_cᵀ Y_c‖_F)

    which equals ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` for the linear Gram matrices
    ``K = X Xᵀ``, ``L = Y Yᵀ`` and the biased HSIC ``tr(K H L H)`` (Kornblith et al. 2019,
    Eq. 5 and Sec. 3). No ``n x n`` Gram is formed: cost ``O(n (d_x + d_y)²)`` time and
    ``O((d_x + d_y)²)`` extra memory, also when ``d > n``. Invariant to orthogonal transforms
    and isotropic scaling of either input. NaN if either input is constant.

    Args:
        X: ``[n, d_x]``.
        Y: ``[n, d_y]``.

    Returns:
        ``[]`` linear CKA in ``[0, 1]``.

    Example:
        >>> linear_cka(X, X @ Q)  # Q orthogonal -> 1.0

    References:
        Kornblith et al. (2019), ICML.
    """
    X, Y = _pair(X, Y)
    return _linear_cka_impl(X, Y)


@jax.jit
def _linear_cka_impl(X: jax.Array, Y: jax.Array) -> jax.Array:
    Xc, Yc = _center(X), _center(Y)
    num = _sq_frob(Yc.T @ Xc)
    den = jnp.sqrt(_sq_frob(Xc.T @ Xc)) * jnp.sqrt(_sq_frob(Yc.T @ Yc))
    return num / den


def _hsic_u_terms(A: jax.Array, B: jax.Array) -> jax.Array:
    """Unbiased HSIC (Song et al. 2012, Eq. 5) of linear kernels ``A Aᵀ`` and ``B Bᵀ``."""
    n = A.shape[0]
    da = jnp.sum(A * A, axis=1)  # diag of K
    db = jnp.sum(B * B, axis=1)
    sa = jnp.sum(A, axis=0)  # Aᵀ1
    sb = jnp.sum(B, axis=0)
    tr_kl = _sq_frob(A.T @ B) - jnp.dot(da, db)  # tr(K̃ L̃)
    sum_k = jnp.dot(sa, sa) - jnp.sum(da)  # 1ᵀ K̃ 1
    sum_l = jnp.dot(sb, sb) - jnp.sum(db)
    k1 = A @ sa - da  # K̃ 1
    l1 = B @ sb - db
    val = tr_kl + sum_k * sum_l / ((n - 1.0) * (n - 2.0)) - 2.0 * jnp.dot(k1, l1) / (n - 2.0)
    return val / (n * (n - 3.0))


def debiased_linear_cka(X: ArrayLike, Y: ArrayLike) -> jax.Array:
    """Debiased linear CKA from the unbiased HSIC estimator, Gram-free.

    With ``K = X Xᵀ``, ``L = Y Yᵀ`` and ``K̃``, ``L̃`` the same matrices with zero diagonal,
    the unbiased HSIC of Song et al. (2012, Eq. 5) is::

        HSIC_u(K, L) = [tr(K̃ L̃) + (1ᵀK̃1)(1ᵀL̃1) / ((n−1)(n−2)) − 2/(n−2) · 1ᵀK̃L̃1] / (n(n−3))

    and ``CKA_u = HSIC_u(K, L) / sqrt(HSIC_u(K, K) · HSIC_u(L, L))``. Each term is evaluated in
    feature space with ``k_i = ‖x_i‖²`` (the diagonal of ``K``):
    ``tr(K̃ L̃) = ‖XᵀY‖²_F − Σ_i k_i l_i``, ``1ᵀK̃1 = ‖Xᵀ1‖² − Σ_i k_i``,
    ``K̃1 = X(Xᵀ1) − k``, ``1ᵀK̃L̃1 = (K̃1)ᵀ(L̃1)``. Inputs are column-centred first (the
    estimator is invariant to centring; centring improves float32 accuracy). Cost
    ``O(n (d_x + d_y)²)``; no ``n x n`` matrix. The value can be slightly negative for
    unrelated inputs; its expectation under independence is about 0 (the biased
    :func:`linear_cka` is positively biased at small ``n``).

    Args:
        X: ``[n, d_x]`` with ``n >= 4``.
        Y: ``[n, d_y]``.

    Returns:
        ``[]`` debiased linear CKA.

    Raises:
        ValueError: if ``n < 4`` (naming ``X``), mismatched rows, non-float or non-finite input.

    Example:
        >>> debiased_linear_cka(X, Y)

    References:
        Song et al. (2012), JMLR 13, Eq. 5; Kornblith et al. (2019), Sec. 3 and App.
    """
    X, Y = _pair(X, Y, min_rows=4)
    return _debiased_impl(X, Y)


@jax.jit
def _debiased_impl(X: jax.Array, Y: jax.Array) -> jax.Array:
    Xc, Yc = _center(X), _center(Y)
    hxy = _hsic_u_terms(Xc, Yc)
    hxx = _hsic_u_terms(Xc, Xc)
    hyy = _hsic_u_terms(Yc, Yc)
    return hxy / jnp.sqrt(hxx * hyy)


# --------------------------------------------------------------------------- RBF CKA


def _median_sample_idx(n: int, m: int) -> np.ndarray:
    return (np.arange(m) * n) // m


def _sq_dists(A: jax.Array, B: jax.Array, na: jax.Array, nb: jax.Array) -> jax.Array:
    return jnp.maximum(na[:, None] + nb[None, :] - 2.0 * (A @ B.T), 0.0)


def _median_distance(A: jax.Array, m: int) -> jax.Array:
    n = A.shape[0]
    S = A[_median_sample_idx(n, m)]
    sq = jnp.sum(S * S, axis=1)
    d2 = _sq_dists(S, S, sq, sq)
    iu = np.triu_indices(m, 1)
    return jnp.median(jnp.sqrt(d2[iu]))


def rbf_cka(
    X: ArrayLike,
    Y: ArrayLike,
    *,
    sigma_factor: ArrayLike = 1.0,
    block_size: int = _DEFAULT_BLOCK,
    median_sample: int = _MEDIAN_SAMPLE,
) -> jax.Array:
    """CKA with Gaussian (RBF) kernels and median-distance bandwidths, computed blockwise.

    Kernel ``K_ij = exp(−‖x_i − x_j‖² / (2 σ_X²))`` with ``σ_X = sigma_factor · m_X`` where
    ``m_X`` is the median Euclidean distance between distinct items (Kornblith et al. 2019
    convention: bandwidth = factor × median distance; the paper reports factors 0.2, 0.4,
    0.8; their code's default is 1.0, the default here). Same for ``Y``. CKA is the biased
    HSIC ratio ``⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F)`` with ``H = I − 11ᵀ/n``.

    Median: over all pairs ``i < j`` of a deterministic subsample of
    ``m = min(n, median_sample)`` rows, the evenly spaced rows ``floor(t · n / m)``,
    ``t = 0..m−1`` (so for ``n <= median_sample`` it is the exact median over all distinct
    pairs; ``jnp.median`` averages the two middle values for an even count). Note that the
    reference code of Kornblith et al. takes the median over the full ``n x n`` matrix
    including the zero diagonal, which gives a slightly smaller bandwidth.

    Computation: squared distances ``‖x_i‖² + ‖x_j‖² − 2 x_iᵀx_j`` of the column-centred
    inputs (clipped at 0); two passes over blocks of ``block_size`` rows against all ``n``
    items (row means of ``K`` and ``L``, then the centred sums), so peak memory is
    ``O(block_size · n)`` and time ``O(n² (d_x + d_y))``. NaN if a median distance is 0.

    Args:
        X: ``[n, d_x]``, ``n >= 2``.
        Y: ``[n, d_y]``.
        sigma_factor: bandwidth as a multiple of the median distance (> 0; may be traced).
        block_size: rows per block (static).
        median_sample: rows used to estimate the median (static).

    Returns:
        ``[]`` RBF CKA in ``[0, 1]``.

    Example:
        >>> rbf_cka(X, Y, sigma_factor=0.8)

    References:
        Kornblith et al. (2019), ICML, Sec. 3 ("RBF CKA").
    """
    X, Y = _pair(X, Y)
    block_size = _check_block_size(block_size)
    median_sample = check_positive_int("median_sample", median_sample, minimum=2)
    check_in_range("sigma_factor", sigma_factor, 0.0, np.inf, lo_open=True)
    return _rbf_cka_impl(X, Y, sigma_factor, block_size, min(X.shape[0], median_sample))


@functools.partial(jax.jit, static_argnums=(3, 4))
def _rbf_cka_impl(X, Y, sigma_factor, block_size: int, m: int) -> jax.Array:
    n = X.shape[0]
    X, Y = _center(X), _center(Y)  # distances are translation-invariant; less cancellation
    gx = 1.0 / (2.0 * (sigma_factor * _median_distance(X, m)) ** 2)
    gy = 1.0 / (2.0 * (sigma_factor * _median_distance(Y, m)) ** 2)
    sqx = jnp.sum(X * X, axis=1)
    sqy = jnp.sum(Y * Y, axis=1)
    b, nb = _block_layout(n, block_size)
    total = b * nb
    Xb = _pad_rows(X, total).reshape(nb, b, -1)
    Yb = _pad_rows(Y, total).reshape(nb, b, -1)
    sqxb = jnp.pad(sqx, (0, total - n)).reshape(nb, b)
    sqyb = jnp.pad(sqy, (0, total - n)).reshape(nb, b)
    valid = (jnp.arange(total) < n).reshape(nb, b)

    def kernels(xb, yb, sxb, syb):
        K = jnp.exp(-gx * _sq_dists(xb, X, sxb, sqx))
        L = jnp.exp(-gy * _sq_dists(yb, Y, syb, sqy))
        return K, L

    def row_means(args):
        xb, yb, sxb, syb = args
        K, L = kernels(xb, yb, sxb, syb)
        return jnp.mean(K, axis=1), jnp.mean(L, axis=1)

    rk, rl = lax.map(row_means, (Xb, Yb, sqxb, sqyb))
    rk, rl = rk.reshape(-1)[:n], rl.reshape(-1)[:n]
    grand_k, grand_l = jnp.mean(rk), jnp.mean(rl)
    rkb = jnp.pad(rk, (0, total - n)).reshape(nb, b)
    rlb = jnp.pad(rl, (0, total - n)).reshape(nb, b)

    def centred_sums(args):
        xb, yb, sxb, syb, rkb_, rlb_, vb = args
        K, L = kernels(xb, yb, sxb, syb)
        Kc = K - rkb_[:, None] - rk[None, :] + grand_k
        Lc = L - rlb_[:, None] - rl[None, :] + grand_l
        w = vb[:, None].astype(K.dtype)
        return jnp.stack([jnp.sum(w * Kc * Lc), jnp.sum(w * Kc * Kc), jnp.sum(w * Lc * Lc)])

    sums = jnp.sum(lax.map(centred_sums, (Xb, Yb, sqxb, sqyb, rkb, rlb, valid)), axis=0)
    return sums[0] / (jnp.sqrt(sums[1]) * jnp.sqrt(sums[2]))


# --------------------------------------------------------------------------- kNN


def _knn_blocked(Zx: jax.Array, Zy: jax.Array, k: int, block_size: int):
    """Top-k cosine neighbours (self excluded) of every row, for both views, blockwise.

    ``Zx``, ``Zy`` have unit-norm rows. Returns ``(vx, ix, vy, iy)``, each ``[n, k]``: the
    similarities (descending) and neighbour indices. Ties break to the lower item index.
    """
    n = Zx.shape[0]
    b, nb = _block_layout(n, block_size)
    total = b * nb
    Zxb = _pad_rows(Zx, total).reshape(nb, b, -1)
    Zyb = _pad_rows(Zy, total).reshape(nb, b, -1)
    rows = jnp.arange(total).reshape(nb, b)
    cols = jnp.arange(n)

    def one_block(args):
        xb, yb, r = args
        self_mask = r[:, None] == cols[None, :]
        Sx = jnp.where(self_mask, -jnp.inf, xb @ Zx.T)
        Sy = jnp.where(self_mask, -jnp.inf, yb @ Zy.T)
        vx, ix = lax.top_k(Sx, k)
        vy, iy = lax.top_k(Sy, k)
        return vx, ix, vy, iy

    out = lax.map(one_block, (Zxb, Zyb, rows))
    return tuple(o.reshape(total, k)[:n] for o in out)


def _check_k(k, n: int, name: str = "k", minimum: int = 1) -> int:
    k = check_positive_int(name, k, minimum=minimum)
    if k >= n:
        raise ValueError(f"`{name}` must be < n = {n} (number of items; self is excluded), got {k}")
    return k


def mutual_knn(
    X: ArrayLike, Y: ArrayLike, *, k: int, block_size: int = _DEFAULT_BLOCK
) -> MutualKNN:
    """Mutual k-nearest-neighbour agreement with cosine neighbours, blockwise.

    ``N_X(i)`` is the set of the ``k`` items ``j ≠ i`` with the largest cosine similarity
    ``x_iᵀx_j / (‖x_i‖ ‖x_j‖)`` (self excluded), likewise ``N_Y(i)``::

        score = (1/n) Σ_i |N_X(i) ∩ N_Y(i)| / k,      chance = k / (n − 1)

    ``chance`` is the expected score when the two neighbour sets are independent and
    uniform. Ties in similarity break to the lower item index (``lax.top_k`` order), so
    results are deterministic; exact duplicates of an item are ordinary neighbours. Rows of
    zero norm have similarity 0 to every item. This is the ``mutual_knn`` of Huh et al.
    (2024) on L2-normalised features (their outlier clipping is not applied).

    Computation: blocks of ``block_size`` rows are scored against all ``n`` items and
    reduced with ``lax.top_k``; peak memory ``O(block_size · n)``, time ``O(n² (d_x + d_y))``.

    Args:
        X: ``[n, d_x]``.
        Y: ``[n, d_y]``.
        k: neighbours per item, ``1 <= k < n`` (static).
        block_size: rows per block (static).

    Returns:
        :class:`MutualKNN` ``(score, chance, per_item [n])``.

    Raises:
        ValueError: ``k >= n``, mismatched rows, non-float or non-finite input, or a
            collapsed view (all rows zero or of one direction: neighbours undefined).

    Example:
        >>> res = mutual_knn(X, Y, k=10)
        >>> float(res.score), float(res.chance)

    References:
        Huh et al. (2024), The Platonic Representation Hypothesis, Sec. 2 ("mutual nearest
        neighbours").
    """
    X, Y = _pair(X, Y)
    n = X.shape[0]
    k = _check_k(k, n)
    block_size = _check_block_size(block_size)
    _check_not_collapsed("X", X)
    _check_not_collapsed("Y", Y)
    return _mutual_knn_impl(X, Y, k, block_size)


def _check_not_collapsed(name: str, A) -> None:
    """Refuse a view whose nonzero rows all point one way (or that is all zero).

    Every cosine similarity then ties, neighbours come from the tie-break alone and two
    such views would "agree" perfectly (score 1.0). Skipped under tracing.
    """
    if isinstance(A, jax.core.Tracer):
        return
    a = np.asarray(A, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1)
    nz = norms > 0
    if nz.sum() >= 2:
        u = a[nz] / norms[nz, None]
        if np.abs(u - u[0]).max() > 1e-6:
            return
    raise ValueError(
        f"`{name}` is collapsed: its {int(nz.sum())} nonzero rows (of {a.shape[0]}) all "
        f"point in one direction, so every cosine similarity ties and nearest neighbours "
        f"are undefined"
    )


@functools.partial(jax.jit, static_argnums=(2, 3))
def _mutual_knn_impl(X, Y, k: int, block_size: int) -> MutualKNN:
    n = X.shape[0]
    _, ix, _, iy = _knn_blocked(_normalize_rows(X), _normalize_rows(Y), k, block_size)
    overlap = jnp.sum(ix[:, :, None] == iy[:, None, :], axis=(1, 2))
    per_item = overlap.astype(X.dtype) / k
    return MutualKNN(jnp.mean(per_item), jnp.asarray(k / (n - 1), X.dtype), per_item)


def _sparse_hsic_u(n, idx, a_val, b_val, a_t_val_mask, b_rowvals) -> jax.Array:
    """Unbiased HSIC (Song Eq. 5, zero diagonal) of two sparse row-wise matrices A, B.

    ``A_ij = a_val[i, t]`` for ``j = idx[i, t]`` (0 elsewhere); ``B`` has the same pattern
    with values ``b_val``. ``a_t_val_mask[i, t] · a_val[i, t] · b_val[i, t]`` gives the
    product ``A_ij B_ji`` (``b_val`` holds ``L_ij = L_ji`` and the mask says whether
    ``B_ji`` is nonzero). ``b_rowvals`` are the values of ``B`` summed per row.
    """
    tr = jnp.sum(a_t_val_mask * a_val * b_val)
    sum_a = jnp.sum(a_val)
    sum_b = jnp.sum(b_rowvals)
    col_a = jax.ops.segment_sum(a_val.reshape(-1), idx.reshape(-1), num_segments=n)
    row_b = jnp.sum(b_rowvals, axis=1)
    aab = jnp.dot(col_a, row_b)
    val = tr + sum_a * sum_b / ((n - 1.0) * (n - 2.0)) - 2.0 * aab / (n - 2.0)
    return val / (n * (n - 3.0))


def _contains(table: jax.Array, idx: jax.Array, target: jax.Array) -> jax.Array:
    """``[n, k]`` bool: is ``target[i]`` among ``table[idx[i, t], :]``?"""
    return jnp.any(table[idx] == target[:, None, None], axis=-1)


def cknna(X: ArrayLike, Y: ArrayLike, *, k: int, block_size: int = _DEFAULT_BLOCK) -> jax.Array:
    """CKNNA: CKA restricted to mutual nearest-neighbour pairs (Huh et al. 2024), Gram-free.

    Variant: the reference ``cknna(..., distance_agnostic=False, unbiased=True)`` of the
    platonic-rep code, applied to L2-normalised rows, without its ``1e-6`` in the
    denominator. With cosine kernels ``K_ij = x̂_iᵀx̂_j``, ``L_ij = ŷ_iᵀŷ_j``, the row-wise
    kNN masks ``(M_K)_ij = 1[j ∈ N_X(i)]``, ``(M_L)_ij = 1[j ∈ N_Y(i)]`` (self excluded,
    as in :func:`mutual_knn`) and ``M = M_K ∘ M_L``::

        CKNNA = HSIC_u(M∘K, M∘L) / sqrt(HSIC_u(M_K∘K, M_K∘K) · HSIC_u(M_L∘L, M_L∘L))

    where ``HSIC_u`` is Song et al.'s Eq. 5 applied literally to these (non-symmetric)
    matrices, i.e. with ``tr(K̃L̃) = Σ_ij A_ij B_ji``. Only the ``n·k`` nonzeros are used:
    ``tr(AB)`` needs, for ``j ∈ N(i)``, whether ``i`` is in the neighbour list of ``j``;
    ``1ᵀAB1 = (Aᵀ1)ᵀ(B1)`` uses a segment sum. Memory ``O(block_size · n + n k²)``.
    NaN if a denominator HSIC is not positive (possible: masked kernels are not PSD).

    Args:
        X: ``[n, d_x]``, ``n >= 4``.
        Y: ``[n, d_y]``.
        k: neighbours per item, ``2 <= k < n`` (static).
        block_size: rows per block for the neighbour search (static).

    Returns:
        ``[]`` CKNNA.

    Example:
        >>> cknna(X, Y, k=10)

    References:
        Huh et al. (2024), The Platonic Representation Hypothesis, App. A (CKNNA);
        Song et al. (2012), Eq. 5.
    """
    X, Y = _pair(X, Y, min_rows=4)
    n = X.shape[0]
    k = _check_k(k, n, minimum=2)
    block_size = _check_block_size(block_size)
    return _cknna_impl(X, Y, k, block_size)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _cknna_impl(X, Y, k: int, block_size: int) -> jax.Array:
    n = X.shape[0]
    vx, ix, vy, iy = _knn_blocked(_normalize_rows(X), _normalize_rows(Y), k, block_size)
    me = jnp.arange(n)
    match = ix[:, :, None] == iy[:, None, :]  # [n, k, k]: ix[i,a] == iy[i,b]
    mutual = jnp.any(match, axis=2).astype(X.dtype)  # j = ix[i,a] in N_Y(i)
    l_at_x = jnp.sum(jnp.where(match, vy[:, None, :], 0.0), axis=2)  # L_ij for j = ix[i,a]
    back_x = _contains(ix, ix, me)  # i in N_X(j), j = ix[i,a]
    back_y = _contains(iy, ix, me)  # i in N_Y(j)
    a_kl = mutual * vx
    b_kl = mutual * l_at_x
    kl = _sparse_hsic_u(n, ix, a_kl, b_kl, (back_x & back_y).astype(X.dtype), b_kl)
    kk = _sparse_hsic_u(n, ix, vx, vx, back_x.astype(X.dtype), vx)
    back_yy = _contains(iy, iy, me).astype(X.dtype)
    ll = _sparse_hsic_u(n, iy, vy, vy, back_yy, vy)
    return kl / jnp.sqrt(kk * ll)


# --------------------------------------------------------------------------- shape metrics


def _partial_whiten(A: jax.Array, alpha) -> jax.Array:
    """``A (α I + (1 − α) (AᵀA)^{-1/2})`` with near-null eigen-directions left unwhitened."""
    lam, V = jnp.linalg.eigh(A.T @ A)
    tol = A.shape[1] * jnp.finfo(A.dtype).eps * jnp.max(lam)
    inv_sqrt = jnp.where(lam > tol, 1.0 / jnp.sqrt(jnp.where(lam > tol, lam, 1.0)), 0.0)
    Z = (V * (alpha + (1.0 - alpha) * inv_sqrt)[None, :]) @ V.T
    return A @ Z


def procrustes_distance(X: ArrayLike, Y: ArrayLike, *, alpha: ArrayLike = 1.0) -> jax.Array:
    """Angular shape distance with partial whitening (Williams et al. 2021).

    Each input is centred and scaled to unit Frobenius norm, ``X̂ = X_c / ‖X_c‖_F``, then
    partially whitened::

        φ_α(X) = X̂ (α I + (1 − α) (X̂ᵀX̂)^{−1/2}),
        θ(X, Y) = arccos( ‖φ_α(X)ᵀ φ_α(Y)‖_* / (‖φ_α(X)‖_F ‖φ_α(Y)‖_F) )

    (``‖·‖_*`` nuclear norm = max over orthogonal ``Q`` of ``⟨φ(X), φ(Y) Q⟩``).
    ``alpha = 1`` is the Procrustes angle (rotation-invariant), ``alpha = 0`` is the CCA
    angle (invariant to invertible linear maps); values between interpolate. Unlike the
    netrep code, the unit-norm scaling comes *before* whitening, so the metric is invariant
    to isotropic scaling for every ``alpha`` (for ``alpha ∈ {0, 1}`` both agree). Eigenvalues of
    ``X̂ᵀX̂`` below ``d · eps · λ_max`` are treated as null (not whitened).

    Different widths: ``d_x ≠ d_y`` is handled as if the narrower input were zero-padded to
    the wider width; the nuclear norm of the rectangular ``[d_x, d_y]`` product is identical,
    so no padding is materialised. Result in radians, ``[0, π/2]``; it is a metric. In
    float32 the resolution near 0 is about ``sqrt(2 eps) ≈ 5e-4`` rad.

    Args:
        X: ``[n, d_x]``.
        Y: ``[n, d_y]``.
        alpha: whitening parameter in ``[0, 1]`` (may be traced).

    Returns:
        ``[]`` angular distance in radians.

    Example:
        >>> procrustes_distance(X, 3.0 * X @ Q)  # ~0

    References:
        Williams et al. (2021), NeurIPS, Sec. 3 (Eqs. for partial whitening and the angular
        metric).
    """
    X, Y = _pair(X, Y)
    check_in_range("alpha", alpha, 0.0, 1.0)
    return _procrustes_impl(X, Y, alpha)


@jax.jit
def _procrustes_impl(X, Y, alpha) -> jax.Array:
    Xc, Yc = _center(X), _center(Y)
    Xc = Xc / jnp.sqrt(_sq_frob(Xc))
    Yc = Yc / jnp.sqrt(_sq_frob(Yc))
    px, py = _partial_whiten(Xc, alpha), _partial_whiten(Yc, alpha)
    nuc = jnp.sum(jnp.linalg.svd(px.T @ py, compute_uv=False))
    cos = nuc / (jnp.sqrt(_sq_frob(px)) * jnp.sqrt(_sq_frob(py)))
    return jnp.arccos(jnp.clip(cos, -1.0, 1.0))


def svcca(X: ArrayLike, Y: ArrayLike, *, dims: int) -> SVCCAResult:
    """SVCCA: mean canonical correlation between the top principal subspaces.

    Both inputs are column-centred (no per-feature standardisation). From the thin SVD
    ``X_c = U S Vᵀ`` keep the top ``dims`` left singular vectors ``U_x`` (the whitened top-PC
    scores), likewise ``U_y``. The canonical correlations of the two reduced views are the
    singular values ``ρ_1 ≥ … ≥ ρ_dims`` of ``U_xᵀ U_y`` and::

        SVCCA = (1/dims) Σ_r ρ_r

    This fixes the number of kept directions (Raghu et al. keep enough for 99% of the
    variance; choose ``dims`` accordingly). Cost ``O(n (d_x² + d_y²))``.

    Args:
        X: ``[n, d_x]``.
        Y: ``[n, d_y]``.
        dims: directions kept per view, ``1 <= dims <= min(d_x, d_y, n − 1)`` (static).

    Returns:
        :class:`SVCCAResult` ``(score, correlations [dims])``.

    Example:
        >>> svcca(X, Y, dims=10).score

    References:
        Raghu et al. (2017), NeurIPS, Sec. 2.
    """
    X, Y = _pair(X, Y)
    n = X.shape[0]
    dims = check_positive_int("dims", dims, maximum=min(X.shape[1], Y.shape[1], n - 1))
    return _svcca_impl(X, Y, dims)


@functools.partial(jax.jit, static_argnums=(2,))
def _svcca_impl(X, Y, dims: int) -> SVCCAResult:
    Ux = jnp.linalg.svd(_center(X), full_matrices=False)[0][:, :dims]
    Uy = jnp.linalg.svd(_center(Y), full_matrices=False)[0][:, :dims]
    rho = jnp.clip(jnp.linalg.svd(Ux.T @ Uy, compute_uv=False), 0.0, 1.0)
    return SVCCAResult(jnp.mean(rho), rho)


def _basis(A: jax.Array, r: int) -> jax.Array:
    return jnp.linalg.svd(A, full_matrices=False)[0][:, :r]


def principal_angles(
    X: ArrayLike, Y: ArrayLike, *, rank: int | None = None, center: bool = False
) -> jax.Array:
    """Principal angles between the column spaces of ``X`` and ``Y`` (subspaces of ``R^n``).

    Orthonormal bases ``Q_x``, ``Q_y`` are the leading left singular vectors: all
    ``min(n, d)`` of them when ``rank`` is None (assumes full column rank), or the top
    ``rank`` of each (the top-``rank`` principal subspaces) otherwise. With ``Q_x`` the wider
    basis, ``cos θ_r`` are the singular values of ``Q_xᵀQ_y`` and ``sin θ_r`` those of
    ``Q_y − Q_x Q_xᵀ Q_y``; as in Björck & Golub (1973) and ``scipy.linalg.subspace_angles``,
    angles with ``cos² θ ≥ 1/2`` are taken from the sines (accurate for small angles).
    With ``center=True`` columns are centred first, and ``cos θ_r`` are then the canonical
    correlations of ``X`` and ``Y``.

    Args:
        X: ``[n, d_x]``.
        Y: ``[n, d_y]``.
        rank: subspace dimension used for both inputs (static), ``<= min(n, d_x, d_y)``.
        center: centre columns first (static).

    Returns:
        ``[min(r_x, r_y)]`` angles in radians, ascending (scipy returns them descending).

    Example:
        >>> principal_angles(X, Y, rank=5)

    References:
        Björck & Golub (1973), Math. Comp. 27.
    """
    X, Y = _pair(X, Y, min_rows=1)
    n = X.shape[0]
    if rank is None:
        rx, ry = min(n, X.shape[1]), min(n, Y.shape[1])
    else:
        rank = check_positive_int("rank", rank, maximum=min(n, X.shape[1], Y.shape[1]))
        rx = ry = rank
    return _angles_impl(X, Y, rx, ry, bool(center))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _angles_impl(X, Y, rx: int, ry: int, center: bool) -> jax.Array:
    if center:
        X, Y = _center(X), _center(Y)
    Qx, Qy = _basis(X, rx), _basis(Y, ry)
    if rx < ry:
        Qx, Qy = Qy, Qx
    C = Qx.T @ Qy
    cos = jnp.linalg.svd(C, compute_uv=False)  # descending
    sin = jnp.linalg.svd(Qy - Qx @ C, compute_uv=False)[::-1]  # ascending
    small = cos * cos >= 0.5
    return jnp.where(small, jnp.arcsin(jnp.clip(sin, 0.0, 1.0)), jnp.arccos(jnp.clip(cos, 0, 1)))


# --------------------------------------------------------------------------- attribution


def variance_share(part: ArrayLike, pred: ArrayLike) -> jax.Array:
    """Share of a target part's variance that a prediction carries (additive attribution).

    For a target decomposed as ``y = Σ_P P`` (e.g. shared, private and noise parts), with
    column-centred ``P_c`` and ``ŷ_c``::

        share(P) = <P_c, ŷ_c>_F / ||P_c||²_F

    The shares are additive: ``Σ_P ||P_c||² share(P) = <y_c, ŷ_c>``, which for a
    least-squares fit on the same rows equals ``||ŷ_c||²`` (so the parts' contributions
    add up to the explained variance). Unlike :func:`recovery_attribution`'s read-out
    fraction, it needs no second fit and is unbiased: for a part independent of the
    prediction its expectation is 0 (it can be negative in finite samples).

    Args:
        part: ``[n, d]`` one part of the target.
        pred: ``[n, d]`` prediction of the whole target.

    Returns:
        ``[]`` the share; NaN if ``part`` has zero variance.

    Example:
        >>> variance_share(y_shared, y_hat), variance_share(y_private, y_hat)  # doctest: +SKIP
    """
    part = check_matrix("part", part)
    pred = check_matrix("pred", pred)
    if part.shape != pred.shape:
        raise ValueError(
            f"`part` and `pred` must have the same shape: got {part.shape} and {pred.shape}"
        )
    pc, yc = _center(part), _center(pred)
    denom = _sq_frob(pc)
    return jnp.where(denom > 0, jnp.sum(pc * yc) / jnp.where(denom > 0, denom, 1.0), jnp.nan)


def _explained_fraction(Uk: jax.Array, P: jax.Array) -> jax.Array:
    Pc = _center(P)
    return _sq_frob(Uk.T @ Pc) / _sq_frob(Pc)


def recovery_attribution(
    pred: ArrayLike, shared_part: ArrayLike, private_part: ArrayLike
) -> RecoveryAttribution:
    """Share of each ground-truth part of the target that a prediction recovers.

    The target is ``y = y_shared + y_private (+ noise)`` with known parts, all ``[n, d_y]``.
    Two definitions are returned:

    * direct: ``shared_r2 = r2_score(shared_part, pred).uniform`` and likewise
      ``private_r2``, the "R² of the shared-driven / private-driven part" (the prediction
      is scored as is against each part; a prediction of the full target is penalised for
      carrying the other part).
    * read-out: with ``Π`` the orthogonal projector onto the column span of the centred
      prediction (numerical rank from the SVD, tolerance ``max(n, d) · eps · s_max``)::

          explained(P) = ‖Π P_c‖²_F / ‖P_c‖²_F

      the variance-weighted in-sample R² of the best linear read-out (OLS with intercept)
      of part ``P`` from ``pred``; in ``[0, 1]``. It is biased upward by about
      ``rank(pred) / n`` for a part unrelated to the prediction (in-sample fit).

    NaN for a part with zero variance. The direct R² values need ``pred`` to have the
    target's shape; when ``d_pred ≠ d_y`` they are NaN and only the read-out fractions are
    defined.

    Args:
        pred: ``[n, d_pred]`` prediction (``d_pred`` may differ from ``d_y``).
        shared_part: ``[n, d_y]`` shared-driven part of the target.
        private_part: ``[n, d_y]`` private-driven part of the target.

    Returns:
        :class:`RecoveryAttribution`.

    Example:
        >>> att = recovery_attribution(y_hat, y_shared, y_private)
        >>> float(att.shared_explained), float(att.private_explained)
    """
    pred = check_matrix("pred", pred)
    shared_part = check_matrix("shared_part", shared_part)
    private_part = check_matrix("private_part", private_part)
    check_same_rows("pred", pred, "shared_part", shared_part)
    if shared_part.shape != private_part.shape:
        raise ValueError(
            "`private_part` must have the same shape as `shared_part`: got "
            f"{private_part.shape} and {shared_part.shape}"
        )
    direct_ok = pred.shape == shared_part.shape
    dtype = jnp.result_type(pred.dtype, shared_part.dtype, private_part.dtype)
    pred, shared_part, private_part = (a.astype(dtype) for a in (pred, shared_part, private_part))
    return _attribution_impl(pred, shared_part, private_part, direct_ok)


@functools.partial(jax.jit, static_argnums=(3,))
def _attribution_impl(pred, shared_part, private_part, direct_ok: bool) -> RecoveryAttribution:
    dtype = pred.dtype
    U, s, _ = jnp.linalg.svd(_center(pred), full_matrices=False)
    tol = max(pred.shape) * jnp.finfo(dtype).eps * s[0]
    Uk = U * (s > tol)[None, :].astype(dtype)
    if direct_ok:
        sr2 = _r2_impl(shared_part, pred).uniform
        pr2 = _r2_impl(private_part, pred).uniform
    else:
        sr2 = pr2 = jnp.asarray(jnp.nan, dtype)
    return RecoveryAttribution(
        sr2, pr2, _explained_fraction(Uk, shared_part), _explained_fraction(Uk, private_part)
    )


def geometry_recovery(
    pred: ArrayLike, target: ArrayLike, *, k: int = 10, block_size: int = _DEFAULT_BLOCK
) -> GeometryRecovery:
    """Linear CKA, debiased CKA and mutual kNN@k of a prediction against a target.

    Convenience wrapper: ``linear_cka(pred, target)``, ``debiased_linear_cka(pred, target)``,
    ``mutual_knn(pred, target, k=k)`` and its chance level ``k / (n − 1)``.

    Args:
        pred: ``[n, d_pred]``, ``n >= 4``.
        target: ``[n, d_y]``.
        k: neighbours for mutual kNN (static), ``k < n``.
        block_size: rows per block for the neighbour search (static).

    Returns:
        :class:`GeometryRecovery`.

    Example:
        >>> g = geometry_recovery(y_hat, y, k=10)
        >>> float(g.mutual_knn) / float(g.mutual_knn_chance)
    """
    pred, target = _pair(pred, target, names=("pred", "target"), min_rows=4)
    knn = mutual_knn(pred, target, k=k, block_size=block_size)
    return GeometryRecovery(
        linear_cka(pred, target), debiased_linear_cka(pred, target), knn.score, knn.chance
    )


# --------------------------------------------------------------------------- uncertainty


def permutation_null(
    key: jax.Array,
    metric_fn: Callable[[jax.Array, jax.Array], jax.Array],
    X: ArrayLike,
    Y: ArrayLike,
    *,
    n_permutations: int,
    batch_size: int | None = None,
) -> PermutationTest:
    """Permutation null distribution of ``metric_fn(X, Y)`` (rows of ``Y`` shuffled).

    ``null[p] = metric_fn(X, Y[π_p])`` for ``n_permutations`` uniform random permutations
    ``π_p`` (keys from ``jax.random.split(key, n_permutations)``), evaluated with
    ``lax.map(..., batch_size=batch_size)`` (``None``: one vmap over all permutations; set
    it to bound memory). One-sided p-value for "more similar than chance"::

        p = (1 + #{p : null[p] ≥ observed}) / (1 + n_permutations)

    (Phipson & Smyth 2010; never 0).

    Args:
        key: ``jax.random.key``.
        metric_fn: ``(X, Y) -> []`` scalar metric, e.g. ``functools.partial(mutual_knn...)``
            wrapped to return ``.score``.
        X: ``[n, d_x]``.
        Y: ``[n, d_y]``.
        n_permutations: number of permutations (static).
        batch_size: permutations evaluated together (static); ``None`` = all.

    Returns:
        :class:`PermutationTest` ``(observed, null [n_permutations], p_value)``.

    Example:
        >>> permutation_null(key, linear_cka, X, Y, n_permutations=200).p_value
    """
    X, Y = _pair(X, Y)
    n_permutations = check_positive_int("n_permutations", n_permutations)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    _check_scalar_metric(metric_fn, X, Y)
    return _permutation_impl(key, X, Y, metric_fn, n_permutations, batch_size or n_permutations)


def _check_scalar_metric(metric_fn, X, Y) -> None:
    out = jax.eval_shape(metric_fn, X, Y)
    if getattr(out, "shape", None) != ():
        raise ValueError(
            f"`metric_fn` must return a scalar, got {getattr(out, 'shape', type(out).__name__)}"
        )


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _permutation_impl(key, X, Y, metric_fn, n_permutations: int, batch_size: int):
    n = X.shape[0]
    keys = jax.random.split(key, n_permutations)
    observed = jnp.asarray(metric_fn(X, Y))

    def one(k):
        return metric_fn(X, Y[jax.random.permutation(k, n)])

    null = lax.map(one, keys, batch_size=batch_size)
    p = (1.0 + jnp.sum(null >= observed)) / (1.0 + n_permutations)
    return PermutationTest(observed, null, p)


def bootstrap_interval(
    key: jax.Array,
    metric_fn: Callable[[jax.Array, jax.Array], jax.Array],
    X: ArrayLike,
    Y: ArrayLike,
    *,
    n_boot: int,
    level: float = 0.95,
    batch_size: int | None = None,
) -> BootstrapInterval:
    """Percentile bootstrap interval of ``metric_fn(X, Y)`` resampling items.

    Resample ``b`` draws ``n`` row indices uniformly with replacement (keys from
    ``jax.random.split(key, n_boot)``) and evaluates ``metric_fn(X[idx], Y[idx])`` (the same
    rows in both views). The interval is the ``(1 − level)/2`` and ``(1 + level)/2``
    quantiles of the samples (``jnp.quantile``, linear interpolation).

    Caution for metrics that exclude self-pairs (mutual kNN, CKNNA, debiased CKA):
    duplicated rows in a resample are distinct items at distance 0 of each other, so each
    duplicate is its copy's nearest neighbour in *both* views. This inflates mutual kNN
    (and changes the off-diagonal kernel terms of debiased CKA); the bootstrap distribution
    of such metrics is biased upward and should not be read as a confidence interval for
    the full-data value. Prefer :func:`permutation_null`, or repeat over seeds / disjoint
    item subsets for those metrics.

    Args:
        key: ``jax.random.key``.
        metric_fn: ``(X, Y) -> []`` scalar metric.
        X: ``[n, d_x]``.
        Y: ``[n, d_y]``.
        n_boot: number of resamples (static).
        level: coverage in ``(0, 1)``.
        batch_size: resamples evaluated together (static); ``None`` = all.

    Returns:
        :class:`BootstrapInterval` ``(estimate, lower, upper, samples [n_boot])``.

    Example:
        >>> bootstrap_interval(key, linear_cka, X, Y, n_boot=500, level=0.9)
    """
    X, Y = _pair(X, Y)
    n_boot = check_positive_int("n_boot", n_boot)
    check_in_range("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    _check_scalar_metric(metric_fn, X, Y)
    return _bootstrap_impl(key, X, Y, level, metric_fn, n_boot, batch_size or n_boot)


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _bootstrap_impl(key, X, Y, level, metric_fn, n_boot: int, batch_size: int):
    estimate = jnp.asarray(metric_fn(X, Y))
    samples = resample_map(
        key,
        lambda idx: metric_fn(X[idx], Y[idx]),
        X.shape[0],
        n_boot=n_boot,
        batch_size=batch_size,
    )
    q = jnp.quantile(samples, jnp.array([(1.0 - level) / 2.0, (1.0 + level) / 2.0]))
    return BootstrapInterval(estimate, q[0], q[1], samples)
