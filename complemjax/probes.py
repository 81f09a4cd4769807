"""Alignment probes: maps from the semantic view ``X [n, d_x]`` to the collaborative ``Y [n, d_y]``.

Three probe families share one interface:

* :class:`Ridge` -- closed-form ridge regression with an unpenalised intercept.
* :class:`ReducedRank` -- reduced-rank ridge regression (Mukherjee & Zhu, 2011), which for
  ``l2 = 0`` is the classical reduced-rank regression estimator (Izenman, 1975).
* :class:`MLP` -- a fully connected network trained with optax AdamW (full-batch or
  minibatch) inside one :func:`jax.lax.scan`.

A *spec* (frozen, hashable dataclass) fixes shapes and control flow and is a static
argument; :class:`ProbeHParams` (a pytree) holds the knobs that may vary inside a
``jax.vmap`` (``l2``, ``learning_rate``, ``weight_decay``)::

    spec = MLP(width=32, steps=300)
    params = fit(key, spec, x, y, ProbeHParams(learning_rate=1e-2))
    y_hat = predict(spec, params, x_test)

    # seeds x knobs, one program:
    keys = jax.random.split(key, 8)
    lrs = jnp.array([1e-3, 3e-3, 1e-2])
    f = lambda k, lr: fit(k, spec, x, y, ProbeHParams(learning_rate=lr))
    params = jax.vmap(jax.vmap(f, (None, 0)), (0, None))(keys, lrs)  # leaves [8, 3, ...]

:func:`fit_capacities` fits many capacities (MLP widths, ranks) times many seeds. Different
MLP widths have different shapes; they are handled by *fusing* (each seed trains all
widths of a group in one program, their first layers multiplied by ``x`` as one
matrix), by *bucketing* (one compiled program per width, vmapped over seeds) or by *padding*
(all widths of a group padded to the largest one, with hidden units beyond each width
masked out, in one compiled program). All three give every width its own fit: the initial
weights are drawn per entry from the entry's row and column, so the first ``w`` units of a
padded network start from the same values as a network of true width ``w``, masked units
have exactly zero activations, gradients, Adam moments and weights throughout training,
and a fused network's loss is the sum of its widths' losses, so each width gets its own
gradient. By default a group is fused when a fused fit fits in cache, else bucketed
(numbers in :func:`fit_capacities`). On CPU, the fits of one program run in
cache-sized vmapped chunks (``jax.lax.map(..., batch_size=...)``). All ranks of
:class:`ReducedRank` share one ridge fit and one eigendecomposition.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from complemjax._checks import (
    check_in_range,
    check_key,
    check_matrix,
    check_positive_int,
    check_same_rows,
)

__all__ = [
    "MLP",
    "CapacityFits",
    "FitInfo",
    "LinearParams",
    "MLPParams",
    "ProbeHParams",
    "RFFParams",
    "RandomFeatures",
    "ReducedRank",
    "Ridge",
    "RidgeGCV",
    "Standardized",
    "Tuned",
    "fit",
    "fit_capacities",
    "fit_val_split",
    "fit_with_info",
    "predict",
    "predict_capacities",
    "select_l2",
    "tune",
]

_HIGHEST = jax.lax.Precision.HIGHEST

_ACTIVATIONS = {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "tanh": jnp.tanh,
    "identity": lambda z: z,
}


# --------------------------------------------------------------------------------------
# Specs (static) and hyperparameters (dynamic)
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ridge:
    """Ridge regression with an unpenalised intercept (closed form).

    ``W = argmin_W ||Yc - Xc W||_F^2 + l2 ||W||_F^2 = (Xcᵀ Xc + l2 I)^+ Xcᵀ Yc`` and
    ``b = ȳ - x̄ W``, where ``Xc``/``Yc`` are the column-centred data. ``l2`` (from
    :class:`ProbeHParams`) is on the sum-of-squares scale (as ``sklearn.linear_model.Ridge``'s
    ``alpha``); ``l2 = 0`` gives the minimum-norm least-squares solution (pseudo-inverse).
    """


@dataclasses.dataclass(frozen=True)
class ReducedRank:
    """Reduced-rank ridge regression of rank ``rank`` (Mukherjee & Zhu, 2011).

    Let ``B`` be the ridge solution of :class:`Ridge` on centred data and
    ``Ŷ* = X* B`` the fitted values on the ridge-augmented design ``X* = [Xc; sqrt(l2) I]``.
    With ``V_r`` the top-``rank`` right singular vectors of ``Ŷ*`` (equivalently, the top
    eigenvectors of ``Ŷ*ᵀŶ* = Bᵀ(XcᵀXc + l2 I)B = Bᵀ Xcᵀ Yc``, a ``[d_y, d_y]`` matrix; no
    ``n``-sized SVD is formed), the estimator is ``W_r = B V_r V_rᵀ`` and ``b = ȳ - x̄ W_r``.
    For ``l2 = 0`` this is the classical reduced-rank regression with identity weighting
    (Izenman, 1975): the rank-``r`` ``W`` minimising ``||Yc - Xc W||_F^2``.

    Args:
        rank: number of retained directions, ``1 <= rank <= min(d_x, d_y)``.

    References:
        A. J. Izenman (1975), Reduced-rank regression for the multivariate linear model,
        J. Multivariate Analysis 5(2):248-264.
        A. Mukherjee and J. Zhu (2011), Reduced rank ridge regression and its kernel
        extensions, Statistical Analysis and Data Mining 4(6):612-622, Section 2.
    """

    rank: int

    def __post_init__(self):
        check_positive_int("rank", self.rank)


@dataclasses.dataclass(frozen=True)
class MLP:
    """A fully connected network ``x -> y`` trained by AdamW on the mean squared error.

    ``h_0 = x``; ``h_l = act(h_{l-1} W_l + b_l)`` for ``l = 1..depth`` (each ``width`` units);
    ``ŷ = h_depth W_out + b_out``. Loss ``L = mean_{i,j} (ŷ_ij - y_ij)^2`` over the batch.
    Hidden weights start Glorot-uniform, ``U(±sqrt(6 / (fan_in + fan_out)))`` (as
    ``sklearn.neural_network.MLPRegressor`` for non-logistic activations), hidden biases at
    zero. With ``output_init="zero"`` (default) the output layer starts at ``W_out = 0``,
    ``b_out = ȳ`` (mean of the training targets), so the network starts as the mean
    predictor and can only move away from it by fitting (a random Glorot output layer
    starts as random noise, R² < 0, which early stopping may keep); ``"glorot"`` draws
    ``W_out`` like the hidden layers and starts ``b_out`` at zero.
    The optimiser is ``optax.adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8,
    weight_decay)`` with decoupled decay on the weight matrices only (not biases).

    Args:
        width: hidden units per layer (``>= 1``).
        depth: number of hidden layers (``>= 1``).
        activation: one of ``"relu"``, ``"gelu"``, ``"silu"``, ``"tanh"``, ``"identity"``.
        steps: number of optimiser steps (one ``lax.scan``).
        batch_size: ``None`` for full-batch steps; otherwise minibatches of this size drawn
            without replacement within an epoch (a fresh permutation per epoch, the last
            ``n mod batch_size`` items of each permutation are skipped).
        val_fraction: early stopping. With ``v = round(val_fraction · n) > 0``, a
            key-derived random subset of ``v`` rows is held out, the network trains on the
            other rows, the held-out MSE is computed before every step and the parameters
            with the lowest held-out MSE seen (including after the last step) are
            returned. ``0`` trains on every row and returns the final parameters.
            (:func:`tune` passes its own fit/validation partition instead.)
        output_init: ``"zero"`` or ``"glorot"`` (see above).
    """

    width: int = 64
    depth: int = 1
    activation: str = "relu"
    steps: int = 300
    batch_size: int | None = None
    val_fraction: float = 0.0
    output_init: str = "zero"

    def __post_init__(self):
        if self.output_init not in ("zero", "glorot"):
            raise ValueError(f"`output_init` must be 'zero' or 'glorot', got {self.output_init!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"`val_fraction` must lie in [0, 1), got {self.val_fraction}")
        check_positive_int("width", self.width)
        check_positive_int("depth", self.depth)
        check_positive_int("steps", self.steps)
        if self.batch_size is not None:
            check_positive_int("batch_size", self.batch_size)
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
            )


@dataclasses.dataclass(frozen=True)
class RandomFeatures:
    """Kernel ridge regression with a Gaussian (RBF) kernel via random Fourier features.

    ``φ(x) = sqrt(2 / F) cos(x Ω / σ + b)`` with ``Ω ~ N(0, I)`` ``[d_x, F]`` and
    ``b ~ U(0, 2π)`` from the fit's key, so that ``φ(x)·φ(x') ≈ exp(-||x − x'||² / (2σ²))``
    (Rahimi & Recht, 2007); then :class:`Ridge` on ``φ(x)`` with penalty ``l2``. The
    bandwidth is ``σ = bandwidth × median pairwise distance`` of the (first 512) training
    rows (:class:`ProbeHParams` ``bandwidth``). A non-parametric reference for the MLP.

    Args:
        n_features: ``F``, number of random features.

    References:
        A. Rahimi and B. Recht (2007), Random features for large-scale kernel machines,
        NeurIPS 20.
    """

    n_features: int = 512

    def __post_init__(self):
        check_positive_int("n_features", self.n_features)


Spec = Ridge | ReducedRank | MLP | RandomFeatures


@flax.struct.dataclass
class ProbeHParams:
    """Dynamic probe hyperparameters (a pytree; every field may be a traced/vmapped scalar).

    Attributes:
        l2: ridge penalty for :class:`Ridge` / :class:`ReducedRank` (sum-of-squares scale,
            ``>= 0``). Ignored by :class:`MLP`.
        learning_rate: AdamW step size for :class:`MLP`.
        weight_decay: AdamW decoupled weight decay for :class:`MLP` (weights only).
        bandwidth: multiplier of the median-distance bandwidth of :class:`RandomFeatures`.
    """

    l2: ArrayLike = 1.0
    learning_rate: ArrayLike = 1e-3
    weight_decay: ArrayLike = 0.0
    bandwidth: ArrayLike = 1.0


# --------------------------------------------------------------------------------------
# Parameters and diagnostics
# --------------------------------------------------------------------------------------


class LinearParams(NamedTuple):
    """Parameters of a linear probe ``ŷ = x W + b``."""

    weight: jax.Array  # [d_x, d_y]
    bias: jax.Array  # [d_y]


class MLPParams(NamedTuple):
    """Parameters of an :class:`MLP` probe.

    ``hidden_mask`` marks the live hidden units (all ones unless the network was fitted
    padded; padded units have zero weights and are masked in :func:`predict`).
    """

    weights: tuple[jax.Array, ...]  # [d_x, H], ([H, H],) * (depth - 1), [H, d_y]
    biases: tuple[jax.Array, ...]  # [H] * depth, [d_y]
    hidden_mask: jax.Array  # [H]


class RFFParams(NamedTuple):
    """Parameters of a :class:`RandomFeatures` probe ``ŷ = φ(x) W + b``."""

    omega: jax.Array  # [d_x, F] frequencies, already divided by the bandwidth
    phase: jax.Array  # [F]
    linear: LinearParams  # weight [F, d_y], bias [d_y]


class Standardized(NamedTuple):
    """A probe fitted on standardised data: ``ŷ = inner((x − x̄)/s_x) · s_y + ȳ``."""

    inner: Any  # LinearParams | MLPParams | RFFParams
    x_mean: jax.Array  # [d_x]
    x_scale: jax.Array  # [d_x]
    y_mean: jax.Array  # [d_y]
    y_scale: jax.Array  # [d_y]


class Tuned(NamedTuple):
    """Result of :func:`tune`: the configuration chosen on the validation rows.

    Attributes:
        params: :class:`Standardized` parameters of the chosen fit (fitted on the fit rows).
        index: index of the chosen configuration in the grid.
        val_mse: ``[G]`` validation MSE (original units, mean over rows and dims) per config.
        val_r2: ``[G]`` variance-weighted validation R² per configuration.
    """

    params: Standardized
    index: jax.Array
    val_mse: jax.Array
    val_r2: jax.Array


class FitInfo(NamedTuple):
    """Training diagnostics.

    ``loss`` is ``[steps]`` for :class:`MLP` (batch MSE before each step) and ``[1]`` (the
    training MSE of the fitted map) for the linear probes. ``val_loss`` is the held-out MSE
    before each step and after the last one when ``MLP.val_fraction > 0``, else ``None``.
    """

    loss: jax.Array
    val_loss: jax.Array | None = None  # [steps + 1] held-out MSE (MLP early stopping only)


class CapacityFits(NamedTuple):
    """Result of :func:`fit_capacities` (a host-side container, not a jit output).

    Attributes:
        specs: the specs, in the order given.
        params: per spec, a params pytree whose leaves have a leading ``[n_seeds]`` axis,
            at the spec's true size (padded fits are sliced back).
        loss: per spec, ``[n_seeds, steps]`` (MLP) or ``[n_seeds, 1]`` (linear).
        strategy: the MLP strategy requested (``"auto"``, ``"fuse"``, ``"bucket"`` or
            ``"pad"``).
    """

    specs: tuple
    params: tuple
    loss: tuple
    strategy: str


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _check_spec(spec) -> None:
    if not isinstance(spec, (Ridge, ReducedRank, MLP, RandomFeatures)):
        raise ValueError(
            "`spec` must be Ridge(), ReducedRank(rank), MLP(...) or RandomFeatures(...), "
            f"got {type(spec).__name__}"
        )


def _validate(spec, x, y, hparams):
    _check_spec(spec)
    x = check_matrix("x", x, min_rows=2)
    y = check_matrix("y", y, min_rows=2)
    check_same_rows("x", x, "y", y)
    dtype = jnp.result_type(x.dtype, y.dtype)
    x = x.astype(dtype)
    y = y.astype(dtype)
    if hparams is None:
        hparams = ProbeHParams()
    if not isinstance(hparams, ProbeHParams):
        raise ValueError(f"`hparams` must be a ProbeHParams, got {type(hparams).__name__}")
    check_in_range("l2", hparams.l2, 0.0, math.inf)
    check_in_range("learning_rate", hparams.learning_rate, 0.0, math.inf, lo_open=True)
    check_in_range("weight_decay", hparams.weight_decay, 0.0, math.inf)
    check_in_range("bandwidth", hparams.bandwidth, 0.0, math.inf, lo_open=True)
    if isinstance(spec, ReducedRank):
        max_rank = min(x.shape[1], y.shape[1])
        if spec.rank > max_rank:
            raise ValueError(
                f"`rank` must be <= min(d_x, d_y) = {max_rank}, got {spec.rank} "
                f"(x.shape={tuple(x.shape)}, y.shape={tuple(y.shape)})"
            )
    if isinstance(spec, MLP) and spec.val_fraction > 0:
        n_val = round(spec.val_fraction * x.shape[0])
        if n_val < 1 or x.shape[0] - n_val < 2:
            raise ValueError(
                f"`val_fraction`={spec.val_fraction} leaves {n_val} held-out and "
                f"{x.shape[0] - n_val} training rows of {x.shape[0]}; need >= 1 and >= 2"
            )
    if isinstance(spec, MLP) and spec.batch_size is not None and spec.batch_size > x.shape[0]:
        raise ValueError(
            f"`batch_size` must be <= the number of items {x.shape[0]}, got {spec.batch_size}"
        )
    return x, y, hparams


# --------------------------------------------------------------------------------------
# Linear probes
# --------------------------------------------------------------------------------------


def _mm(a, b):
    return jnp.matmul(a, b, precision=_HIGHEST)


def _ridge_core(x, y, l2):
    """Ridge on centred data via an eigendecomposition of ``XcᵀXc`` (pseudo-inverse at 0)."""
    x_mean = jnp.mean(x, axis=0)
    y_mean = jnp.mean(y, axis=0)
    xc = x - x_mean
    yc = y - y_mean
    gram = _mm(xc.T, xc)
    cross = _mm(xc.T, yc)
    evals, evecs = jnp.linalg.eigh(gram)
    denom = evals + l2
    eps = jnp.finfo(x.dtype).eps
    tol = eps * x.shape[1] * jnp.max(jnp.abs(evals))
    inv = jnp.where(denom > tol, 1.0 / jnp.where(denom > tol, denom, 1.0), 0.0)
    w = _mm(evecs, inv[:, None] * _mm(evecs.T, cross))
    return w, x_mean, y_mean, cross


class RidgeGCV(NamedTuple):
    """Result of :func:`select_l2`."""

    l2: jax.Array  # [] the grid value with the lowest GCV score (first on ties)
    grid: jax.Array  # [G] candidate l2 values
    gcv: jax.Array  # [G] GCV score of each candidate


def select_l2(x: ArrayLike, y: ArrayLike, l2_grid: ArrayLike) -> RidgeGCV:
    """Choose the ridge penalty by generalised cross-validation (no refits, jit/vmap-able).

    With ``Xc``/``Yc`` centred, ``XcᵀXc = V diag(e) Vᵀ`` and ``R = Vᵀ XcᵀYc``, the ridge
    fit at penalty ``λ`` has residual sum of squares and effective degrees of freedom::

        RSS(λ) = ||Yc||²_F − Σ_j ||R_j||² (2 / (e_j + λ) − e_j / (e_j + λ)²)
        df(λ)  = 1 + Σ_j e_j / (e_j + λ)          (the 1 counts the intercept)
        GCV(λ) = (RSS(λ) / n) / (1 − df(λ) / n)²

    and the selected penalty minimises ``GCV`` over ``l2_grid`` (Golub, Heath & Wahba,
    1979). The same penalty serves :class:`ReducedRank`, whose first stage is this ridge.

    Args:
        x: ``[n, d_x]`` inputs.
        y: ``[n, d_y]`` targets.
        l2_grid: ``[G]`` non-negative candidate penalties (sum-of-squares scale).

    Returns:
        :class:`RidgeGCV`.

    Example:
        >>> sel = select_l2(x, y, jnp.logspace(-2, 4, 13))  # doctest: +SKIP
        >>> params = fit(key, Ridge(), x, y, ProbeHParams(l2=sel.l2))  # doctest: +SKIP

    References:
        G. H. Golub, M. Heath, G. Wahba (1979), Generalized cross-validation as a method
        for choosing a good ridge parameter, Technometrics 21(2):215-223.
    """
    x, y, _ = _validate(Ridge(), x, y, None)
    grid = jnp.atleast_1d(jnp.asarray(l2_grid, x.dtype))
    if grid.ndim != 1 or grid.shape[0] < 1:
        raise ValueError(f"`l2_grid` must be a non-empty 1-D array, got shape {grid.shape}")
    check_in_range("l2_grid", grid, 0.0, math.inf)
    return _select_l2(x, y, grid)


@jax.jit
def _select_l2(x, y, grid):
    n = x.shape[0]
    xc = x - jnp.mean(x, axis=0)
    yc = y - jnp.mean(y, axis=0)
    evals, evecs = jnp.linalg.eigh(_mm(xc.T, xc))
    evals = jnp.maximum(evals, 0.0)
    r2 = jnp.sum(_mm(evecs.T, _mm(xc.T, yc)) ** 2, axis=1)  # [d_x] ||R_j||^2
    denom = evals[None, :] + grid[:, None]  # [G, d_x]
    safe = jnp.where(denom > 0, denom, 1.0)
    live = denom > 0
    shrink = jnp.where(live, 2.0 / safe - evals[None, :] / safe**2, 0.0)
    rss = jnp.sum(yc**2) - jnp.sum(r2[None, :] * shrink, axis=1)
    df = 1.0 + jnp.sum(jnp.where(live, evals[None, :] / safe, 0.0), axis=1)
    gcv = (jnp.maximum(rss, 0.0) / n) / jnp.maximum(1.0 - df / n, 1e-12) ** 2
    return RidgeGCV(grid[jnp.argmin(gcv)], grid, gcv)


def _rrr_directions(w, cross):
    """Right singular vectors of the augmented fitted values, descending: ``[d_y, d_y]``."""
    m = _mm(w.T, cross)
    m = 0.5 * (m + m.T)
    _, v = jnp.linalg.eigh(m)
    return v[:, ::-1]


def _train_mse(x, y, params):
    return jnp.mean((_mm(x, params.weight) + params.bias - y) ** 2)[None]


def _fit_linear(spec, x, y, hparams, rank_mask=None):
    l2 = jnp.asarray(hparams.l2, x.dtype)
    w, x_mean, y_mean, cross = _ridge_core(x, y, l2)
    if isinstance(spec, ReducedRank):
        v = _rrr_directions(w, cross)
        if rank_mask is None:
            rank_mask = (jnp.arange(y.shape[1]) < spec.rank).astype(x.dtype)
        w = _mm(w, _mm(v * rank_mask, v.T))
    params = LinearParams(weight=w, bias=y_mean - _mm(x_mean, w))
    return params, FitInfo(loss=_train_mse(x, y, params))


# --------------------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------------------


def _fmix32(h):
    """MurmurHash3's 32-bit finaliser (a bijection of uint32 with full avalanche)."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _glorot_entries(seeds, rows, cols, fan_in, fan_out, dtype):
    """``[rows, cols]`` Glorot-uniform entries where entry (i, j) depends only on (seeds, i, j).

    ``seeds`` are two uint32 drawn from the fit's key (threefry); entry (i, j) is
    ``fmix32(fmix32(s0 ^ i) ^ (j + s1))`` mapped to ``U[-1, 1)`` and scaled by
    ``sqrt(6 / (fan_in + fan_out))``. Because an entry does not depend on the array's shape,
    the top-left block of a padded matrix equals the matrix of the true size. (Drawing
    each entry from ``fold_in(fold_in(key, i), j)`` has the same property but costs about
    a second of extra compile time per program on CPU.)
    """
    i = jnp.arange(rows, dtype=jnp.uint32)[:, None]
    j = jnp.arange(cols, dtype=jnp.uint32)[None, :]
    h = _fmix32(_fmix32(seeds[0] ^ i) ^ (j + seeds[1]))
    unit = (h >> 8).astype(dtype) * jnp.asarray(2.0**-24, dtype)  # [0, 1)
    limit = jnp.sqrt(6.0 / (fan_in + fan_out)).astype(dtype)
    return (2.0 * unit - 1.0) * limit


def _mlp_init(key, spec: MLP, d_x, d_y, mask, dtype, y_mean=None):
    # One threefry call for all layers' seeds keeps compile time low.
    seeds = jax.random.bits(key, (spec.depth + 1, 2), jnp.uint32)
    h = spec.width
    width = jnp.sum(mask)
    weights, biases = [], []
    shapes = [(d_x, h, d_x, width)] + [(h, h, width, width)] * (spec.depth - 1)
    for layer, (rows, cols, fan_in, fan_out) in enumerate(shapes):
        w = _glorot_entries(seeds[layer], rows, cols, fan_in, fan_out, dtype)
        if layer > 0:
            w = w * mask[:, None]
        weights.append(w * mask[None, :])
        biases.append(jnp.zeros((h,), dtype))
    if spec.output_init == "zero":
        weights.append(jnp.zeros((h, d_y), dtype))
        biases.append(jnp.zeros((d_y,), dtype) if y_mean is None else y_mean.astype(dtype))
    else:
        w_out = _glorot_entries(seeds[spec.depth], h, d_y, width, d_y, dtype)
        weights.append(w_out * mask[:, None])
        biases.append(jnp.zeros((d_y,), dtype))
    return tuple(weights), tuple(biases)


def _mlp_forward(activation, weights, biases, mask, x):
    act = _ACTIVATIONS[activation]
    h = x
    for w, b in zip(weights[:-1], biases[:-1]):
        h = act(h @ w + b) * mask
    return h @ weights[-1] + biases[-1]


def _mlps_forward(activation, members, masks, x):
    """Predictions of several MLPs on one ``x``, their first layers as one matmul.

    ``members`` are ``(weights, biases)`` of networks that differ only in width; the
    first-layer weights are concatenated along the hidden axis, so ``x`` is multiplied
    once, and each network continues on its own slice of the hidden units.
    """
    if len(members) == 1:
        return (_mlp_forward(activation, *members[0], masks[0], x),)
    act = _ACTIVATIONS[activation]
    w0 = jnp.concatenate([m[0][0] for m in members], axis=1)
    b0 = jnp.concatenate([m[1][0] for m in members])
    h_all = act(x @ w0 + b0) * jnp.concatenate(masks)
    outs, off = [], 0
    for (weights, biases), mask in zip(members, masks):
        h = h_all[:, off : off + mask.shape[0]]
        off += mask.shape[0]
        for w, b in zip(weights[1:-1], biases[1:-1]):
            h = act(h @ w + b) * mask
        outs.append(h @ weights[-1] + biases[-1])
    return tuple(outs)


def _fit_mlp(key, spec: MLP, x, y, hparams, width=None, val=None):
    """Train an MLP of (padded) width ``spec.width`` whose live width is ``width`` (dynamic).

    ``val = (x_val, y_val)`` gives explicit early-stopping rows (``spec.val_fraction`` is
    then ignored).
    """
    widths = None if width is None else (width,)
    return _fit_mlps(key, (spec,), x, y, hparams, widths, val)[0]


def _fit_mlps(key, specs: tuple[MLP, ...], x, y, hparams, widths=None, val=None):
    """Train MLPs that differ only in width together: ``((params, FitInfo), ...)``.

    Each network gets exactly the fit :func:`_fit_mlp` gives it alone (the same key, so the
    same initialisation, validation rows and minibatches; AdamW acts entry by entry and the
    summed loss's gradient in a network's weights is its own loss's gradient). Training them
    as one program shares the minibatch and multiplies ``x`` once by all first layers.
    """
    n, d_x = x.shape
    d_y = y.shape[1]
    dtype = x.dtype
    spec = specs[0]
    if widths is None:
        widths = tuple(s.width for s in specs)
    masks = tuple((jnp.arange(s.width) < w).astype(dtype) for s, w in zip(specs, widths))
    n_layers = spec.depth + 1
    decay_one = (tuple(True for _ in range(n_layers)), tuple(False for _ in range(n_layers)))
    opt = optax.adamw(
        learning_rate=jnp.asarray(hparams.learning_rate, dtype),
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        weight_decay=jnp.asarray(hparams.weight_decay, dtype),
        mask=tuple(decay_one for _ in specs),
    )

    def losses_fn(tr, xb, yb):
        preds = _mlps_forward(spec.activation, tr, masks, xb)
        return jnp.stack([jnp.mean((pred - yb) ** 2) for pred in preds])

    def loss_fn(tr, xb, yb):
        per_net = losses_fn(tr, xb, yb)
        return jnp.sum(per_net), per_net

    if val is not None:
        x_val, y_val = val
        n_val = x_val.shape[0]
    else:
        n_val = round(spec.val_fraction * n)
    if n_val and val is None:
        # Held-out rows for early stopping; fold_in constant 2**31 - 1 never collides with
        # the per-epoch permutation keys (epoch + 1).
        split = jax.random.permutation(jax.random.fold_in(key, 2**31 - 1), n)
        x_val, y_val = x[split[:n_val]], y[split[:n_val]]
        x, y = x[split[n_val:]], y[split[n_val:]]
        n = n - n_val
    batch_size = spec.batch_size if spec.batch_size is None else min(spec.batch_size, n)
    steps_per_epoch = n // batch_size if batch_size is not None else 1
    y_mean = jnp.mean(y, axis=0)
    train = tuple(_mlp_init(key, s, d_x, d_y, m, dtype, y_mean) for s, m in zip(specs, masks))
    opt_state = opt.init(train)

    def step(carry, t):
        tr, state, best = carry
        if batch_size is None:
            xb, yb = x, y
        else:
            epoch, j = jnp.divmod(t, steps_per_epoch)
            perm = jax.random.permutation(jax.random.fold_in(key, epoch + 1), n)
            idx = jax.lax.dynamic_slice_in_dim(perm, j * batch_size, batch_size)
            xb, yb = x[idx], y[idx]
        if n_val:
            best, val = _keep_best(best, tr, losses_fn(tr, x_val, y_val))
        else:
            val = jnp.zeros((len(specs),), dtype)
        (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(tr, xb, yb)
        updates, state = opt.update(grads, state, tr)
        return (optax.apply_updates(tr, updates), state, best), (loss, val)

    best0 = (train, jnp.full((len(specs),), jnp.inf, dtype))
    (train, _, best), (losses, vals) = jax.lax.scan(
        step, (train, opt_state, best0), jnp.arange(spec.steps)
    )
    val_loss = None
    if n_val:
        best, last = _keep_best(best, train, losses_fn(train, x_val, y_val))
        train = best[0]
        val_loss = jnp.concatenate([vals, last[None]])
    return tuple(
        (
            MLPParams(weights=tr[0], biases=tr[1], hidden_mask=mask),
            FitInfo(loss=losses[:, k], val_loss=None if val_loss is None else val_loss[:, k]),
        )
        for k, (tr, mask) in enumerate(zip(train, masks))
    )


def _keep_best(best, params, val):
    """``(best_params, best_val)`` updated, network by network, where ``val`` is lower.

    ``params`` is a tuple of networks and ``val`` ``[networks]``; network ``k`` keeps its new
    parameters if ``val[k]`` is strictly below its best so far.
    """
    better = val < best[1]
    kept = tuple(
        jax.tree.map(lambda new, old, b=better[k]: jnp.where(b, new, old), net, old_net)
        for k, (net, old_net) in enumerate(zip(params, best[0]))
    )
    return (kept, jnp.where(better, val, best[1])), val


# --------------------------------------------------------------------------------------
# Public fit / predict
# --------------------------------------------------------------------------------------


def _rff_features(params: RFFParams, x):
    f = params.omega.shape[1]
    return jnp.sqrt(2.0 / f) * jnp.cos(_mm(x, params.omega) + params.phase)


def _median_distance(x, m: int = 512):
    xs = x[: min(m, x.shape[0])]
    sq = jnp.sum(xs**2, axis=1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * _mm(xs, xs.T), 0.0)
    iu = jnp.triu_indices(xs.shape[0], k=1)
    return jnp.sqrt(jnp.median(d2[iu]))


def _fit_rff(key, spec: RandomFeatures, x, y, hparams):
    k_w, k_b = jax.random.split(key)
    sigma = jnp.asarray(hparams.bandwidth, x.dtype) * _median_distance(x)
    omega = jax.random.normal(k_w, (x.shape[1], spec.n_features), x.dtype) / sigma
    phase = jax.random.uniform(k_b, (spec.n_features,), x.dtype, maxval=2 * math.pi)
    feats = _rff_features(RFFParams(omega, phase, None), x)
    lin, info = _fit_linear(Ridge(), feats, y, hparams)
    return RFFParams(omega, phase, lin), info


@functools.partial(jax.jit, static_argnums=1)
def _fit_impl(key, spec, x, y, hparams):
    if isinstance(spec, MLP):
        return _fit_mlp(key, spec, x, y, hparams)
    if isinstance(spec, RandomFeatures):
        return _fit_rff(key, spec, x, y, hparams)
    return _fit_linear(spec, x, y, hparams)


def fit_with_info(
    key: jax.Array, spec: Spec, x: ArrayLike, y: ArrayLike, hparams: ProbeHParams | None = None
) -> tuple[Any, FitInfo]:
    """Fit a probe ``x -> y`` and return ``(params, FitInfo)``; see :func:`fit`."""
    if isinstance(spec, MLP):  # the linear probes ignore the key
        key = check_key("key", key)
    x, y, hparams = _validate(spec, x, y, hparams)
    return _fit_impl(key, spec, x, y, hparams)


def fit(
    key: jax.Array, spec: Spec, x: ArrayLike, y: ArrayLike, hparams: ProbeHParams | None = None
) -> LinearParams | MLPParams:
    """Fit an alignment probe from the semantic view ``x`` to the collaborative view ``y``.

    Ridge: ``W = (XcᵀXc + l2 I)^+ XcᵀYc``, ``b = ȳ - x̄ W``; reduced rank:
    ``W_r = W V_r V_rᵀ`` (see :class:`ReducedRank`); MLP: AdamW on the mean squared error
    (see :class:`MLP`). Pure in ``key``: same key and inputs, same result. Jit with the spec
    static (``jax.jit(fit, static_argnums=1)``) and vmap over ``key``, ``x``, ``y`` and
    ``hparams`` freely; inputs are validated on concrete values (NaN/inf counts, ``l2 >= 0``)
    and on shapes/dtypes under tracing.

    Args:
        key: a ``jax.random.key`` (ignored by the linear probes).
        spec: :class:`Ridge`, :class:`ReducedRank` or :class:`MLP` (static).
        x: ``[n, d_x]`` floating semantic embeddings, ``n >= 2``.
        y: ``[n, d_y]`` floating collaborative embeddings of the same items.
        hparams: :class:`ProbeHParams` (defaults: ``l2=1``, ``learning_rate=1e-3``,
            ``weight_decay=0``).

    Returns:
        :class:`LinearParams` or :class:`MLPParams`.

    Raises:
        ValueError: naming the argument (``x``, ``y``, ``rank``, ``l2``, ``batch_size``...).

    Example:
        >>> x = jax.random.normal(jax.random.key(0), (100, 8))
        >>> y = x @ jnp.ones((8, 3))
        >>> params = fit(jax.random.key(1), Ridge(), x, y, ProbeHParams(l2=1e-3))
        >>> predict(Ridge(), params, x).shape
        (100, 3)
    """
    return fit_with_info(key, spec, x, y, hparams)[0]


def predict(spec: Spec, params: Any, x: ArrayLike) -> jax.Array:
    """Apply a fitted probe to ``x [n, d_x]``; returns ``ŷ [n, d_y]``.

    ``params`` may be :class:`Standardized` (from :func:`tune`): the inputs are
    standardised, the inner probe applied and the output mapped back.
    """
    _check_spec(spec)
    x = check_matrix("x", x)
    if isinstance(params, Standardized):
        xs = (x.astype(params.x_mean.dtype) - params.x_mean) / params.x_scale
        return predict(spec, params.inner, xs) * params.y_scale + params.y_mean
    if isinstance(spec, RandomFeatures):
        if not isinstance(params, RFFParams):
            raise ValueError(f"`params` must be RFFParams, got {type(params).__name__}")
        if x.shape[-1] != params.omega.shape[0]:
            raise ValueError(
                f"`x` must have {params.omega.shape[0]} columns, got shape {tuple(x.shape)}"
            )
        feats = _rff_features(params, x.astype(params.omega.dtype))
        return _mm(feats, params.linear.weight) + params.linear.bias
    if isinstance(spec, MLP):
        if not isinstance(params, MLPParams):
            raise ValueError(f"`params` must be MLPParams for MLP, got {type(params).__name__}")
        expected = params.weights[0].shape[-2]
        if x.shape[-1] != expected:
            raise ValueError(f"`x` must have {expected} columns, got shape {tuple(x.shape)}")
        x = x.astype(params.weights[0].dtype)
        return _mlp_forward(spec.activation, params.weights, params.biases, params.hidden_mask, x)
    if not isinstance(params, LinearParams):
        raise ValueError(f"`params` must be LinearParams, got {type(params).__name__}")
    if x.shape[-1] != params.weight.shape[0]:
        raise ValueError(
            f"`x` must have {params.weight.shape[0]} columns, got shape {tuple(x.shape)}"
        )
    return _mm(x.astype(params.weight.dtype), params.weight) + params.bias


# --------------------------------------------------------------------------------------
# Capacity sweeps
# --------------------------------------------------------------------------------------


_CPU_CHUNK_BYTES = 4 * 2**20
_STRATEGIES = ("auto", "fuse", "bucket", "pad")


def _auto_seed_chunk(n_fits: int, n: int, d_x: int, d_y: int, width: int, itemsize: int) -> int:
    """Fits per vmapped chunk: all at once on accelerators; cache-sized chunks on CPU.

    On CPU a ``[fits, n, d]`` working set larger than the cache makes every step memory-bound;
    chunks of about ``_CPU_CHUNK_BYTES`` of per-step activations keep it cache-resident.
    """
    if jax.default_backend() != "cpu":
        return n_fits
    return int(max(1, min(n_fits, _CPU_CHUNK_BYTES // _fit_bytes(n, d_x, d_y, width, itemsize))))


def _fit_bytes(n: int, d_x: int, d_y: int, width: int, itemsize: int) -> int:
    """Per-step activation bytes of one fit: inputs, targets and three ``[n, width]`` arrays."""
    return itemsize * n * (d_x + d_y + 3 * width)


@functools.partial(jax.jit, static_argnums=(1, 6))
def _mlp_batched(keys, spec, x, y, hparams, widths, chunk):
    """Fit ``spec`` (padded width ``spec.width``) for each (key, live width) pair ``[m]``.

    ``jax.lax.map`` with ``batch_size=chunk``: chunks of ``chunk`` fits are vmapped, chunks run
    one after another.
    """
    return jax.lax.map(
        lambda kw: _fit_mlp(kw[0], spec, x, y, hparams, kw[1]), (keys, widths), batch_size=chunk
    )


@functools.partial(jax.jit, static_argnums=(1, 5))
def _mlps_batched(keys, specs, x, y, hparams, chunk):
    """:func:`_fit_mlps` of the width group ``specs`` for each key ``[m]`` (chunks vmapped)."""
    return jax.lax.map(lambda k: _fit_mlps(k, specs, x, y, hparams), keys, batch_size=chunk)


@jax.jit
def _rrr_ranks(x, y, hparams, rank_masks):
    # One ridge fit and one eigendecomposition; XLA hoists them out of the vmap over masks
    # because they do not depend on the mask.
    spec = ReducedRank(rank=1)  # the rank is given by each mask
    return jax.vmap(lambda m: _fit_linear(spec, x, y, hparams, m))(rank_masks)


def _unpad(params: MLPParams, width: int) -> MLPParams:
    w = params.weights
    hidden = tuple(a[..., :width, :width] for a in w[1:-1])
    weights = (w[0][..., :width], *hidden, w[-1][..., :width, :])
    biases = (*(b[..., :width] for b in params.biases[:-1]), params.biases[-1])
    return MLPParams(weights, biases, params.hidden_mask[..., :width])


def _broadcast(tree, n):
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *a.shape)), tree)


def fit_capacities(
    key: jax.Array,
    specs: Sequence[Spec],
    x: ArrayLike,
    y: ArrayLike,
    hparams: ProbeHParams | None = None,
    *,
    n_seeds: int = 1,
    strategy: str = "auto",
    seed_chunk: int | None = None,
) -> CapacityFits:
    """Fit many probe capacities (MLP widths, ranks, ...) times ``n_seeds`` seeds.

    Seed ``s`` uses ``jax.random.split(key, n_seeds)[s]`` for every spec, so results across
    capacities share their random numbers (and, thanks to the per-entry initialisation, the
    first ``w`` hidden units of every wider network start identical).

    MLP specs that differ only in ``width`` form a group, fitted with ``strategy``:

    * ``"fuse"``: one compiled program per group, vmapped over seeds; each seed trains all
      the group's widths together (the sum of their losses: each width's weights get
      exactly their own gradient, AdamW acts entry by entry), sharing its minibatches and
      validation rows and one ``x @ [W_1 | W_2 | ...]`` product.
    * ``"bucket"``: one compiled program per width, vmapped over seeds.
    * ``"pad"``: one compiled program per group, vmapped over widths x seeds, every network
      padded to the group's largest width with the extra hidden units masked out
      (``max_width / width`` times the FLOPs).
    * ``"auto"`` (default): ``"fuse"`` when one fused fit's per-step activations,
      ``4 n (d_x + d_y + 3 sum(widths))`` bytes in float32, fit the 4 MiB chunk budget,
      else ``"bucket"``.

    The three give the same fits to float rounding. Measured in
    ``experiments/bench_probe_sweep.py`` (2-core CPU, 300 full-batch Adam steps, 64 -> 64
    dims): 64 seeds x widths 4..32 at n = 500 (616 KB per fused fit) took 2.50 s steady
    fused against 3.71 s bucketed and 6.28 s padded (compile 5.8 s vs 8.5 s); 8 seeds x
    widths 8..256 at n = 4000 (26 MB per fused fit, out of cache) took 13.4 s bucketed
    against 17.9 s fused and 36.6 s padded. The rule of ``"auto"`` is drawn from these two
    CPU measurements; accelerators were not measured.

    All :class:`ReducedRank` specs share one ridge fit and one eigendecomposition (the ranks
    only mask singular directions); :class:`Ridge` is fitted once. Linear results are
    broadcast to the ``[n_seeds]`` axis (they do not depend on the key).

    Args:
        key: a ``jax.random.key``.
        specs: sequence of specs.
        x: ``[n, d_x]`` inputs.
        y: ``[n, d_y]`` targets.
        hparams: shared :class:`ProbeHParams`.
        n_seeds: number of seeds (``>= 1``).
        strategy: ``"auto"``, ``"fuse"``, ``"bucket"`` or ``"pad"`` (MLP widths).
        seed_chunk: how many fits one compiled program vmaps at a time (the rest run in
            sequence inside the same program, ``jax.lax.map(..., batch_size=seed_chunk)``).
            ``None``: all at once on GPU/TPU; on CPU, chunks whose per-step activations take
            about 4 MiB (measured faster on a 2-core CPU than one wide vmap, whose
            ``[fits, n, d]`` arrays fall out of cache).

    Returns:
        :class:`CapacityFits` with per-spec params of leading shape ``[n_seeds]``.

    Example:
        >>> fits = fit_capacities(key, [MLP(width=w) for w in (8, 16, 32)], x, y, n_seeds=4)
        >>> preds = predict_capacities(fits, x_test)  # tuple of [4, n_test, d_y]
    """
    specs = tuple(specs)
    if not specs:
        raise ValueError("`specs` must contain at least one spec, got an empty sequence")
    for spec in specs:
        _check_spec(spec)
        if isinstance(spec, RandomFeatures):
            raise ValueError("`specs`: RandomFeatures is fitted with fit() or tune()")
    if strategy not in _STRATEGIES:
        raise ValueError(f"`strategy` must be one of {_STRATEGIES}, got {strategy!r}")
    n_seeds = check_positive_int("n_seeds", n_seeds)
    if seed_chunk is not None:
        seed_chunk = check_positive_int("seed_chunk", seed_chunk)
    for spec in specs:
        x_v, y_v, hparams_v = _validate(spec, x, y, hparams)
    x, y, hparams = x_v, y_v, hparams_v
    keys = jax.random.split(key, n_seeds)

    # spec index -> (params, loss), each of leading shape [n_seeds]
    fits = _fit_linear_capacities(keys, specs, x, y, hparams, n_seeds)
    for idx in _mlp_groups(specs):
        widths = sorted({specs[i].width for i in idx})
        how = _group_strategy(strategy, widths, x, y)
        fit_group = {"fuse": _fit_mlp_fused, "bucket": _fit_mlp_bucketed, "pad": _fit_mlp_padded}
        fit_group = fit_group[how] if len(widths) > 1 else _fit_mlp_bucketed
        fits.update(fit_group(keys, specs, idx, widths, x, y, hparams, n_seeds, seed_chunk))
    return CapacityFits(
        specs=specs,
        params=tuple(fits[i][0] for i in range(len(specs))),
        loss=tuple(fits[i][1] for i in range(len(specs))),
        strategy=strategy,
    )


def _fit_linear_capacities(keys, specs, x, y, hparams, n_seeds) -> dict[int, tuple[Any, Any]]:
    """``{index: (params, loss)}`` of the linear specs, broadcast to ``[n_seeds]``.

    One ridge and one shared eigendecomposition serve every :class:`ReducedRank` rank;
    :class:`Ridge` is fitted once (linear fits do not depend on the key).
    """
    fits: dict[int, tuple[Any, Any]] = {}
    rr_idx = [i for i, s in enumerate(specs) if isinstance(s, ReducedRank)]
    if rr_idx:
        d_y = y.shape[1]
        masks = jnp.stack(
            [(jnp.arange(d_y) < specs[i].rank).astype(x.dtype) for i in rr_idx], axis=0
        )
        p_all, info_all = _rrr_ranks(x, y, hparams, masks)
        for j, i in enumerate(rr_idx):
            pick = jax.tree.map(lambda a, j=j: a[j], (p_all, info_all))
            fits[i] = _broadcast(pick[0], n_seeds), _broadcast(pick[1].loss, n_seeds)
    ridge_idx = [i for i, s in enumerate(specs) if isinstance(s, Ridge)]
    if ridge_idx:
        p, info = _fit_impl(keys[0], Ridge(), x, y, hparams)
        for i in ridge_idx:
            fits[i] = _broadcast(p, n_seeds), _broadcast(info.loss, n_seeds)
    return fits


def _mlp_groups(specs) -> list[list[int]]:
    """Indices of the :class:`MLP` specs, grouped by everything but ``width``."""
    groups: dict[MLP, list[int]] = {}
    for i, s in enumerate(specs):
        if isinstance(s, MLP):
            groups.setdefault(dataclasses.replace(s, width=1), []).append(i)
    return list(groups.values())


def _fit_mlp_padded(
    keys, specs, idx, widths, x, y, hparams, n_seeds, seed_chunk
) -> dict[int, tuple[Any, Any]]:
    """One program for a group: widths × seeds vmapped, padded to the largest width."""
    itemsize = jnp.dtype(x.dtype).itemsize
    d_x, d_y = x.shape[1], y.shape[1]
    big = dataclasses.replace(specs[idx[0]], width=widths[-1])
    m = len(widths) * n_seeds
    chunk = seed_chunk or _auto_seed_chunk(m, x.shape[0], d_x, d_y, widths[-1], itemsize)
    all_keys = jnp.tile(keys, len(widths))  # width-major: [w0 s0, w0 s1, ...]
    all_widths = jnp.repeat(jnp.asarray(widths, jnp.int32), n_seeds)
    p_all, info_all = _mlp_batched(all_keys, big, x, y, hparams, all_widths, int(min(chunk, m)))
    fits: dict[int, tuple[Any, Any]] = {}
    for i in idx:
        j = widths.index(specs[i].width)
        sl = slice(j * n_seeds, (j + 1) * n_seeds)
        params = _unpad(jax.tree.map(lambda a, sl=sl: a[sl], p_all), specs[i].width)
        fits[i] = params, info_all.loss[sl]
    return fits


def _group_strategy(strategy: str, widths: Sequence[int], x, y) -> str:
    """One group's strategy; ``"auto"``: fuse if a fused fit's activations fit the chunk budget."""
    if strategy != "auto":
        return strategy
    per_fit = _fit_bytes(*x.shape, y.shape[1], sum(widths), jnp.dtype(x.dtype).itemsize)
    return "fuse" if per_fit <= _CPU_CHUNK_BYTES else "bucket"


def _fit_mlp_fused(
    keys, specs, idx, widths, x, y, hparams, n_seeds, seed_chunk
) -> dict[int, tuple[Any, Any]]:
    """One program for a group: each seed trains all widths together, vmapped over seeds."""
    itemsize = jnp.dtype(x.dtype).itemsize
    d_x, d_y = x.shape[1], y.shape[1]
    group = tuple(dataclasses.replace(specs[idx[0]], width=w) for w in widths)
    chunk = seed_chunk or _auto_seed_chunk(n_seeds, x.shape[0], d_x, d_y, sum(widths), itemsize)
    outs = _mlps_batched(keys, group, x, y, hparams, int(min(chunk, n_seeds)))
    by_width = {w: (params, info.loss) for w, (params, info) in zip(widths, outs)}
    return {i: by_width[specs[i].width] for i in idx}


def _fit_mlp_bucketed(
    keys, specs, idx, widths, x, y, hparams, n_seeds, seed_chunk
) -> dict[int, tuple[Any, Any]]:
    """One program per width of a group, vmapped over seeds."""
    itemsize = jnp.dtype(x.dtype).itemsize
    d_x, d_y = x.shape[1], y.shape[1]
    fits: dict[int, tuple[Any, Any]] = {}
    for w in widths:
        spec_w = dataclasses.replace(specs[idx[0]], width=w)
        chunk = seed_chunk or _auto_seed_chunk(n_seeds, x.shape[0], d_x, d_y, w, itemsize)
        p, info = _mlp_batched(
            keys,
            spec_w,
            x,
            y,
            hparams,
            jnp.full((n_seeds,), w, jnp.int32),
            int(min(chunk, n_seeds)),
        )
        for i in idx:
            if specs[i].width == w:
                fits[i] = p, info.loss
    return fits


def predict_capacities(fits: CapacityFits, x: ArrayLike) -> tuple[jax.Array, ...]:
    """Predict with every fitted spec and seed: a tuple (per spec) of ``[n_seeds, n, d_y]``."""
    x = check_matrix("x", x)
    return tuple(
        jax.vmap(lambda p, s=spec: predict(s, p, x))(p) for spec, p in zip(fits.specs, fits.params)
    )


# --------------------------------------------------------------------------------------
# Tuning on one fit/validation partition
# --------------------------------------------------------------------------------------


def fit_val_split(key: jax.Array, n: int, val_fraction: float) -> tuple[jax.Array, jax.Array]:
    """One random fit/validation partition of ``n`` rows: ``(fit_idx, val_idx)``.

    ``val_idx`` holds ``round(val_fraction · n)`` rows, ``fit_idx`` the others; pass the
    same key to give every probe the same partition.
    """
    n = check_positive_int("n", n, minimum=3)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must lie in (0, 1), got {val_fraction}")
    n_val = round(val_fraction * n)
    if n_val < 1 or n - n_val < 2:
        raise ValueError(
            f"`val_fraction`={val_fraction} leaves {n_val} validation and {n - n_val} fit rows"
        )
    perm = jax.random.permutation(key, n)
    return perm[n_val:], perm[:n_val]


def _standardize_stats(a):
    mean = jnp.mean(a, axis=0)
    scale = jnp.std(a, axis=0)
    return mean, jnp.where(scale > 0, scale, 1.0)


def tune(
    key: jax.Array,
    spec: Spec,
    x: ArrayLike,
    y: ArrayLike,
    grid: ProbeHParams,
    *,
    widths: ArrayLike | None = None,
    fit_idx: ArrayLike,
    val_idx: ArrayLike,
) -> Tuned:
    """Fit a probe for every configuration of ``grid`` and keep the best on validation rows.

    Every configuration is fitted on the rows ``fit_idx`` of standardised data (inputs and
    targets centred and scaled to unit variance per column with fit-row statistics) and
    scored on the rows ``val_idx`` by the mean squared error in the original units::

        val_mse_g = mean_{i ∈ val, j} (ŷ_g(x_i)_j − y_ij)²,   ĝ = argmin_g val_mse_g

    Ridge / reduced rank / random features: ``grid.l2`` (and ``grid.bandwidth``) vary.
    MLP: ``grid.learning_rate`` and ``grid.weight_decay`` vary, with ``widths[g]`` the live
    width of configuration ``g`` inside a network padded to ``spec.width`` (hidden units
    beyond it are masked; see :func:`fit_capacities`); each fit is early-stopped on the
    same validation rows (``spec.val_fraction`` is ignored). All configurations are one
    vmapped program (random features: a sequential map, to bound memory). The same key is
    used for every configuration (common initialisation / random features). Use one
    :func:`fit_val_split` for every probe so that all are chosen on the same rows. The
    chosen ``val_mse`` is optimistic (the same rows also early-stop the MLPs); score the
    result on separate test rows.

    Args:
        key: PRNG key (MLP initialisation and minibatches; random features).
        spec: the probe (static); MLP ``width`` is the padded width.
        x: ``[n, d_x]`` inputs.
        y: ``[n, d_y]`` targets.
        grid: :class:`ProbeHParams` whose leaves are ``[G]`` arrays (a scalar leaf is
            broadcast).
        widths: ``[G]`` int live widths (MLP only; default ``spec.width`` for all).
        fit_idx: ``[n_fit]`` int rows to fit on.
        val_idx: ``[n_val]`` int rows to choose on.

    Returns:
        :class:`Tuned` (predict with ``predict(spec, tuned.params, x)``).

    Example:
        >>> fit_idx, val_idx = fit_val_split(jax.random.key(0), 1000, 0.2)  # doctest: +SKIP
        >>> grid = ProbeHParams(l2=jnp.logspace(-2, 4, 7))  # doctest: +SKIP
        >>> t = tune(key, Ridge(), x, y, grid, fit_idx=fit_idx, val_idx=val_idx)  # doctest: +SKIP
    """
    x, y, _ = _validate(spec, x, y, None)
    if not isinstance(grid, ProbeHParams):
        raise ValueError(f"`grid` must be a ProbeHParams, got {type(grid).__name__}")
    leaves = [jnp.asarray(a) for a in jax.tree.leaves(grid)]
    sizes = {a.shape[0] for a in leaves if a.ndim == 1}
    if any(a.ndim > 1 for a in leaves) or len(sizes) > 1:
        raise ValueError(f"`grid` leaves must be scalars or 1-D of one length, got {sizes}")
    g = sizes.pop() if sizes else 1
    grid = jax.tree.map(lambda a: jnp.broadcast_to(jnp.asarray(a, x.dtype), (g,)), grid)
    check_in_range("l2", grid.l2, 0.0, math.inf)
    check_in_range("learning_rate", grid.learning_rate, 0.0, math.inf, lo_open=True)
    check_in_range("weight_decay", grid.weight_decay, 0.0, math.inf)
    check_in_range("bandwidth", grid.bandwidth, 0.0, math.inf, lo_open=True)
    if widths is None:
        widths = jnp.full((g,), spec.width if isinstance(spec, MLP) else 1, jnp.int32)
    widths = jnp.asarray(widths, jnp.int32)
    if widths.shape != (g,):
        raise ValueError(f"`widths` must have shape ({g},), got {widths.shape}")
    if isinstance(spec, MLP):
        check_in_range("widths", widths, 1, spec.width)
    fit_idx = jnp.asarray(fit_idx, jnp.int32)
    val_idx = jnp.asarray(val_idx, jnp.int32)
    for name, idx in (("fit_idx", fit_idx), ("val_idx", val_idx)):
        if idx.ndim != 1 or idx.shape[0] < (2 if name == "fit_idx" else 1):
            raise ValueError(f"`{name}` must be a non-empty 1-D index array, got {idx.shape}")
    return _tune_impl(key, spec, x, y, grid, widths, fit_idx, val_idx)


@functools.partial(jax.jit, static_argnums=1)
def _tune_impl(key, spec, x, y, grid, widths, fit_idx, val_idx):
    x_mean, x_scale = _standardize_stats(x[fit_idx])
    y_mean, y_scale = _standardize_stats(y[fit_idx])
    xs = (x - x_mean) / x_scale
    ys = (y - y_mean) / y_scale
    xf, yf, xv, yv = xs[fit_idx], ys[fit_idx], xs[val_idx], ys[val_idx]
    if isinstance(spec, MLP):
        fit_one = lambda hp, w: _fit_mlp(key, spec, xf, yf, hp, w, val=(xv, yv))[0]  # noqa: E731
        params = jax.vmap(fit_one)(grid, widths)
    elif isinstance(spec, RandomFeatures):
        params = jax.lax.map(lambda hp: _fit_rff(key, spec, xf, yf, hp)[0], grid, batch_size=2)
    else:
        params = jax.vmap(lambda hp: _fit_linear(spec, xf, yf, hp)[0])(grid)
    y_val = y[val_idx]

    def score(p):
        pred = predict(spec, p, xv) * y_scale + y_mean
        sse = jnp.sum((pred - y_val) ** 2)
        return sse / y_val.size, 1.0 - sse / jnp.sum((y_val - jnp.mean(y_val, axis=0)) ** 2)

    val_mse, val_r2 = jax.vmap(score)(params)
    best = jnp.argmin(jnp.where(jnp.isfinite(val_mse), val_mse, jnp.inf))
    chosen = jax.tree.map(lambda a: a[best], params)
    return Tuned(Standardized(chosen, x_mean, x_scale, y_mean, y_scale), best, val_mse, val_r2)
